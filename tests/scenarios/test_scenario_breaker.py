"""Circuit breaker: trips before the breaching trade, inside the command; lifts after cooldown."""

from __future__ import annotations

import pytest

from chainbook.domain import commands as C
from chainbook.domain.enums import (
    BreakerAction,
    ExpireReason,
    Reject,
    Side,
    SymbolStatus,
    TimeInForce,
)
from chainbook.domain.events import (
    OrderCanceled,
    OrderExpired,
    SymbolStatusChanged,
    Trade,
)

BUY, SELL = Side.BUY, Side.SELL
SEC = 1_000_000_000
WINDOW, COOLDOWN = 1 * SEC, 10 * SEC


@pytest.fixture
def bx(make_exchange):
    """BTCUSDT with a 5% breaker over 1 s, 10 s cooldown, halting."""
    return make_exchange(breaker_bps=500, breaker_window_ns=WINDOW,
                         breaker_cooldown_ns=COOLDOWN, breaker_action=BreakerAction.HALT)


def _print(ex, price):
    """Make one trade at ``price`` between accounts 2 (maker) and 3."""
    ex.rest(2, SELL, price, 1)
    assert ex.one(ex.buy(3, price, 1), Trade).price == price


def test_trip_inside_the_command_before_the_breaching_trade(bx):
    _print(bx, 1000)
    bx.rest(2, SELL, 1010, 1)
    bx.rest(2, SELL, 1040, 1)
    breach = bx.rest(2, SELL, 1060, 1)  # 6% above the window min of 1000
    ev = bx.buy(1, 1100, 3)
    assert bx.kinds(ev)[:5] == ["OrderAccepted", "Trade", "Trade", "SymbolStatusChanged",
                                "OrderExpired"]
    assert [t.price for t in bx.of(ev, Trade)] == [1010, 1040]  # 1060 never prints
    st = bx.one(ev, SymbolStatusChanged)
    assert st.status == SymbolStatus.HALTED
    assert st.reason.startswith("circuit_breaker")
    assert "1060" in st.reason
    assert st.until_ts == bx.ts + COOLDOWN
    exp = bx.one(ev, OrderExpired)
    assert (exp.expired_qty, exp.filled_qty, exp.reason) == (1, 2, ExpireReason.CIRCUIT_BREAKER)
    assert bx.status() == SymbolStatus.HALTED
    assert bx.open_ids() == [breach]  # the GTC remainder did not rest
    assert bx.frozen(1, "USDT") == 0
    assert bx.engine.symbols["BTCUSDT"].last_price == 1040


def test_exactly_at_the_threshold_does_not_trip(bx):
    _print(bx, 1000)
    bx.rest(2, SELL, 1050, 1)  # +5.00%
    ev = bx.buy(1, 1050, 1)
    assert bx.one(ev, Trade).price == 1050
    assert bx.status() == SymbolStatus.TRADING


def test_downward_move_is_measured_from_the_window_max(bx):
    _print(bx, 1000)
    _print(bx, 1040)  # window 1000..1040
    bx.rest(1, BUY, 989, 1)  # 1040 * 0.95 = 988: still inside
    bx.rest(1, BUY, 987, 1)  # outside
    ev = bx.sell(3, 980, 2)
    assert [t.price for t in bx.of(ev, Trade)] == [989]
    assert bx.one(ev, SymbolStatusChanged).status == SymbolStatus.HALTED
    assert bx.one(ev, OrderExpired).reason == ExpireReason.CIRCUIT_BREAKER


def test_old_trades_leave_the_window(bx):
    _print(bx, 1000)
    bx.advance(2 * WINDOW)
    _print(bx, 1100)  # the 1000 print is out of the window: no reference, no trip
    assert bx.status() == SymbolStatus.TRADING
    bx.rest(2, SELL, 1150, 1)  # +4.5% from 1100
    bx.buy(3, 1150, 1)
    assert bx.status() == SymbolStatus.TRADING


def test_halt_rejects_during_cooldown_and_lifts_at_first_order_command_past_it(bx):
    _print(bx, 1000)
    bid = bx.rest(1, BUY, 900, 1)
    bx.rest(2, SELL, 1100, 1)
    until = bx.one(bx.buy(3, 1100, 1), SymbolStatusChanged).until_ts
    nt = Reject.SYMBOL_NOT_TRADING
    bx.rejected(bx.order_cmd(3, BUY, 1000, 1), nt, ts=until - 1)
    bx.rejected(C.CancelOrder(1, "BTCUSDT", bid, None), nt, ts=until - 1)
    # a balance command past until_ts does not lift it: only order commands do
    bx.apply(C.Deposit(1, "USDT", 1, "late"), ts=until + 5)
    assert bx.status() == SymbolStatus.HALTED
    ev = bx.cancel(1, bid)
    assert ev[0] == SymbolStatusChanged("BTCUSDT", SymbolStatus.TRADING, "cooldown_over", 0)
    assert bx.one(ev, OrderCanceled).order_id == bid
    assert bx.status() == SymbolStatus.TRADING


def test_lifts_at_exactly_until_ts(bx):
    _print(bx, 1000)
    bx.rest(2, SELL, 1100, 1)
    until = bx.one(bx.buy(3, 1100, 1), SymbolStatusChanged).until_ts
    ev = bx.place(1, BUY, 1000, 1, ts=until)
    assert bx.kinds(ev)[:2] == ["SymbolStatusChanged", "OrderAccepted"]


