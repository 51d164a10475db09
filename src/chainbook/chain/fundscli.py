"""``chainbook deposit-address | withdraw | chain faucet | chain status`` (the lead's cli.py
registers them with ``add_chain_commands(sub)``; ``python -m chainbook.chain`` has them
too).

    deposit-address --account NAME_OR_ID [--data DIR]
        the account's deposit address (derived from <data>/hd-seed; works offline and
        registers the address so a running watcher picks it up)
    withdraw --account NAME_OR_ID --asset USDT --amount 1.5 --address 0x... [--data DIR]
        request a withdrawal through the running server (loopback admin API)
    chain faucet --asset USDT --amount 100 (--to 0x... | --account NAME_OR_ID) [--data DIR]
        embedded chain: pay test funds from the operator to an address
    chain status [--data DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from chainbook.service.cli_commands import (
    DEFAULT_DATA,
    CliError,
    admin_request,
    running_server,
)


def add_chain_commands(sub: Any) -> None:
    """Add deposit-address, withdraw and chain (faucet, status) to a subparsers object."""
    sp = sub.add_parser("deposit-address", help="an account's deposit address")
    sp.add_argument("--account", required=True, help="account name or id")
    sp.add_argument("--data", default=DEFAULT_DATA)
    sp.set_defaults(fn=cmd_deposit_address)
    sp = sub.add_parser("withdraw", help="withdraw to an address (needs a running server)")
    sp.add_argument("--account", required=True, help="account name or id")
    sp.add_argument("--asset", required=True)
    sp.add_argument("--amount", required=True, help="decimal amount, e.g. 1.5")
    sp.add_argument("--address", required=True, help="0x destination address")
    sp.add_argument("--data", default=DEFAULT_DATA)
    sp.set_defaults(fn=cmd_withdraw)
    chain = sub.add_parser("chain", help="the chain of a running server").add_subparsers(
        dest="op", required=True)
    sp = chain.add_parser("faucet", help="pay test funds (embedded chain)")
    sp.add_argument("--asset", required=True)
    sp.add_argument("--amount", required=True)
    sp.add_argument("--to", help="0x address")
    sp.add_argument("--account", help="or: this account's deposit address")
    sp.add_argument("--data", default=DEFAULT_DATA)
    sp.set_defaults(fn=cmd_faucet)
    sp = chain.add_parser("status", help="operator, contracts, deposit height")
    sp.add_argument("--data", default=DEFAULT_DATA)
    sp.set_defaults(fn=cmd_status)


def _account_id(data: Path, text: str) -> int:
    from chainbook.app import KEYS_FILE
    from chainbook.service.keys import KeyStore

    if text.isascii() and text.isdigit():
        return int(text)
    ks = KeyStore(data / KEYS_FILE)
    try:
        acct = ks.account_id(text)
    finally:
        ks.close()
    if acct is None:
        raise CliError(f"no account {text!r} (chainbook account list)")
    return int(acct)


def _admin(data: Path, path: str, body: dict[str, Any] | None) -> Any:
    server = running_server(data)
    if server is None:
        raise CliError(f"no chainbook serve running on {data} (the chain lives in it)")
    return admin_request(data, server, path, body)


def cmd_deposit_address(args: argparse.Namespace) -> int:
    from chainbook.chain.fundstore import FundStore
    from chainbook.chain.hdwallet import DepositAddresses, HDWallet

    data = Path(args.data)
    account = _account_id(data, args.account)
    store = FundStore.in_data_dir(data)
    try:
        addresses = DepositAddresses(HDWallet.load_or_create(data / "hd-seed"), store)
        print(json.dumps({"account": account, "address": addresses.address(account)}))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    return 0


def cmd_withdraw(args: argparse.Namespace) -> int:
    data = Path(args.data)
    reply = _admin(data, "/admin/v1/chain/withdraw", {
        "account": _account_id(data, args.account), "asset": args.asset.upper(),
        "amount": args.amount, "address": args.address})
    print(json.dumps(reply))
    return 0


def cmd_faucet(args: argparse.Namespace) -> int:
    data = Path(args.data)
    if bool(args.to) == bool(args.account):
        raise CliError("give exactly one of --to and --account")
    body: dict[str, Any] = {"asset": args.asset.upper(), "amount": args.amount}
    if args.to:
        body["address"] = args.to
    else:
        body["account"] = _account_id(data, args.account)
    print(json.dumps(_admin(data, "/admin/v1/chain/faucet", body)))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(_admin(Path(args.data), "/admin/v1/chain/status", None)))
    return 0
