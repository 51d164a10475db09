"""One price-time priority order book for one symbol.

Layout: per side a dict ``price -> Level`` and a sorted list of prices whose *last*
element is the best (bids ascending; asks stored as negated prices, ascending).  A level
keeps its orders in an insertion-ordered dict ``order_id -> Order``: append, remove
anywhere and peek at the head are all O(1), which is what cancel-heavy flow needs.  New
and emptied levels cost O(log L) search plus a short memmove of the price list.

The book knows nothing of accounts or risk; the engine drives matching through ``head``,
``fill`` and ``remove``.  Every mutator records the touched price in ``touched[side]``
(mapped to its ``Level``, whose ``qty`` is 0 once the level is gone) so the engine can
emit one ``BookLevelChanged`` per level per command (int keys: no tuple per touch).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator

from chainbook.book.errors import BookInvariantError
from chainbook.book.order import Order

BUY = 0
SELL = 1


class Level:
    """All open orders at one price, oldest first, and their total open quantity."""

    __slots__ = ("price", "qty", "orders")

    def __init__(self, price: int, qty: int, orders: dict[int, Order]) -> None:
        self.price = price
        self.qty = qty
        self.orders = orders


class OrderBook:
    """Price-time book. All methods are O(1) except level creation/removal (O(log L))."""

    __slots__ = ("levels", "keys", "touched")

    def __init__(self) -> None:
        self.levels: tuple[dict[int, Level], dict[int, Level]] = ({}, {})
        # keys[BUY] holds bid prices ascending; keys[SELL] holds -ask ascending: best is last
        self.keys: tuple[list[int], list[int]] = ([], [])
        self.touched: tuple[dict[int, Level], dict[int, Level]] = ({}, {})

    def __len__(self) -> int:
        return sum(len(lv.orders) for side in self.levels for lv in side.values())

    def add(self, order: Order) -> None:
        """Rest ``order`` at the back of its price level."""
        side = order.side
        price = order.price
        levels = self.levels[side]
        lv = levels.get(price)
        if lv is None:
            lv = levels[price] = Level(price, 0, {})
            insort(self.keys[side], price if side == BUY else -price)
        lv.orders[order.id] = order
        lv.qty += order.left
        self.touched[side][price] = lv

    def load(self, side: int, orders: list[Order]) -> None:
        """Fill an empty ``side`` with ``orders`` given in priority order (best price
        first, oldest first within a price): a snapshot restore.  O(n); nothing is
        recorded as touched."""
        levels = self.levels[side]
        if levels:
            raise ValueError("load() needs an empty side")
        keys: list[int] = []
        lv: Level | None = None
        for order in orders:
            if order.side != side:
                raise ValueError(f"order {order.id} is not on side {side}")
            price = order.price
            if lv is None or lv.price != price:
                if price in levels:
                    raise ValueError(f"orders at {price} are not contiguous")
                lv = levels[price] = Level(price, 0, {})
                keys.append(price if side == BUY else -price)
            lv.orders[order.id] = order
            lv.qty += order.left
        keys.reverse()  # best is last
        if any(keys[i] >= keys[i + 1] for i in range(len(keys) - 1)):
            raise ValueError("orders are not in priority order")
        self.keys[side][:] = keys

    def remove(self, order: Order) -> None:
        """Take a resting order out of the book (its ``left`` is what leaves the level)."""
        side = order.side
        price = order.price
        levels = self.levels[side]
        lv = levels[price]
        del lv.orders[order.id]
        lv.qty -= order.left
        if not lv.orders:
            del levels[price]
            keys = self.keys[side]
            key = price if side == BUY else -price
            if keys[-1] == key:
                keys.pop()
            else:
                del keys[bisect_left(keys, key)]
        self.touched[side][price] = lv

    def move(self, order: Order, price: int, left: int) -> None:
        """Re-price a resting order: it leaves its level and joins the back of ``price``'s
        with ``left`` open lots (loses time priority).  The caller ensures no cross."""
        side = order.side
        old = order.price
        levels = self.levels[side]
        touched = self.touched[side]
        keys = self.keys[side]
        lv = levels[old]
        del lv.orders[order.id]
        lv.qty -= order.left
        touched[old] = lv
        if not lv.orders:
            del levels[old]
            key = old if side == BUY else -old
            if keys[-1] == key:
                keys.pop()
            else:
                del keys[bisect_left(keys, key)]
        order.price = price
        order.left = left
        new = levels.get(price)
        if new is None:
            new = levels[price] = Level(price, 0, {})
            insort(keys, price if side == BUY else -price)
        new.orders[order.id] = order
        new.qty += left
        touched[price] = new

    def reduce(self, order: Order, new_left: int) -> None:
        """Lower a resting order's open quantity in place, keeping its time priority."""
        lv = self.levels[order.side][order.price]
        lv.qty -= order.left - new_left
        order.left = new_left
        self.touched[order.side][order.price] = lv

    def fill(self, order: Order, qty: int) -> None:
        """Trade ``qty`` of a resting order; it leaves the book when nothing is left."""
        order.left -= qty
        order.filled += qty
        side = order.side
        price = order.price
        lv = self.levels[side][price]
        lv.qty -= qty
        self.touched[side][price] = lv
        if order.left == 0:
            del lv.orders[order.id]
            if not lv.orders:
                del self.levels[side][price]
                keys = self.keys[side]
                key = price if side == BUY else -price
                if keys[-1] == key:
                    keys.pop()
                else:
                    del keys[bisect_left(keys, key)]

    def touched_levels(self) -> set[tuple[int, int]]:
        """The (side, price) pairs touched since the last ``clear_touched``."""
        return {(side, p) for side in (BUY, SELL) for p in self.touched[side]}

    def clear_touched(self) -> None:
        """Forget what was touched (after the engine emitted it)."""
        self.touched[0].clear()
        self.touched[1].clear()

    def best_price(self, side: int) -> int | None:
        """Best bid (side BUY) or best ask (side SELL), or None if that side is empty."""
        keys = self.keys[side]
        if not keys:
            return None
        return keys[-1] if side == BUY else -keys[-1]

    def head(self, side: int) -> Order | None:
        """The order first in line on ``side`` (best price, oldest), or None."""
        keys = self.keys[side]
        if not keys:
            return None
        price = keys[-1] if side == BUY else -keys[-1]
        return next(iter(self.levels[side][price].orders.values()))

    def iter_side(self, side: int) -> Iterator[Order]:
        """Yield the orders of ``side`` in priority order (do not mutate while iterating)."""
        keys = self.keys[side]
        levels = self.levels[side]
        for i in range(len(keys) - 1, -1, -1):
            k = keys[i]
            yield from levels[k if side == BUY else -k].orders.values()

    def level_qty(self, side: int, price: int) -> int:
        """Total open lots at ``price`` on ``side`` (0 if no level)."""
        lv = self.levels[side].get(price)
        return 0 if lv is None else lv.qty

    def depth(self, side: int, n: int) -> list[tuple[int, int]]:
        """Top ``n`` levels of ``side`` as (price, total lots), best first. O(n)."""
        keys = self.keys[side]
        levels = self.levels[side]
        out = []
        for i in range(len(keys) - 1, max(len(keys) - 1 - n, -1), -1):
            k = keys[i]
            p = k if side == BUY else -k
            out.append((p, levels[p].qty))
        return out

    def check(self) -> None:
        """Verify every invariant in O(n); raise BookInvariantError on the first breach."""
        for side in (BUY, SELL):
            levels = self.levels[side]
            keys = self.keys[side]
            if sorted(keys) != keys or len(set(keys)) != len(keys):
                raise BookInvariantError(f"side {side}: price keys not strictly sorted")
            prices = {k if side == BUY else -k for k in keys}
            if prices != set(levels):
                raise BookInvariantError(f"side {side}: keys and levels disagree")
            for price, lv in levels.items():
                if not lv.orders:
                    raise BookInvariantError(f"side {side}: empty level {price} kept")
                total = 0
                for oid, o in lv.orders.items():
                    if o.id != oid or o.price != price or o.side != side:
                        raise BookInvariantError(f"order {oid} filed under the wrong level")
                    if o.left <= 0 or o.left + o.filled != o.qty:
                        raise BookInvariantError(f"order {oid}: bad quantities")
                    total += o.left
                if total != lv.qty:
                    raise BookInvariantError(f"level {price}: qty {lv.qty} != sum {total}")
        bid, ask = self.best_price(BUY), self.best_price(SELL)
        if bid is not None and ask is not None and bid >= ask:
            raise BookInvariantError(f"book crossed at rest: bid {bid} >= ask {ask}")
