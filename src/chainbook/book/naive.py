"""A naive, obviously-correct order book: the oracle the fast book is tested against.

One flat list of resting orders; every query sorts it.  O(n log n) per call, which is
fine for tests and useless for anything else.  It offers the same methods as
``OrderBook`` so the engine can run on either.
"""

from __future__ import annotations

from collections.abc import Iterator

from chainbook.book.book import BUY
from chainbook.book.errors import BookInvariantError
from chainbook.book.order import Order


class _LevelView:
    """What ``touched`` maps to: the level's current total, computed on demand."""

    def __init__(self, book: NaiveBook, side: int, price: int) -> None:
        self.book, self.side, self.price = book, side, price

    @property
    def qty(self) -> int:
        return self.book.level_qty(self.side, self.price)


class NaiveBook:
    """Reference book with the ``OrderBook`` interface."""

    def __init__(self) -> None:
        self.orders: list[Order] = []  # in arrival order; arrival = time priority
        self.touched: tuple[dict[int, _LevelView], dict[int, _LevelView]] = ({}, {})

    def __len__(self) -> int:
        return len(self.orders)

    def _side(self, side: int) -> list[Order]:
        mine = [o for o in self.orders if o.side == side]
        # stable sort: same price keeps arrival order, i.e. time priority
        mine.sort(key=lambda o: -o.price if side == BUY else o.price)
        return mine

    def add(self, order: Order) -> None:
        self.orders.append(order)
        self.touched[order.side][order.price] = _LevelView(self, order.side, order.price)

    def load(self, side: int, orders: list[Order]) -> None:
        for order in orders:
            self.orders.append(order)

    def remove(self, order: Order) -> None:
        self.orders = [o for o in self.orders if o.id != order.id]
        self.touched[order.side][order.price] = _LevelView(self, order.side, order.price)

    def move(self, order: Order, price: int, left: int) -> None:
        self.remove(order)
        order.price = price
        order.left = left
        self.add(order)

    def reduce(self, order: Order, new_left: int) -> None:
        order.left = new_left
        self.touched[order.side][order.price] = _LevelView(self, order.side, order.price)

    def fill(self, order: Order, qty: int) -> None:
        order.left -= qty
        order.filled += qty
        self.touched[order.side][order.price] = _LevelView(self, order.side, order.price)
        if order.left == 0:
            self.orders = [o for o in self.orders if o.id != order.id]

    def touched_levels(self) -> set[tuple[int, int]]:
        return {(side, p) for side in (BUY, 1) for p in self.touched[side]}

    def clear_touched(self) -> None:
        self.touched[0].clear()
        self.touched[1].clear()

    def best_price(self, side: int) -> int | None:
        s = self._side(side)
        return s[0].price if s else None

    def head(self, side: int) -> Order | None:
        s = self._side(side)
        return s[0] if s else None

    def iter_side(self, side: int) -> Iterator[Order]:
        yield from self._side(side)

    def level_qty(self, side: int, price: int) -> int:
        return sum(o.left for o in self.orders if o.side == side and o.price == price)

    def depth(self, side: int, n: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for o in self._side(side):
            if out and out[-1][0] == o.price:
                out[-1] = (o.price, out[-1][1] + o.left)
            elif len(out) < n:
                out.append((o.price, o.left))
            else:
                break
        return out

    def check(self) -> None:
        for o in self.orders:
            if o.left <= 0 or o.left + o.filled != o.qty:
                raise BookInvariantError(f"order {o.id}: bad quantities")
        bid, ask = self.best_price(BUY), self.best_price(1)
        if bid is not None and ask is not None and bid >= ask:
            raise BookInvariantError(f"book crossed at rest: bid {bid} >= ask {ask}")