def test_rejected_order_past_cooldown_still_lifts_the_halt(bx):
    _print(bx, 1000)
    bx.rest(2, SELL, 1100, 1)
    until = bx.one(bx.buy(3, 1100, 1), SymbolStatusChanged).until_ts
    ev = bx.place(1, BUY, None, 1, ts=until + 1)  # LIMIT without price: bad params
    assert bx.kinds(ev) == ["SymbolStatusChanged", "OrderRejected"]
    assert bx.status() == SymbolStatus.TRADING


def test_cancel_only_action_allows_cancels_during_cooldown(make_exchange):
    ex = make_exchange(breaker_bps=500, breaker_window_ns=WINDOW,
                       breaker_cooldown_ns=COOLDOWN, breaker_action=BreakerAction.CANCEL_ONLY)
    _print(ex, 1000)
    bid = ex.rest(1, BUY, 900, 1)
    ex.rest(2, SELL, 1100, 1)
    st = ex.one(ex.buy(3, 1100, 1), SymbolStatusChanged)
    assert st.status == SymbolStatus.CANCEL_ONLY
    ex.rejected(ex.order_cmd(3, BUY, 1000, 1), Reject.SYMBOL_NOT_TRADING)
    assert ex.one(ex.cancel(1, bid), OrderCanceled).order_id == bid
    assert ex.status() == SymbolStatus.CANCEL_ONLY


def test_zero_cooldown_waits_for_admin(make_exchange):
    ex = make_exchange(breaker_bps=500, breaker_window_ns=WINDOW)
    _print(ex, 1000)
    ex.rest(2, SELL, 1100, 1)
    assert ex.one(ex.buy(3, 1100, 1), SymbolStatusChanged).until_ts == 0
    ex.rejected(ex.order_cmd(3, BUY, 1000, 1), Reject.SYMBOL_NOT_TRADING, ts=ex.ts + 3600 * SEC)
    ex.apply(C.SetSymbolStatus("BTCUSDT", SymbolStatus.TRADING))
    ex.rest(3, BUY, 1000, 1)


def test_admin_resume_clears_the_cooldown(bx):
    _print(bx, 1000)
    bx.rest(2, SELL, 1100, 1)
    bx.buy(3, 1100, 1)
    bx.apply(C.SetSymbolStatus("BTCUSDT", SymbolStatus.TRADING))
    assert bx.engine.symbols["BTCUSDT"].until_ts == 0
    ev = bx.buy(1, 900, 1, ts=bx.ts + 2 * COOLDOWN)
    assert "SymbolStatusChanged" not in bx.kinds(ev)


def test_market_by_qty_trips_the_breaker(bx):
    _print(bx, 1000)
    bx.rest(2, SELL, 1010, 1)
    bx.rest(2, SELL, 1100, 1)
    ev = bx.market(1, BUY, qty=2)
    assert [t.price for t in bx.of(ev, Trade)] == [1010]
    assert bx.one(ev, SymbolStatusChanged).status == SymbolStatus.HALTED
    exp = bx.one(ev, OrderExpired)
    assert (exp.expired_qty, exp.filled_qty, exp.reason) == (1, 1, ExpireReason.CIRCUIT_BREAKER)
    assert bx.frozen(1, "USDT") == 0


def test_market_by_quote_trips_the_breaker(bx):
    """A quote-amount market order that reaches a breaching price must trip the breaker
    in that command, like the same order by quantity does."""
    _print(bx, 1000)
    bx.rest(2, SELL, 1010, 1)
    bx.rest(2, SELL, 1100, 1)
    ev = bx.market(1, BUY, quote_qty=2200)  # enough for both asks
    assert [t.price for t in bx.of(ev, Trade)] == [1010]
    assert bx.status() == SymbolStatus.HALTED
    assert [e.reason for e in bx.of(ev, OrderExpired)] == [ExpireReason.CIRCUIT_BREAKER]


def test_amend_that_crosses_can_trip_the_breaker(bx):
    _print(bx, 1000)
    bx.rest(2, SELL, 1100, 1)
    bid = bx.rest(1, BUY, 1000, 1)
    ev = bx.amend(1, bid, new_price=1100)
    assert not bx.of(ev, Trade)
    assert bx.one(ev, SymbolStatusChanged).status == SymbolStatus.HALTED
    exp = bx.one(ev, OrderExpired)
    assert (exp.order_id, exp.reason) == (bid, ExpireReason.CIRCUIT_BREAKER)
    assert bx.frozen(1, "USDT") == 0


def test_ioc_sell_trips(bx):
    _print(bx, 1000)
    bx.rest(1, BUY, 900, 2)
    ev = bx.sell(3, 900, 2, tif=TimeInForce.IOC)
    assert not bx.of(ev, Trade)
    assert bx.one(ev, OrderExpired).reason == ExpireReason.CIRCUIT_BREAKER


def test_breaker_off_never_trips(ex):
    _print(ex, 1000)
    ex.rest(2, SELL, 5000, 1)
    ex.buy(3, 5000, 1)
    assert ex.status() == SymbolStatus.TRADING
