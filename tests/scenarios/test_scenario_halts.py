"""Symbol status (admin halt, cancel-only, resume) and the account kill switch."""

from __future__ import annotations

import pytest

from chainbook.domain import commands as C
from chainbook.domain.enums import CancelReason, OrderType, Reject, Side, SymbolStatus, TimeInForce
from chainbook.domain.events import (
    KillSwitchChanged,
    OrderAmended,
    OrderCanceled,
    SymbolStatusChanged,
    Trade,
)

BUY, SELL = Side.BUY, Side.SELL
MARKET, IOC = OrderType.MARKET, TimeInForce.IOC
HALTED, CANCEL_ONLY, TRADING = SymbolStatus.HALTED, SymbolStatus.CANCEL_ONLY, SymbolStatus.TRADING


def _status(ex, status, symbol="BTCUSDT"):
    ev = ex.apply(C.SetSymbolStatus(symbol, status))
    assert ev == [SymbolStatusChanged(symbol, status, "admin", 0)]


def test_halted_rejects_every_order_command_including_cancels(ex):
    bid = ex.rest(1, BUY, 990, 2, client_id="b")
    _status(ex, HALTED)
    nt = Reject.SYMBOL_NOT_TRADING
    ex.rejected(ex.order_cmd(2, SELL, 990, 1), nt)
    ex.rejected(ex.order_cmd(2, SELL, None, 1, type=MARKET, tif=IOC), nt)  # MARKET IOC
    ex.rejected(C.CancelOrder(1, "BTCUSDT", bid, None), nt)
    ex.rejected(C.CancelOrder(1, "BTCUSDT", None, "b"), nt)
    ex.rejected(C.CancelAll(1, "BTCUSDT"), nt)
    ex.rejected(C.AmendOrder(1, "BTCUSDT", bid, None, None, 1), nt)
    assert ex.open_ids() == [bid] and ex.depth(BUY) == [(990, 2)]


def test_halt_is_per_symbol(ex):
    _status(ex, HALTED)
    ex.rest(1, BUY, 50, 1, symbol="ETHUSDT")
    ev = ex.sell(2, 50, 1, symbol="ETHUSDT")
    assert ex.one(ev, Trade).qty == 1


def test_cancel_only_allows_cancels_and_nothing_else(ex):
    b1 = ex.rest(1, BUY, 990, 2)
    b2 = ex.rest(1, BUY, 991, 2)
    b3 = ex.rest(3, BUY, 992, 2)
    _status(ex, CANCEL_ONLY)
    nt = Reject.SYMBOL_NOT_TRADING
    ex.rejected(ex.order_cmd(2, SELL, 990, 1), nt)
    ex.rejected(C.AmendOrder(1, "BTCUSDT", b1, None, 995, None), nt)
    assert ex.one(ex.cancel(1, b1), OrderCanceled).order_id == b1
    assert [c.order_id for c in ex.of(ex.cancel_all(3), OrderCanceled)] == [b3]
    assert ex.open_ids() == [b2]


def test_resume_restores_trading_with_the_book_intact(ex):
    ask = ex.rest(2, SELL, 1000, 2)
    _status(ex, HALTED)
    _status(ex, TRADING)
    ev = ex.buy(1, 1000, 2)
    assert ex.one(ev, Trade).maker_order_id == ask


def test_balance_commands_work_while_halted(ex):
    _status(ex, HALTED)
    ex.apply(C.Deposit(1, "USDT", 5, "while-halted"))
    ex.apply(C.WithdrawHold(1, "USDT", 5, "w-halted"))
    assert ex.frozen(1, "USDT") == 5


def test_status_of_unknown_symbol_is_rejected(ex):
    ex.rejected(C.SetSymbolStatus("NOPE", HALTED), Reject.UNKNOWN_SYMBOL)


# --- kill switch -------------------------------------------------------------------------


def test_kill_switch_cancels_everywhere_and_blocks_place_and_amend(ex):
    b = ex.rest(1, BUY, 990, 2)
    a = ex.rest(1, SELL, 1010, 3)
    e = ex.rest(1, BUY, 50, 4, symbol="ETHUSDT")
    theirs = ex.rest(2, BUY, 989, 1)
    ev = ex.apply(C.SetKillSwitch(1, True))
    canceled = ex.of(ev, OrderCanceled)
    assert sorted(c.order_id for c in canceled) == sorted([a, b, e])
    assert all(c.reason == CancelReason.KILL_SWITCH for c in canceled)
    assert ex.one(ev, KillSwitchChanged) == KillSwitchChanged(1, True)
    assert ex.frozen(1, "USDT") == 0 and ex.frozen(1, "BTC") == 0
    assert ex.open_ids() == [theirs] and ex.open_ids("ETHUSDT") == []
    blocked = Reject.ACCOUNT_BLOCKED
    ex.rejected(ex.order_cmd(1, BUY, 990, 1), blocked)
    ex.rejected(ex.order_cmd(1, BUY, None, 1, type=MARKET, tif=IOC), blocked)
    ex.rejected(ex.order_cmd(1, BUY, 50, 1, symbol="ETHUSDT"), blocked)
    ex.rejected(C.AmendOrder(1, "BTCUSDT", b, None, 991, None), blocked)
    # other accounts trade on
    assert ex.one(ex.sell(3, 989, 1), Trade).maker_order_id == theirs


def test_kill_switch_off_accepts_orders_again(ex):
    ex.apply(C.SetKillSwitch(1, True))
    ev = ex.apply(C.SetKillSwitch(1, False))
    assert ev == [KillSwitchChanged(1, False)]
    ex.rest(1, BUY, 990, 1)


def test_kill_switch_still_lets_funds_move(ex):
    ex.apply(C.SetKillSwitch(1, True))
    ex.apply(C.WithdrawHold(1, "USDT", 100, "w-k"))
    ex.apply(C.WithdrawComplete("w-k"))
    ex.apply(C.Deposit(1, "USDT", 7, "d-k"))
    assert ex.total(1, "USDT") == 10_000_000 - 100 + 7


@pytest.mark.parametrize("status", [HALTED, CANCEL_ONLY])
def test_kill_switch_cancels_on_a_stopped_symbol_too(ex, status):
    b = ex.rest(1, BUY, 990, 2)
    _status(ex, status)
    ev = ex.apply(C.SetKillSwitch(1, True))
    assert [c.order_id for c in ex.of(ev, OrderCanceled)] == [b]
    assert ex.frozen(1, "USDT") == 0


def test_amend_allowed_again_after_resume(ex):
    b = ex.rest(1, BUY, 990, 2)
    _status(ex, CANCEL_ONLY)
    _status(ex, TRADING)
    assert ex.one(ex.amend(1, b, new_qty=1), OrderAmended).kept_priority
