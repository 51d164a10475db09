"""Deposits and withdrawals: idempotent by external id; hold, then complete or refund."""

from __future__ import annotations

import pytest

from chainbook.domain import commands as C
from chainbook.domain.enums import Reject, Side
from chainbook.domain.events import (
    BalanceChanged,
    Deposited,
    WithdrawalCompleted,
    WithdrawalHeld,
    WithdrawalRefunded,
)

START_USDT = 10_000_000


def test_deposit_credits_available(ex):
    ev = ex.apply(C.Deposit(7, "USDT", 500, "tx1:0"))
    assert ev == [Deposited(7, "USDT", 500, "tx1:0"), BalanceChanged(7, "USDT", 500, 0)]
    assert ex.engine.balances.deposited["USDT"] == 3 * START_USDT + 500


def test_duplicate_deposit_is_rejected_and_changes_nothing(ex):
    ex.apply(C.Deposit(7, "USDT", 500, "tx1:0"))
    ex.rejected(C.Deposit(7, "USDT", 500, "tx1:0"), Reject.DUPLICATE_EXTERNAL_ID)
    ex.rejected(C.Deposit(8, "BTC", 1, "tx1:0"), Reject.DUPLICATE_EXTERNAL_ID)
    assert ex.total(7, "USDT") == 500
    ex.apply(C.Deposit(7, "USDT", 500, "tx1:1"))  # another log index is another deposit
    assert ex.total(7, "USDT") == 1_000


@pytest.mark.parametrize("amount,asset", [(0, "USDT"), (-1, "USDT"), (5, "")])
def test_bad_deposit_is_rejected(ex, amount, asset):
    ex.rejected(C.Deposit(7, asset, amount, "bad"), Reject.INVALID_AMOUNT)
    ex.apply(C.Deposit(7, "USDT", 5, "bad"))  # the id was not used up


def test_withdraw_hold_then_complete(ex):
    ev = ex.apply(C.WithdrawHold(1, "USDT", 1_000, "w1"))
    assert ev == [WithdrawalHeld(1, "USDT", 1_000, "w1"),
                  BalanceChanged(1, "USDT", START_USDT - 1_000, 1_000)]
    ev = ex.apply(C.WithdrawComplete("w1"))
    assert ev == [WithdrawalCompleted(1, "USDT", 1_000, "w1"),
                  BalanceChanged(1, "USDT", START_USDT - 1_000, 0)]
    assert ex.engine.balances.withdrawn["USDT"] == 1_000
    ex.rejected(C.WithdrawComplete("w1"), Reject.WITHDRAWAL_NOT_PENDING)
    ex.rejected(C.WithdrawRefund("w1"), Reject.WITHDRAWAL_NOT_PENDING)
    ex.rejected(C.WithdrawHold(1, "USDT", 1_000, "w1"), Reject.DUPLICATE_EXTERNAL_ID)


def test_withdraw_hold_then_refund(ex):
    ex.apply(C.WithdrawHold(1, "USDT", 1_000, "w2"))
    ev = ex.apply(C.WithdrawRefund("w2"))
    assert ev == [WithdrawalRefunded(1, "USDT", 1_000, "w2"),
                  BalanceChanged(1, "USDT", START_USDT, 0)]
    assert ex.engine.balances.withdrawn.get("USDT", 0) == 0
    ex.rejected(C.WithdrawRefund("w2"), Reject.WITHDRAWAL_NOT_PENDING)
    ex.rejected(C.WithdrawComplete("w2"), Reject.WITHDRAWAL_NOT_PENDING)


def test_unknown_withdrawal_is_rejected(ex):
    ex.rejected(C.WithdrawComplete("nope"), Reject.UNKNOWN_WITHDRAWAL)
    ex.rejected(C.WithdrawRefund("nope"), Reject.UNKNOWN_WITHDRAWAL)


@pytest.mark.parametrize("amount,asset", [(0, "USDT"), (-3, "USDT"), (1, "")])
def test_bad_withdrawal_amount_is_rejected(ex, amount, asset):
    ex.rejected(C.WithdrawHold(1, asset, amount, "w-bad"), Reject.INVALID_AMOUNT)


def test_cannot_withdraw_frozen_funds(make_exchange):
    ex = make_exchange(accounts=())
    ex.apply(C.Deposit(1, "USDT", 10_020, "d"))
    ex.rest(1, Side.BUY, 1000, 10)  # freezes all 10_020
    ex.rejected(C.WithdrawHold(1, "USDT", 1, "w"), Reject.INSUFFICIENT_BALANCE)
    ex.cancel_all(1)
    ex.apply(C.WithdrawHold(1, "USDT", 10_020, "w"))  # the rejected try did not use the id


def test_held_withdrawal_funds_cannot_back_an_order(make_exchange):
    ex = make_exchange(accounts=())
    ex.apply(C.Deposit(1, "USDT", 10_020, "d"))
    ex.apply(C.WithdrawHold(1, "USDT", 10, "w"))
    ex.rejected(ex.order_cmd(1, Side.BUY, 1000, 10), Reject.INSUFFICIENT_BALANCE)
    ex.apply(C.WithdrawRefund("w"))
    ex.rest(1, Side.BUY, 1000, 10)


def test_withdraw_more_than_available_is_rejected(ex):
    ex.rejected(C.WithdrawHold(1, "USDT", START_USDT + 1, "w"), Reject.INSUFFICIENT_BALANCE)
    ex.rejected(C.WithdrawHold(9, "USDT", 1, "w9"), Reject.INSUFFICIENT_BALANCE)


def test_traded_funds_can_be_withdrawn(ex):
    ex.rest(2, Side.SELL, 1000, 1)
    ex.buy(1, 1000, 1)
    ex.apply(C.WithdrawHold(2, "USDT", START_USDT + 999, "w-all"))
    ex.apply(C.WithdrawComplete("w-all"))
    assert ex.total(2, "USDT") == 0


def test_the_deposit_cap_counts_what_is_held_not_every_deposit_ever(make_exchange):
    """An asset's deposits are capped so balances stay within 64 bits; withdrawn funds
    are no longer held, so they must not count against the cap.  Many full cycles of
    deposit and withdrawal keep the state encodable (the snapshot holds the totals)."""
    from chainbook.engine.funds import MAX_AMOUNT
    from chainbook.engine.state import check, export_state, state_hash
    from chainbook.journal.snapshot import encode_snapshot

    ex = make_exchange(accounts=())
    for i in range(6):  # 6 x (2**63 - 1) passes through: far past 2**64
        ex.apply(C.Deposit(1, "ETH", MAX_AMOUNT, f"d{i}"))
        assert ex.total(1, "ETH") == MAX_AMOUNT
        ex.rejected(C.Deposit(2, "ETH", 1, f"over{i}"), Reject.INVALID_AMOUNT)
        ex.apply(C.WithdrawHold(1, "ETH", MAX_AMOUNT, f"w{i}"))
        ex.rejected(C.Deposit(2, "ETH", 1, f"held{i}"), Reject.INVALID_AMOUNT)  # frozen
        ex.apply(C.WithdrawComplete(f"w{i}"))
        assert ex.total(1, "ETH") == 0
        check(ex.engine)
        assert len(state_hash(ex.engine)) == 64
        assert encode_snapshot(export_state(ex.engine))
    ex.apply(C.Deposit(2, "ETH", 5, "after"))
    assert ex.engine.balances.held("ETH") == 5
    check(ex.engine)
