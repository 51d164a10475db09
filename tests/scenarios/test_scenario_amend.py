"""Amend: new_qty is the new total; same-price reduce keeps priority, anything else loses it."""

from __future__ import annotations

from chainbook.accounts.fees import buy_reserve
from chainbook.domain import commands as C
from chainbook.domain.enums import ExpireReason, OrderType, Reject, Side, Stp
from chainbook.domain.events import (
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    Trade,
)

BUY, SELL = Side.BUY, Side.SELL


def _two_asks(ex):
    a1 = ex.rest(2, SELL, 1000, 5)
    a2 = ex.rest(3, SELL, 1000, 5)
    return a1, a2


def test_reduce_at_same_price_keeps_priority(ex):
    a1, a2 = _two_asks(ex)
    ev = ex.amend(2, a1, new_qty=3)
    assert ex.one(ev, OrderAmended) == OrderAmended(a1, 2, "BTCUSDT", 1000, 3, 3, True)
    assert ex.depth(SELL) == [(1000, 8)]
    assert ex.frozen(2, "BTC") == 300
    ev = ex.buy(1, 1000, 4)
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(a1, 3), (a2, 1)]


def test_increase_loses_priority(ex):
    a1, a2 = _two_asks(ex)
    ev = ex.amend(2, a1, new_qty=6)
    assert ex.one(ev, OrderAmended).kept_priority is False
    assert ex.frozen(2, "BTC") == 600
    ev = ex.buy(1, 1000, 6)
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(a2, 5), (a1, 1)]


def test_price_change_loses_priority(ex):
    a1, a2 = _two_asks(ex)
    assert ex.one(ex.amend(2, a1, new_price=1001), OrderAmended).kept_priority is False
    assert ex.depth(SELL) == [(1000, 5), (1001, 5)]
    assert ex.one(ex.amend(2, a1, new_price=1000), OrderAmended).kept_priority is False
    ev = ex.buy(1, 1000, 6)
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(a2, 5), (a1, 1)]


def test_reduce_with_price_change_loses_priority(ex):
    a1, a2 = _two_asks(ex)
    ex.amend(2, a1, new_price=1001)
    ev = ex.amend(2, a1, new_price=1000, new_qty=2)
    assert ex.one(ev, OrderAmended) == OrderAmended(a1, 2, "BTCUSDT", 1000, 2, 2, False)
    ev = ex.buy(1, 1000, 6)
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(a2, 5), (a1, 1)]


def test_amend_that_crosses_trades(ex):
    ask = ex.rest(2, SELL, 1000, 3)
    bid = ex.rest(1, BUY, 990, 5)
    ev = ex.amend(1, bid, new_price=1000)
    assert ex.kinds(ev)[:2] == ["OrderAmended", "Trade"]
    t = ex.one(ev, Trade)
    assert (t.maker_order_id, t.taker_order_id, t.price, t.qty) == (ask, bid, 1000, 3)
    assert t.taker_side == BUY and t.taker_fee == 3000 * 20 // 10_000
    assert ex.depth(SELL) == [] and ex.depth(BUY) == [(1000, 2)]
    # what rests is exactly the reserve for the remaining 2 lots at 1000
    assert ex.frozen(1, "USDT") == buy_reserve(1000, 2, 1, 20)


def test_amend_that_crosses_and_fills_leaves_nothing_frozen(ex):
    ex.rest(2, SELL, 995, 3)
    bid = ex.rest(1, BUY, 990, 3)
    ev = ex.amend(1, bid, new_price=1000)
    assert sum(t.qty for t in ex.of(ev, Trade)) == 3
    assert ex.open_ids() == [] and ex.frozen(1, "USDT") == 0


def test_amend_of_partially_filled_order_counts_the_filled_part(ex):
    a1 = ex.rest(2, SELL, 1000, 5)
    ex.buy(1, 1000, 2)
    # new_qty is the new TOTAL: 2 filled + 1 left
    ev = ex.amend(2, a1, new_qty=3)
    assert ex.one(ev, OrderAmended) == OrderAmended(a1, 2, "BTCUSDT", 1000, 3, 1, True)
    assert ex.depth(SELL) == [(1000, 1)]
    assert ex.frozen(2, "BTC") == 100


def test_amend_to_qty_at_or_below_filled_is_rejected(ex):
    a1 = ex.rest(2, SELL, 1000, 5)
    ex.buy(1, 1000, 2)
    ex.rejected(C.AmendOrder(2, "BTCUSDT", a1, None, None, 2), Reject.AMEND_INVALID)
    ex.rejected(C.AmendOrder(2, "BTCUSDT", a1, None, None, 1), Reject.AMEND_INVALID)
    ex.rejected(C.AmendOrder(2, "BTCUSDT", a1, None, None, 0), Reject.AMEND_INVALID)


def test_amend_changing_nothing_is_rejected(ex):
    a1 = ex.rest(2, SELL, 1000, 5)
    ex.rejected(C.AmendOrder(2, "BTCUSDT", a1, None, None, None), Reject.AMEND_INVALID)
    ex.rejected(C.AmendOrder(2, "BTCUSDT", a1, None, 1000, 5), Reject.AMEND_INVALID)


