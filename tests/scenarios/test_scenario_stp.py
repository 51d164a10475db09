"""Self-trade prevention, Binance semantics: the taker's mode decides; DEFAULT = symbol's."""

from __future__ import annotations

import pytest

from chainbook.domain.enums import ExpireReason, Side, Stp, TimeInForce
from chainbook.domain.events import OrderExpired, Trade

BUY, SELL = Side.BUY, Side.SELL


def _own_then_other(ex):
    """Account 1 rests 2 @ 1000 first, account 2 rests 2 @ 1000 behind it."""
    own = ex.rest(1, SELL, 1000, 2, stp=Stp.NONE)
    other = ex.rest(2, SELL, 1000, 2)
    return own, other


def test_none_trades_with_itself(ex):
    own, other = _own_then_other(ex)
    usdt, btc = ex.total(1, "USDT"), ex.total(1, "BTC")
    ev = ex.buy(1, 1000, 3, stp=Stp.NONE)
    trades = ex.of(ev, Trade)
    assert [(t.maker_order_id, t.qty) for t in trades] == [(own, 2), (other, 1)]
    assert trades[0].maker_account == trades[0].taker_account == 1
    assert not ex.of(ev, OrderExpired)
    # the self-trade moves nothing but fees: 2000 notional, maker 2 + taker 4
    self_fees = 2000 * 10 // 10_000 + 2000 * 20 // 10_000
    other_cost = 1000 + 1000 * 20 // 10_000
    assert ex.total(1, "USDT") == usdt - self_fees - other_cost
    assert ex.total(1, "BTC") == btc - 200 + 300


def test_expire_taker_stops_the_taker_and_keeps_the_maker(ex):
    own, other = _own_then_other(ex)
    ev = ex.buy(1, 1000, 3, stp=Stp.EXPIRE_TAKER)
    assert not ex.of(ev, Trade)
    exp = ex.one(ev, OrderExpired)
    assert exp.order_id != own
    assert (exp.expired_qty, exp.filled_qty, exp.reason) == (3, 0, ExpireReason.STP)
    assert ex.open_ids() == [own, other]
    assert ex.depth(SELL) == [(1000, 4)] and ex.depth(BUY) == []
    assert ex.frozen(1, "USDT") == 0


def test_expire_taker_after_partial_fill(ex):
    other = ex.rest(2, SELL, 1000, 2)
    own = ex.rest(1, SELL, 1001, 2)
    ev = ex.buy(1, 1001, 3, stp=Stp.EXPIRE_TAKER)
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(other, 2)]
    exp = ex.one(ev, OrderExpired)
    assert (exp.expired_qty, exp.filled_qty, exp.reason) == (1, 2, ExpireReason.STP)
    assert ex.open_ids() == [own]
    assert ex.frozen(1, "USDT") == 0  # the taker's leftover reserve went back


def test_expire_maker_removes_own_orders_and_keeps_matching(ex):
    own, other = _own_then_other(ex)
    ev = ex.buy(1, 1000, 3, stp=Stp.EXPIRE_MAKER)
    expired = ex.of(ev, OrderExpired)
    assert [(e.order_id, e.expired_qty, e.filled_qty, e.reason) for e in expired] == [
        (own, 2, 0, ExpireReason.STP)
    ]
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(other, 2)]
    taker = ex.of(ev, Trade)[0].taker_order_id
    assert ex.open_ids() == [taker]  # the remaining 1 lot rests
    assert ex.depth(BUY) == [(1000, 1)] and ex.depth(SELL) == []
    assert ex.frozen(1, "BTC") == 0  # the expired maker's base is released


def test_expire_both_expires_maker_and_taker(ex):
    own, other = _own_then_other(ex)
    ev = ex.buy(1, 1000, 3, stp=Stp.EXPIRE_BOTH)
    assert not ex.of(ev, Trade)
    expired = ex.of(ev, OrderExpired)
    assert [e.order_id for e in expired][0] == own
    assert all(e.reason == ExpireReason.STP for e in expired) and len(expired) == 2
    assert ex.open_ids() == [other]
    assert ex.frozen(1, "USDT") == 0 and ex.frozen(1, "BTC") == 0


def test_taker_mode_decides_not_the_makers(ex):
    own = ex.rest(1, SELL, 1000, 2, stp=Stp.EXPIRE_BOTH)
    ev = ex.buy(1, 1000, 2, stp=Stp.NONE)
    assert [t.maker_order_id for t in ex.of(ev, Trade)] == [own]


@pytest.mark.parametrize("default", [Stp.NONE, Stp.EXPIRE_TAKER, Stp.EXPIRE_MAKER,
                                     Stp.EXPIRE_BOTH])
def test_default_uses_the_symbol_default(make_exchange, default):
    ex = make_exchange(default_stp=default)
    own, other = _own_then_other(ex)
    ev = ex.buy(1, 1000, 3, stp=Stp.DEFAULT)
    traded = [t.maker_order_id for t in ex.of(ev, Trade)]
    expired = {e.order_id for e in ex.of(ev, OrderExpired)}
    taker = ev[0].order_id  # OrderAccepted comes first
    expect = {
        Stp.NONE: ([own, other], set()),
        Stp.EXPIRE_TAKER: ([], {taker}),
        Stp.EXPIRE_MAKER: ([other], {own}),
        Stp.EXPIRE_BOTH: ([], {own, taker}),
    }[default]
    assert (traded, expired) == expect


