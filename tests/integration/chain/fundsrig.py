"""Shared set-up of the deposit and withdrawal tests: anvil, a token, a real core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chainbook.chain.anvil import ANVIL_CHAIN_ID, DEV_KEY, Anvil
from chainbook.chain.client import FundsClient
from chainbook.chain.corebridge import engine_submitter
from chainbook.chain.deposits import DepositWatcher, WatchedToken
from chainbook.chain.fundstore import FundStore
from chainbook.chain.hdwallet import DepositAddresses, HDWallet
from chainbook.chain.withdrawals import PayAsset, WithdrawalProcessor
from chainbook.domain.commands import Deposit
from chainbook.journal.recovery import DurableEngine

MNEMONIC = "test test test test test test test test test test test junk"  # anvil's, public
ASSETS = {"USDT": 8, "ETH": 8, "BTC": 8}
USDT_SUPPLY = 10**6 * 10**6  # one million, 6 decimals


class Rig:
    """anvil + FundsClient + a deployed USDT + DurableEngine + FundStore + addresses."""

    def __init__(self, anvil: Anvil, tmp: Path, confirmations: int = 3,
                 usdt: str | None = None) -> None:
        self.anvil = anvil
        self.tmp = tmp
        self.confirmations = confirmations
        self.client = FundsClient(anvil.url, ANVIL_CHAIN_ID, DEV_KEY, confirmations)
        self.usdt = usdt or self.client.deploy_token("Tether", "USDT", 6, USDT_SUPPLY)
        self.de = DurableEngine(tmp / "core")
        self.submit = engine_submitter(self.de)
        self.store = FundStore(tmp / "funds.sqlite")
        self.addresses = DepositAddresses(HDWallet(MNEMONIC), self.store)

    def watcher(self, **kw: Any) -> DepositWatcher:
        kw.setdefault("native_asset", "ETH")
        kw.setdefault("start_block", 0)
        return DepositWatcher(self.client, self.store, self.addresses,
                              [WatchedToken("USDT", self.usdt.lower(), 6)], ASSETS,
                              self.submit, self.confirmations, **kw)

    def processor(self) -> WithdrawalProcessor:
        pay = {"USDT": PayAsset("USDT", self.usdt, 6), "ETH": PayAsset("ETH", None, 18)}
        return WithdrawalProcessor(self.client, self.store, pay, ASSETS, self.submit,
                                   self.confirmations)

    def fund(self, account: int, asset: str, units: int, ext: str) -> None:
        self.submit(Deposit(account, asset, units, ext))

    def available(self, account: int, asset: str) -> int:
        return int(self.de.engine.balances.available(account, asset))

    def frozen(self, account: int, asset: str) -> int:
        return int(self.de.engine.balances.frozen(account, asset))

    def reopen_core(self) -> None:
        """Close and recover the core (a restart): balances come from the log."""
        self.de.close()
        self.de = DurableEngine(self.tmp / "core")
        self.submit = engine_submitter(self.de)

    def close(self) -> None:
        self.de.close()
        self.store.close()
