"""Cancel by id and client id, cancel-all, and the cancel race (partial fill then cancel)."""

from __future__ import annotations

from chainbook.domain import commands as C
from chainbook.domain.enums import CancelReason, OrderStatus, Reject, Side
from chainbook.domain.events import (
    BalanceChanged,
    BookLevelChanged,
    OrderAccepted,
    OrderCanceled,
    Trade,
)

BUY, SELL = Side.BUY, Side.SELL
START_USDT, START_BTC = 10_000_000, 1_000_000


def test_cancel_by_id_releases_funds(ex):
    bid = ex.rest(1, BUY, 1000, 10)
    ev = ex.cancel(1, bid)
    assert ex.kinds(ev) == ["OrderCanceled", "BalanceChanged", "BookLevelChanged"]
    assert ev[0] == OrderCanceled(bid, 1, "BTCUSDT", OrderStatus.CANCELED, 10, 0,
                                  CancelReason.USER, None)
    assert ev[1] == BalanceChanged(1, "USDT", START_USDT, 0)
    assert ev[2] == BookLevelChanged("BTCUSDT", BUY, 1000, 0)
    assert ex.depth(BUY) == [] and ex.open_ids() == []


def test_cancel_by_client_id(ex):
    ex.rest(2, SELL, 1000, 3, client_id="c-1")
    other = ex.rest(2, SELL, 1000, 4, client_id="c-2")
    ev = ex.cancel(2, client_id="c-1")
    c = ex.one(ev, OrderCanceled)
    assert (c.client_id, c.canceled_qty) == ("c-1", 3)
    assert ex.open_ids() == [other]
    assert ex.frozen(2, "BTC") == 400


def test_cancel_unknown_foreign_or_gone_order_is_rejected(ex):
    a = ex.rest(2, SELL, 1000, 3)
    ex.rejected(C.CancelOrder(3, "BTCUSDT", a, None), Reject.UNKNOWN_ORDER)  # not yours
    ex.rejected(C.CancelOrder(2, "BTCUSDT", 12345, None), Reject.UNKNOWN_ORDER)
    ex.rejected(C.CancelOrder(2, "BTCUSDT", None, "nope"), Reject.UNKNOWN_ORDER)
    ex.rejected(C.CancelOrder(2, "BTCUSDT", None, None), Reject.UNKNOWN_ORDER)
    ex.rejected(C.CancelOrder(2, "ETHUSDT", a, None), Reject.UNKNOWN_ORDER)  # other symbol
    ex.rejected(C.CancelOrder(2, "NOPE", a, None), Reject.UNKNOWN_SYMBOL)
    ex.cancel(2, a)
    ex.rejected(C.CancelOrder(2, "BTCUSDT", a, None), Reject.UNKNOWN_ORDER)  # twice
    b = ex.rest(2, SELL, 1000, 3)
    ex.buy(1, 1000, 3)
    ex.rejected(C.CancelOrder(2, "BTCUSDT", b, None), Reject.UNKNOWN_ORDER)  # filled


def test_client_id_is_unique_among_open_orders_and_reusable_after(ex):
    ex.rest(2, SELL, 1000, 3, client_id="x")
    ex.rejected(ex.order_cmd(2, SELL, 1001, 1, client_id="x"), Reject.DUPLICATE_CLIENT_ORDER_ID)
    ex.rest(3, SELL, 1001, 1, client_id="x")  # another account may use it
    ex.rest(2, SELL, 1001, 1, client_id="x", symbol="ETHUSDT")  # so may another symbol
    ex.cancel(2, client_id="x")
    ex.rest(2, SELL, 1002, 1, client_id="x")


def test_cancel_all_cancels_only_that_account_on_that_symbol(ex):
    mine = [ex.rest(1, BUY, 990, 1), ex.rest(1, SELL, 1010, 2), ex.rest(1, BUY, 991, 3)]
    theirs = ex.rest(2, BUY, 990, 1)
    eth = ex.rest(1, BUY, 50, 1, symbol="ETHUSDT")
    ev = ex.cancel_all(1)
    canceled = ex.of(ev, OrderCanceled)
    assert sorted(c.order_id for c in canceled) == sorted(mine)
    assert all(c.reason == CancelReason.CANCEL_ALL for c in canceled)
    assert ex.open_ids() == [theirs]
    assert ex.open_ids("ETHUSDT") == [eth]
    assert ex.frozen(1, "BTC") == 0
    assert ex.frozen(1, "USDT") == 50 + 50 * 20 // 10_000  # only the ETH bid remains


def test_cancel_all_with_nothing_open_is_a_no_op(ex):
    before = ex.fingerprint()
    assert ex.cancel_all(1) == []
    assert ex.fingerprint() == before


def test_cancel_race_partially_filled_then_canceled(ex):
    bid = ex.rest(1, BUY, 1000, 10)
    ev = ex.sell(2, 990, 4)  # trades at the maker's 1000
    t = ex.one(ev, Trade)
    assert (t.price, t.qty, t.maker_fee, t.taker_fee) == (1000, 4, 4, 8)
    frozen = ex.frozen(1, "USDT")
    assert frozen == 10_020 - 4_000 - 4
    ev = ex.cancel(1, bid)
    c = ex.one(ev, OrderCanceled)
    assert (c.status, c.canceled_qty, c.filled_qty) == (OrderStatus.PARTIALLY_CANCELED, 6, 4)
    # the trade stands; only the remainder's funds came back
    assert ex.frozen(1, "USDT") == 0
    assert ex.total(1, "USDT") == START_USDT - 4_004
    assert ex.total(1, "BTC") == START_BTC + 400
    assert ex.total(2, "USDT") == START_USDT + 4_000 - 8
    assert ex.total(0, "USDT") == 12
    assert ex.depth(BUY) == []


def test_partially_filled_sell_canceled_releases_only_the_rest(ex):
    ask = ex.rest(2, SELL, 1000, 10)
    ex.buy(1, 1000, 3)
    assert ex.frozen(2, "BTC") == 700
    c = ex.one(ex.cancel(2, ask), OrderCanceled)
    assert (c.status, c.canceled_qty, c.filled_qty) == (OrderStatus.PARTIALLY_CANCELED, 7, 3)
    assert ex.frozen(2, "BTC") == 0 and ex.total(2, "BTC") == START_BTC - 300


def test_cancel_after_fill_is_too_late(ex):
    ask = ex.rest(2, SELL, 1000, 2)
    ev = ex.buy(1, 1000, 2)
    assert ex.one(ev, Trade).maker_left == 0
    ex.rejected(C.CancelOrder(2, "BTCUSDT", ask, None), Reject.UNKNOWN_ORDER)


def test_order_ids_increase(ex):
    ids = [ex.one(ex.buy(1, 900 + i, 1), OrderAccepted).order_id for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
