"""``python -m chainbook.chain``: print a trade's proof, verify a trade on-chain.

    proof --data DIR --trade-id N
        the trade's Merkle proof from the settler's store (JSON)
    verify-trade (--proof FILE|- | --trade-id N --data DIR) --rpc URL --chain-id N
                 [--contract ADDR] [--confirmations N]
        check the proof against the Settlement contract's root; exit 0 if every check
        passes, 1 if one fails, 2 on bad usage
    deposit-address | withdraw | chain faucet | chain status
        deposits and withdrawals (chain/fundscli.py)

No key is needed to verify.  The embedded chain lives inside ``chainbook serve``: verify
against it through the server (the lead's ``chainbook verify-trade``), or use a node.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from chainbook.chain.proofs import TradeProof, build_proof
from chainbook.chain.store import FILENAME, ChainStore


def _open_store(data: str) -> ChainStore:
    path = Path(data) / FILENAME
    if not path.is_file():
        raise ValueError(f"no settler store at {path}")
    return ChainStore(path)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m chainbook.chain",
                                 description="Merkle proofs of settled trades")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("proof", help="print a trade's Merkle proof (JSON)")
    p.add_argument("--data", required=True, help="data directory holding chain.sqlite")
    p.add_argument("--trade-id", type=int, required=True)
    v = sub.add_parser("verify-trade", help="check a trade against the on-chain root")
    v.add_argument("--proof", help="proof JSON file ('-' for stdin)")
    v.add_argument("--trade-id", type=int, help="with --data: build the proof from the store")
    v.add_argument("--data", help="data directory holding chain.sqlite")
    v.add_argument("--rpc", required=True, help="JSON-RPC URL of a node")
    v.add_argument("--chain-id", type=int, required=True)
    v.add_argument("--contract", help="Settlement address (default: from the proof)")
    v.add_argument("--confirmations", type=int, default=6)
    from chainbook.chain.fundscli import add_chain_commands

    add_chain_commands(sub)  # deposit-address, withdraw, chain faucet|status
    return ap


def _load_proof(args: argparse.Namespace) -> TradeProof | None:
    if args.proof:
        text = sys.stdin.read() if args.proof == "-" else Path(args.proof).read_text()
        return TradeProof.from_json(json.loads(text))
    if args.trade_id is None or not args.data:
        raise ValueError("give --proof FILE, or --trade-id with --data")
    store = _open_store(args.data)
    try:
        return build_proof(store, args.trade_id)
    finally:
        store.close()


def verify_main(args: argparse.Namespace) -> int:
    """The ``verify-trade`` command."""
    from chainbook.chain.client import ChainClient, ChainError  # web3 only when needed
    from chainbook.chain.proofs import verify_trade

    try:
        proof = _load_proof(args)
    except (OSError, ValueError) as e:
        print(f"verify-trade: {e}", file=sys.stderr)
        return 2
    if proof is None:
        print(json.dumps({"ok": False, "detail": f"trade {args.trade_id} is in no batch"}))
        return 1
    contract = args.contract or proof.contract
    if not contract:
        print("verify-trade: no contract address (use --contract)", file=sys.stderr)
        return 2
    try:
        client = ChainClient(args.rpc, args.chain_id, None, args.confirmations,
                             settlement=contract)
        result = verify_trade(client, proof)
    except (ChainError, OSError, ValueError) as e:
        print(f"verify-trade: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"ok": result.ok, "tradeId": proof.trade.trade_id,
                      "batchId": proof.batch_id, "confirmations": result.confirmations,
                      "checks": result.checks, "detail": result.detail}))
    return 0 if result.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; return the exit status."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if getattr(args, "fn", None) is not None:
        from chainbook.service.cli_commands import CliError

        try:
            return int(args.fn(args))
        except CliError as exc:
            print(f"chainbook: error: {exc}", file=sys.stderr)
            return 2
    if args.cmd == "proof":
        try:
            store = _open_store(args.data)
        except ValueError as e:
            print(f"proof: {e}", file=sys.stderr)
            return 2
        try:
            proof = build_proof(store, args.trade_id)
        finally:
            store.close()
        if proof is None:
            print(f"trade {args.trade_id} is in no batch yet", file=sys.stderr)
            return 1
        print(json.dumps(proof.to_json()))
        return 0
    return verify_main(args)
