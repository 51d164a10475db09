"""``OrderBook.load``: a snapshot restore of one side equals adding its orders one by one,
and input that is not in priority order is refused without a half-built side."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainbook.book.book import OrderBook
from chainbook.book.order import Order, orders_of, snap_orders

BUY, SELL = 0, 1


def mk(oid, side, price, qty, filled=0, cid=None):
    return Order(oid, 7, side, price, qty, qty - filled, filled, 5, 0, 0, 0, cid)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(1, 30), st.integers(1, 9)),
                max_size=80))
def test_load_equals_adding_one_by_one(specs):
    added = OrderBook()
    for oid, (side, price, qty) in enumerate(specs, start=1):
        added.add(mk(oid, side, price + (0 if side == BUY else 40), qty))
    loaded = OrderBook()
    for side in (BUY, SELL):
        loaded.load(side, [o.copy() for o in added.iter_side(side)])
    loaded.check()
    for side in (BUY, SELL):
        assert [o.astuple() for o in loaded.iter_side(side)] == \
            [o.astuple() for o in added.iter_side(side)]
        assert loaded.depth(side, 100) == added.depth(side, 100)
    assert loaded.touched == ({}, {})


@pytest.mark.parametrize("prices", [[10, 11], [10, 9, 10]], ids=["worse-first", "split"])
def test_load_refuses_orders_out_of_priority(prices):
    book = OrderBook()
    with pytest.raises(ValueError):
        book.load(BUY, [mk(i, BUY, p, 1) for i, p in enumerate(prices, start=1)])


def test_load_refuses_a_wrong_side_and_a_non_empty_side():
    book = OrderBook()
    with pytest.raises(ValueError):
        book.load(SELL, [mk(1, BUY, 10, 1)])
    book.add(mk(2, BUY, 10, 1))
    with pytest.raises(ValueError):
        book.load(BUY, [mk(3, BUY, 9, 1)])


def test_snapshot_records_round_trip_every_field():
    orders = [mk(1, BUY, 10, 5, filled=2, cid="a"), mk(2, SELL, 12, 3)]
    back = orders_of(snap_orders(orders))
    assert [o.astuple() for o in back] == [o.astuple() for o in orders]
    assert all(a is not b for a, b in zip(back, orders, strict=True))