def test_amend_to_higher_buy_price_without_funds_is_rejected(make_exchange):
    ex = make_exchange(accounts=(2,))
    ex.apply(C.Deposit(1, "USDT", 1_100, "small"))
    bid = ex.rest(1, BUY, 100, 10)  # reserve 1000 + 2
    assert ex.frozen(1, "USDT") == 1_002
    ex.rejected(C.AmendOrder(1, "BTCUSDT", bid, None, 110, None), Reject.INSUFFICIENT_BALANCE)
    ex.rejected(C.AmendOrder(1, "BTCUSDT", bid, None, None, 11), Reject.INSUFFICIENT_BALANCE)
    # 109 fits: 1090 + 2 = 1092 <= 1100
    ev = ex.amend(1, bid, new_price=109)
    assert ex.one(ev, OrderAmended).price == 109
    assert ex.frozen(1, "USDT") == 1_092 and ex.avail(1, "USDT") == 8


def test_amend_to_lower_buy_price_releases_funds(ex):
    bid = ex.rest(1, BUY, 1000, 10)
    assert ex.frozen(1, "USDT") == 10_020
    ex.amend(1, bid, new_price=500)
    assert ex.frozen(1, "USDT") == 5_010
    ex.amend(1, bid, new_qty=4)
    assert ex.frozen(1, "USDT") == 2_004


def test_amend_sell_increase_freezes_more_base(ex):
    a = ex.rest(2, SELL, 1000, 5)
    ex.amend(2, a, new_qty=8)
    assert ex.frozen(2, "BTC") == 800


def test_amend_by_client_id_and_client_id_survives_requeue(ex):
    ex.rest(2, SELL, 1000, 5, client_id="my-ask")
    ev = ex.amend(2, client_id="my-ask", new_price=1005)
    assert ex.one(ev, OrderAmended).price == 1005
    ev = ex.cancel(2, client_id="my-ask")
    assert ex.one(ev, OrderCanceled).client_id == "my-ask"
    assert ex.depth(SELL) == []


def test_amend_unknown_or_foreign_order_is_rejected(ex):
    a = ex.rest(2, SELL, 1000, 5)
    ex.rejected(C.AmendOrder(3, "BTCUSDT", a, None, 1001, None), Reject.UNKNOWN_ORDER)
    ex.rejected(C.AmendOrder(2, "BTCUSDT", 999, None, 1001, None), Reject.UNKNOWN_ORDER)
    ex.rejected(C.AmendOrder(2, "BTCUSDT", None, "nope", 1001, None), Reject.UNKNOWN_ORDER)
    ex.rejected(C.AmendOrder(2, "NOPE", a, None, 1001, None), Reject.UNKNOWN_SYMBOL)


def test_amend_of_filled_order_is_rejected(ex):
    a = ex.rest(2, SELL, 1000, 5)
    ex.buy(1, 1000, 5)
    ex.rejected(C.AmendOrder(2, "BTCUSDT", a, None, None, 3), Reject.UNKNOWN_ORDER)


def test_amend_limit_maker_into_the_spread_that_would_take_is_rejected(ex):
    ex.rest(2, SELL, 1000, 5)
    bid = ex.rest(1, BUY, 990, 5, type=OrderType.LIMIT_MAKER)
    ex.rejected(C.AmendOrder(1, "BTCUSDT", bid, None, 1000, None), Reject.WOULD_TAKE)
    assert ex.one(ex.amend(1, bid, new_price=999), OrderAmended).price == 999


def test_amend_crossing_into_own_order_applies_stp(ex):
    own = ex.rest(1, SELL, 1000, 2)
    bid = ex.rest(1, BUY, 990, 3, stp=Stp.EXPIRE_TAKER)
    ev = ex.amend(1, bid, new_price=1000)
    assert not ex.of(ev, Trade)
    exp = ex.one(ev, OrderExpired)
    assert (exp.order_id, exp.reason) == (bid, ExpireReason.STP)
    assert ex.open_ids() == [own]
    assert ex.frozen(1, "USDT") == 0


def test_amend_qty_filter_applies_to_new_total(make_exchange):
    ex = make_exchange(max_qty=10)
    a = ex.rest(2, SELL, 1000, 5)
    ex.rejected(C.AmendOrder(2, "BTCUSDT", a, None, None, 11), Reject.QTY_OUT_OF_RANGE)
    ex.amend(2, a, new_qty=10)
    assert ex.depth(SELL) == [(1000, 10)]


def test_increase_of_partially_filled_order_requeues_with_new_total(ex):
    a1 = ex.rest(2, SELL, 1000, 5)
    a2 = ex.rest(3, SELL, 1000, 5)
    ex.buy(1, 1000, 2)  # a1: 2 filled, 3 left
    ev = ex.amend(2, a1, new_qty=8)
    assert ex.one(ev, OrderAmended) == OrderAmended(a1, 2, "BTCUSDT", 1000, 8, 6, False)
    assert ex.frozen(2, "BTC") == 600
    ev = ex.buy(1, 1000, 7)
    assert [(t.maker_order_id, t.qty) for t in ex.of(ev, Trade)] == [(a2, 5), (a1, 2)]
