"""OrderBook and NaiveBook primitives: add/remove/reduce/fill/depth/head and check()."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainbook.book.book import OrderBook
from chainbook.book.errors import BookInvariantError
from chainbook.book.naive import NaiveBook
from chainbook.book.order import Order

BUY, SELL = 0, 1
BOOKS = pytest.mark.parametrize("make", [OrderBook, NaiveBook], ids=["fast", "naive"])


def mk(oid, side, price, qty, filled=0):
    return Order(oid, 1, side, price, qty, qty - filled, filled, 0, 0, 0, 0)


@BOOKS
def test_empty(make):
    b = make()
    assert len(b) == 0
    assert b.best_price(BUY) is None and b.best_price(SELL) is None
    assert b.head(BUY) is None and b.head(SELL) is None
    assert b.depth(BUY, 5) == [] and b.level_qty(SELL, 100) == 0
    b.check()


@BOOKS
def test_add_depth_best_head(make):
    b = make()
    for o in [mk(1, BUY, 99, 2), mk(2, BUY, 100, 3), mk(3, BUY, 99, 4), mk(4, SELL, 102, 1),
              mk(5, SELL, 101, 5), mk(6, SELL, 101, 6), mk(7, SELL, 105, 1)]:
        b.add(o)
    assert len(b) == 7
    assert b.depth(BUY, 10) == [(100, 3), (99, 6)]
    assert b.depth(SELL, 10) == [(101, 11), (102, 1), (105, 1)]
    assert b.depth(SELL, 2) == [(101, 11), (102, 1)]
    assert b.depth(SELL, 0) == []
    assert (b.best_price(BUY), b.best_price(SELL)) == (100, 101)
    assert b.head(BUY).id == 2 and b.head(SELL).id == 5
    assert [o.id for o in b.iter_side(BUY)] == [2, 1, 3]
    assert [o.id for o in b.iter_side(SELL)] == [5, 6, 4, 7]
    assert b.level_qty(BUY, 99) == 6
    assert b.touched_levels() == {(BUY, 99), (BUY, 100), (SELL, 101), (SELL, 102), (SELL, 105)}
    b.check()


@BOOKS
def test_remove(make):
    b = make()
    orders = [mk(1, SELL, 101, 1), mk(2, SELL, 101, 2), mk(3, SELL, 101, 3), mk(4, SELL, 103, 4)]
    for o in orders:
        b.add(o)
    b.clear_touched()
    b.remove(orders[1])  # middle of a level
    assert [o.id for o in b.iter_side(SELL)] == [1, 3, 4]
    assert b.depth(SELL, 5) == [(101, 4), (103, 4)]
    b.remove(orders[0])
    b.remove(orders[2])  # the level empties: best moves on
    assert b.best_price(SELL) == 103 and b.level_qty(SELL, 101) == 0
    b.remove(orders[3])  # a level that is not the best one... now it is the only one
    assert b.best_price(SELL) is None and len(b) == 0
    assert b.touched_levels() == {(SELL, 101), (SELL, 103)}
    b.check()


@BOOKS
def test_remove_a_level_behind_the_best(make):
    b = make()
    a, c = mk(1, BUY, 100, 1), mk(2, BUY, 98, 1)
    b.add(a)
    b.add(c)
    b.remove(c)
    assert b.depth(BUY, 5) == [(100, 1)]
    b.check()


@BOOKS
def test_reduce_keeps_position(make):
    b = make()
    first, second = mk(1, BUY, 100, 5), mk(2, BUY, 100, 5)
    b.add(first)
    b.add(second)
    b.reduce(first, 2)
    first.qty = 2  # the caller owns the total (an amend sets it)
    assert first.left == 2
    assert b.head(BUY) is first
    assert b.depth(BUY, 1) == [(100, 7)]
    b.check()


@BOOKS
def test_fill_partial_then_full(make):
    b = make()
    o, p = mk(1, SELL, 101, 5), mk(2, SELL, 102, 1)
    b.add(o)
    b.add(p)
    b.fill(o, 2)
    assert (o.left, o.filled) == (3, 2)
    assert b.depth(SELL, 5) == [(101, 3), (102, 1)]
    b.check()
    b.fill(o, 3)
    assert (o.left, o.filled) == (0, 5)
    assert b.head(SELL) is p and len(b) == 1
    assert b.depth(SELL, 5) == [(102, 1)]
    b.check()


# --- check() catches corruption ----------------------------------------------------------


@BOOKS
def test_check_finds_bad_quantities(make):
    b = make()
    o = mk(1, BUY, 100, 5)
    b.add(o)
    o.filled = 1  # left + filled != qty
    with pytest.raises(BookInvariantError, match="quantities"):
        b.check()


@BOOKS
def test_check_finds_empty_order_kept(make):
    b = make()
    o = mk(1, BUY, 100, 5)
    b.add(o)
    b.reduce(o, 0)
    with pytest.raises(BookInvariantError):
        b.check()


@BOOKS
def test_check_finds_crossed_book(make):
    b = make()
    b.add(mk(1, BUY, 101, 1))
    b.add(mk(2, SELL, 101, 1))
    with pytest.raises(BookInvariantError, match="crossed"):
        b.check()


def test_check_finds_level_total_drift():
    b = OrderBook()
    b.add(mk(1, BUY, 100, 5))
    b.levels[BUY][100].qty += 1
    with pytest.raises(BookInvariantError, match="qty"):
        b.check()


def test_check_finds_unsorted_keys():
    b = OrderBook()
    b.add(mk(1, BUY, 100, 5))
    b.add(mk(2, BUY, 101, 5))
    b.keys[BUY].reverse()
    with pytest.raises(BookInvariantError, match="sorted"):
        b.check()


def test_check_finds_keys_and_levels_disagreeing():
    b = OrderBook()
    b.add(mk(1, SELL, 100, 5))
    b.keys[SELL].append(-50)
    with pytest.raises(BookInvariantError):
        b.check()


def test_check_finds_order_under_wrong_level():
    b = OrderBook()
    o = mk(1, SELL, 100, 5)
    b.add(o)
    o.price = 101
    with pytest.raises(BookInvariantError, match="wrong level"):
        b.check()


def test_check_finds_empty_level_kept():
    b = OrderBook()
    o = mk(1, SELL, 100, 5)
    b.add(o)
    del b.levels[SELL][100].orders[1]
    b.levels[SELL][100].qty = 0
    with pytest.raises(BookInvariantError, match="empty level"):
        b.check()


# --- the fast book against the naive one on random operations ----------------------------

OPS = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "reduce", "fill"]), st.integers(0, 1),
              st.integers(95, 105), st.integers(1, 6), st.integers(0, 10**6)),
    max_size=80,
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(OPS)
def test_fast_book_matches_naive_book(ops):
    fast, naive = OrderBook(), NaiveBook()
    live: dict[int, tuple[Order, Order]] = {}
    next_id = 1
    for op, side, price, qty, pick in ops:
        if op == "add":
            # keep the book uncrossed: bids below 100.5, asks above
            p = min(price, 100) if side == BUY else max(price, 101)
            pair = (mk(next_id, side, p, qty), mk(next_id, side, p, qty))
            live[next_id] = pair
            fast.add(pair[0])
            naive.add(pair[1])
            next_id += 1
            continue
        if not live:
            continue
        oid = sorted(live)[pick % len(live)]
        f, n = live[oid]
        if op == "remove":
            fast.remove(f)
            naive.remove(n)
            del live[oid]
        elif op == "reduce" and f.left > 1:
            new_left = 1 + pick % (f.left - 1)
            fast.reduce(f, new_left)
            naive.reduce(n, new_left)
            f.qty = n.qty = f.filled + new_left
        elif op == "fill":
            q = 1 + pick % f.left
            fast.fill(f, q)
            naive.fill(n, q)
            if f.left == 0:
                del live[oid]
        fast.check()
        naive.check()
        for s in (BUY, SELL):
            assert fast.depth(s, 100) == naive.depth(s, 100)
            assert fast.best_price(s) == naive.best_price(s)
            assert [o.id for o in fast.iter_side(s)] == [o.id for o in naive.iter_side(s)]
            hf, hn = fast.head(s), naive.head(s)
            assert (hf and hf.id) == (hn and hn.id)
        assert len(fast) == len(naive) == len(live)
        assert fast.touched_levels() == naive.touched_levels()
