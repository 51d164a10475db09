"""A new embedded chain at restart: what was paid on the old one stays paid.

Real parts: two embedded EVMs (the old chain and the one a restart brings), a token
deployed on the old one, the deposit watcher and the withdrawal processor over one
FundStore, and a DurableEngine as the core.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainbook.chain.client import FundsClient
from chainbook.chain.corebridge import Submit, engine_submitter
from chainbook.chain.deposits import DepositWatcher, WatchedToken
from chainbook.chain.fundstore import FundStore
from chainbook.chain.hdwallet import DepositAddresses, HDWallet
from chainbook.chain.withdrawals import PayAsset, WithdrawalProcessor
from chainbook.domain.commands import Deposit
from chainbook.journal.recovery import DurableEngine

KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
MNEMONIC = "test test test test test test test test test test test junk"  # public
ASSETS = {"USDT": 8, "ETH": 8}
PAYER, PAYEE = 1, 2


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[DurableEngine, Submit, FundStore]]:
    """The core (a DurableEngine and its submitter) and the FundStore, closed after."""
    de = DurableEngine(tmp_path / "core")
    store = FundStore(tmp_path / "funds.sqlite")
    try:
        yield de, engine_submitter(de), store
    finally:
        de.close()
        store.close()


def test_a_payout_credited_as_a_deposit_on_the_gone_chain_is_completed_not_refunded(
        parts: tuple[DurableEngine, Submit, FundStore]) -> None:
    """Account 1 withdraws to account 2's deposit address; the watcher credits account 2
    and the process dies before the processor confirms the payout.  The restart's new
    embedded chain cannot mine that transaction: refunding it as well would create the
    amount twice (found by review).  It is completed instead."""
    de, submit, store = parts
    old = FundsClient("embedded", None, KEY, confirmations=1)
    usdt = old.deploy_token("Tether", "USDT", 6, 10**12)
    addresses = DepositAddresses(HDWallet(MNEMONIC), store)
    watcher = DepositWatcher(old, store, addresses, [WatchedToken("USDT", usdt.lower(), 6)],
                             ASSETS, submit, 1, start_block=0)
    proc = WithdrawalProcessor(old, store, {"USDT": PayAsset("USDT", usdt, 6)}, ASSETS,
                               submit, 1)
    submit(Deposit(PAYER, "USDT", 50 * 10**8, "seed"))
    row = proc.request(PAYER, "USDT", 30 * 10**8, addresses.address(PAYEE))
    proc.step()  # signed and sent: mined at once on the embedded chain
    assert store.withdrawal(row.id).state == "SENT"  # type: ignore[union-attr]
    watcher.step()  # the payee's deposit is 1 block deep: credited
    assert de.engine.balances.available(PAYEE, "USDT") == 30 * 10**8
    # -- the process dies here; the restart brings a new embedded chain --
    new = FundsClient("embedded", None, KEY, confirmations=1)
    usdt2 = new.deploy_token("Tether", "USDT", 6, 10**12)
    proc2 = WithdrawalProcessor(new, store, {"USDT": PayAsset("USDT", usdt2, 6)},
                                ASSETS, submit, 1)
    proc2.step()
    got = store.withdrawal(row.id)
    assert got is not None and got.state == "COMPLETED"
    payer = (de.engine.balances.available(PAYER, "USDT"),
             de.engine.balances.frozen(PAYER, "USDT"))
    assert payer == (20 * 10**8, 0)  # paid once, not refunded
    total = sum(de.engine.balances.available(a, "USDT") for a in (PAYER, PAYEE))
    assert total == 50 * 10**8  # nothing created


def _watcher(client: FundsClient, store: FundStore, submit, token: str | None = None
             ) -> DepositWatcher:
    tokens = [WatchedToken("USDT", token.lower(), 6)] if token else []
    return DepositWatcher(client, store, DepositAddresses(HDWallet(MNEMONIC), store), tokens,
                          ASSETS, submit, 1, native_asset="ETH", start_block=0)


def test_a_deposit_credited_just_before_the_crash_keeps_its_history(
        parts: tuple[DurableEngine, Submit, FundStore], monkeypatch) -> None:
    """The core took the Deposit, then the row's update failed (a locked store) and the
    process died: the restart's new embedded chain must not drop that PENDING row as
    if it had never been credited (the balance would show a deposit with no record)."""
    de, submit, store = parts
    old = FundsClient("embedded", None, KEY, confirmations=1)
    w = _watcher(old, store, submit)
    old.pay(None, w.addresses.address(PAYEE), 3 * 10**18)  # 3 ETH, 1 deep at once

    def locked(*a: object, **k: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "deposit_done", locked)
    with pytest.raises(sqlite3.OperationalError):
        w.step()
    monkeypatch.undo()
    assert de.engine.balances.available(PAYEE, "ETH") == 3 * 10**8  # credited
    assert [r.state for r in store.deposits(PAYEE)] == ["PENDING"]  # not recorded
    # -- the process dies; the restart brings a new embedded chain --
    _watcher(FundsClient("embedded", None, KEY, confirmations=1), store, submit)
    rows = store.deposits(PAYEE)
    assert [(r.state, r.units) for r in rows] == [("CREDITED", 3 * 10**8)]
    assert de.engine.balances.available(PAYEE, "ETH") == 3 * 10**8  # once


def test_dust_deposits_of_a_gone_chain_stay_in_the_history(
        parts: tuple[DurableEngine, Submit, FundStore]) -> None:
    """A payment finer than the asset's decimals is recorded as DUST (never credited);
    the restart's rescan of the new chain must not delete the old chain's record."""
    de, submit, store = parts
    old = FundsClient("embedded", None, KEY, confirmations=1)
    w = _watcher(old, store, submit)
    old.pay(None, w.addresses.address(PAYEE), 10**9)  # 1e-9 ETH: below 8 decimals
    w.step()
    assert [r.state for r in store.deposits(PAYEE)] == ["DUST"]
    _watcher(FundsClient("embedded", None, KEY, confirmations=1), store, submit)
    assert [r.state for r in store.deposits(PAYEE)] == ["DUST"]


def test_a_row_failing_every_step_does_not_stop_the_rows_behind_it(
        parts: tuple[DurableEngine, Submit, FundStore]) -> None:
    """An ETH withdrawal held before a restart whose config no longer pays ETH fails at
    every step; the USDT withdrawal behind it is still signed, sent and completed (the
    failure holds no signed transaction, so nothing has to wait for its nonce)."""
    de, submit, store = parts
    c = FundsClient("embedded", None, KEY, confirmations=1)
    usdt = c.deploy_token("Tether", "USDT", 6, 10**12)
    pay = {"USDT": PayAsset("USDT", usdt, 6), "ETH": PayAsset("ETH", None, 18)}
    submit(Deposit(PAYER, "USDT", 50 * 10**8, "s1"))
    submit(Deposit(PAYER, "ETH", 5 * 10**8, "s2"))
    before = WithdrawalProcessor(c, store, pay, ASSETS, submit, 1)
    eth = before.request(PAYER, "ETH", 10**8, "0x" + "44" * 20)
    usd = before.request(PAYER, "USDT", 10**8, "0x" + "55" * 20)
    after = WithdrawalProcessor(c, store, {"USDT": pay["USDT"]}, ASSETS, submit, 1)
    for _ in range(4):
        with pytest.raises(KeyError):
            after.step()
        c.mine(1)
    assert store.withdrawal(usd.id).state == "COMPLETED"  # type: ignore[union-attr]
    assert store.withdrawal(eth.id).state == "HELD"  # type: ignore[union-attr]


def test_an_idle_embedded_chain_mines_nothing_and_a_pending_deposit_gets_its_blocks(
        parts: tuple[DurableEngine, Submit, FundStore]) -> None:
    """Empty blocks (~2.3 ms of py-evm each, under the server's GIL) are mined only while
    something awaits confirmations: here a deposit 3 blocks short of N = 3."""
    de, submit, store = parts
    c = FundsClient("embedded", None, KEY, confirmations=3, block_time_s=0.05)
    w = DepositWatcher(c, store, DepositAddresses(HDWallet(MNEMONIC), store), [], ASSETS,
                       submit, 3, native_asset="ETH", start_block=0)
    proc = WithdrawalProcessor(c, store, {"ETH": PayAsset("ETH", None, 18)}, ASSETS,
                               submit, 3)
    head = c.head()
    for _ in range(4):
        w.step()
        proc.step()
        time.sleep(0.06)
    assert c.head() == head  # idle: no block
    c.pay(None, w.addresses.address(PAYEE), 10**18)  # one block, 1 deep
    for _ in range(40):
        w.step()
        if de.engine.balances.available(PAYEE, "ETH"):
            break
        time.sleep(0.06)
    assert de.engine.balances.available(PAYEE, "ETH") == 10**8
    assert c.head() == head + 3  # the payment's block and two empty ones, no more
    for _ in range(3):
        w.step()
        time.sleep(0.06)
    assert c.head() == head + 3  # idle again