def test_ioc_expire_maker_then_expires_its_own_remainder_for_ioc(ex):
    own, other = _own_then_other(ex)
    ev = ex.buy(1, 1000, 5, stp=Stp.EXPIRE_MAKER, tif=TimeInForce.IOC)
    reasons = [(e.order_id == own, e.reason) for e in ex.of(ev, OrderExpired)]
    assert reasons == [(True, ExpireReason.STP), (False, ExpireReason.IOC)]
    assert sum(t.qty for t in ex.of(ev, Trade)) == 2


def test_fok_counts_only_what_stp_lets_it_trade(ex):
    own, other = _own_then_other(ex)
    # EXPIRE_MAKER: only account 2's 2 lots are tradable, so an FOK for 3 dies whole
    ev = ex.buy(1, 1000, 3, stp=Stp.EXPIRE_MAKER, tif=TimeInForce.FOK)
    assert not ex.of(ev, Trade)
    assert ex.one(ev, OrderExpired).reason == ExpireReason.FOK
    assert ex.open_ids() == [own, other]
    # for 2 it fills, expiring the own order on the way
    ev = ex.buy(1, 1000, 2, stp=Stp.EXPIRE_MAKER, tif=TimeInForce.FOK)
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(other, 2)]
    assert [e.order_id for e in ex.of(ev, OrderExpired)] == [own]


def test_market_by_qty_expire_maker_skips_own_orders(ex):
    own, other = _own_then_other(ex)
    ev = ex.market(1, BUY, qty=2, stp=Stp.EXPIRE_MAKER)
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(other, 2)]
    assert [e.order_id for e in ex.of(ev, OrderExpired)] == [own]
    assert ex.frozen(1, "USDT") == 0


def test_market_by_qty_expire_taker_stops_at_own_order(ex):
    other = ex.rest(2, SELL, 1000, 1)
    ex.rest(1, SELL, 1001, 2)
    ev = ex.market(1, BUY, qty=3, stp=Stp.EXPIRE_TAKER)
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(other, 1)]
    exp = ex.one(ev, OrderExpired)
    assert (exp.expired_qty, exp.filled_qty, exp.reason) == (2, 1, ExpireReason.STP)
    assert ex.frozen(1, "USDT") == 0


def test_market_by_quote_expire_taker_reports_stp(ex):
    """A quote-amount market order stopped by STP is EXPIRED for STP (Binance
    EXPIRED_IN_MATCH), like the same order by quantity -- not silently FILLED."""
    other = ex.rest(2, SELL, 1000, 1)
    ex.rest(1, SELL, 1001, 2)
    ev = ex.market(1, BUY, quote_qty=3003, stp=Stp.EXPIRE_TAKER)
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(other, 1)]
    exp = ex.of(ev, OrderExpired)
    assert len(exp) == 1 and exp[0].reason == ExpireReason.STP
    assert ex.frozen(1, "USDT") == 0


def test_market_by_quote_expire_both_expires_own_maker_too(ex):
    """EXPIRE_BOTH on a quote-amount market order that reaches its own resting order
    expires that order as well as the taker, as it does for the same order by quantity."""
    other = ex.rest(2, SELL, 1000, 1)
    own = ex.rest(1, SELL, 1001, 2)
    ev = ex.market(1, BUY, quote_qty=3003, stp=Stp.EXPIRE_BOTH)
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(other, 1)]
    assert own in {e.order_id for e in ex.of(ev, OrderExpired)}
    assert own not in ex.open_ids()


def test_market_by_qty_expire_both_expires_own_maker(ex):
    other = ex.rest(2, SELL, 1000, 1)
    own = ex.rest(1, SELL, 1001, 2)
    ev = ex.market(1, BUY, qty=3, stp=Stp.EXPIRE_BOTH)
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(other, 1)]
    assert [(e.order_id == own, e.reason) for e in ex.of(ev, OrderExpired)] == [
        (True, ExpireReason.STP), (False, ExpireReason.STP)]
    assert ex.open_ids() == []


def test_market_by_quote_expire_maker_expires_own_makers_it_reaches(ex):
    """EXPIRE_MAKER: a quote-amount market order meets (and expires) the own resting
    orders its amount reaches, as the same order by quantity does, also when nothing
    else is in reach (it was accepted for 0 lots and left them resting) and when they
    sit behind its fills (found by review)."""
    own = ex.rest(1, SELL, 1000, 2)
    ev = ex.market(1, BUY, quote_qty=3003, stp=Stp.EXPIRE_MAKER)
    assert not ex.of(ev, Trade)
    assert [(e.order_id, e.reason) for e in ex.of(ev, OrderExpired)][0] == (
        own, ExpireReason.STP)
    assert own not in ex.open_ids() and ex.frozen(1, "USDT") == 0
    other = ex.rest(2, SELL, 1000, 1)
    own2 = ex.rest(1, SELL, 1001, 1)
    far = ex.rest(2, SELL, 1005, 5)  # the 1003 left after the fill cannot reach 1005
    ev = ex.market(1, BUY, quote_qty=2003, stp=Stp.EXPIRE_MAKER)
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(other, 1)]
    assert own2 in {e.order_id for e in ex.of(ev, OrderExpired)}
    assert own2 not in ex.open_ids() and far in ex.open_ids()
    poor = ex.rest(1, SELL, 1001, 1)
    ev = ex.market(1, BUY, quote_qty=1000, stp=Stp.EXPIRE_MAKER)  # cannot reach 1001
    assert poor in ex.open_ids() and not ex.of(ev, Trade)
