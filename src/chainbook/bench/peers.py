"""The engines chainbook is measured against: liquibook (C++ via SWIG) and a plain book.

Both take the neutral commands of ``chainbook.bench.mix`` converted (untimed) into
``(callable, args)`` items, so the timed loop is the same ``f(*args)`` for every engine.

Mapping of the neutral operations (liquibook ``OrderBook`` / baseline ``BaselineBook``):

* GTC: ``add(order, 0)`` / ``place(id, side, price, qty, False)``
* IOC: ``add(order, oc_immediate_or_cancel)`` / ``place(id, side, price, qty, True)``
* CANCEL: ``cancel(order)`` / ``cancel(id)``
* MOVE: ``replace(order, 0, new_price)`` / ``move(id, new_price)``

liquibook's ``replace`` with a new price takes the order out and re-adds it at the new
price with its open quantity (it loses time priority and may trade), which is exactly
chainbook's price amend and the baseline's ``move``.  liquibook leaves the client's
``SimpleOrder`` record to the listener, and ``replace``/``cancel`` look the order up by
the price stored in that record, so the listener applies the new price
(``SimpleOrder.replace``, which only works on an accepted order: the adapter calls
``accept()`` when it builds the order, untimed).  We drive liquibook's matching class
``OrderBook`` rather than ``DepthOrderBook``: the latter's depth tracker closes the total
(not open) quantity on replace, throws inside liquibook's callback loop once a partially
filled order is moved, and liquibook then skips the listener's callback for that event
(a lost re-price or fill).  ``OrderBook`` also does less work: the faster, stricter peer.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

BUY = 0
SELL = 1

Item = tuple[Callable[..., Any], tuple[Any, ...]]


class _Order:
    __slots__ = ("id", "side", "price", "left")

    def __init__(self, oid: int, side: int, price: int, left: int) -> None:
        self.id = oid
        self.side = side
        self.price = price
        self.left = left


class BaselineBook:
    """Plain price-time book: per side a dict price -> deque and a bisect-sorted key list.

    Keys are prices for bids and negated prices for asks, so the best is always last.
    Cancels remove the order from its deque (levels hold ~1-2 orders here)."""

    __slots__ = ("levels", "keys", "orders", "traded", "notional")

    def __init__(self) -> None:
        self.levels: tuple[dict[int, deque[_Order]], dict[int, deque[_Order]]] = ({}, {})
        self.keys: tuple[list[int], list[int]] = ([], [])
        self.orders: dict[int, _Order] = {}
        self.traded = 0  # total lots traded
        self.notional = 0  # total of price * lots over all trades

    def place(self, oid: int, side: int, price: int, qty: int, ioc: bool) -> None:
        """Match a limit order, then rest the remainder unless it is IOC."""
        opp = 1 - side
        keys, levels, orders = self.keys[opp], self.levels[opp], self.orders
        while qty and keys:
            k = keys[-1]
            p = -k if side == BUY else k
            if (p > price) if side == BUY else (p < price):
                break
            q = levels[p]
            while qty and q:
                m = q[0]
                t = m.left if m.left <= qty else qty
                qty -= t
                self.traded += t
                self.notional += t * p
                if t == m.left:
                    q.popleft()
                    del orders[m.id]
                else:
                    m.left -= t
            if not q:
                del levels[p]
                keys.pop()
        if qty and not ioc:
            o = orders[oid] = _Order(oid, side, price, qty)
            lv = self.levels[side].get(price)
            if lv is None:
                lv = self.levels[side][price] = deque()
                insort(self.keys[side], price if side == BUY else -price)
            lv.append(o)

    def cancel(self, oid: int) -> None:
        """Remove a resting order."""
        o = self.orders.pop(oid)
        side, price = o.side, o.price
        lv = self.levels[side][price]
        lv.remove(o)
        if not lv:
            del self.levels[side][price]
            keys = self.keys[side]
            del keys[bisect_left(keys, price if side == BUY else -price)]

    def move(self, oid: int, price: int) -> None:
        """Re-price a resting order: it loses priority and may trade."""
        o = self.orders[oid]
        self.cancel(oid)
        self.place(oid, o.side, price, o.left, False)


def baseline_items(book: BaselineBook, cmds: Sequence[tuple[int, ...]]) -> list[Item]:
    """Convert neutral commands to ``(callable, args)`` items for ``book``."""
    place, cancel, move = book.place, book.cancel, book.move
    out: list[Item] = []
    for op, oid, side, price, qty, _account in cmds:
        if op == 0 or op == 1:
            out.append((place, (oid, side, price, qty, op == 1)))
        elif op == 2:
            out.append((cancel, (oid,)))
        else:
            out.append((move, (oid, price)))
    return out


def liquibook_available() -> bool:
    """True if the liquibook package imports."""
    try:
        import liquibook  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


class LiquibookRunner:
    """liquibook's ``OrderBook`` with a listener that counts fills and tracks re-prices."""

    def __init__(self) -> None:
        import liquibook as lb

        self.lb = lb

        class Listener(lb.OrderListener):  # type: ignore[misc]
            """Every callback is pure virtual in C++, so each must exist."""

            traded = 0
            notional = 0

            def on_accept(self, order: Any) -> None:
                pass

            def on_reject(self, order: Any, reason: str) -> None:
                raise RuntimeError(f"liquibook rejected order {order.order_id_}: {reason}")

            def on_fill(self, order: Any, matched: Any, qty: int, price: int) -> None:
                # the binding passes the fill price (the resting order's) in the slot
                # its C++ header calls fill_cost
                self.traded += qty
                self.notional += qty * price

            def on_cancel(self, order: Any) -> None:
                pass

            def on_cancel_reject(self, order: Any, reason: str) -> None:
                raise RuntimeError(f"liquibook cancel of {order.order_id_}: {reason}")

            def on_replace(self, order: Any, size_delta: int, new_price: int) -> None:
                order.replace(size_delta, new_price)

            def on_replace_reject(self, order: Any, reason: str) -> None:
                raise RuntimeError(f"liquibook replace of {order.order_id_}: {reason}")

            def on_trigger_stop(self, order: Any) -> None:
                pass

        self.listener = Listener()
        self.book = lb.liquibook_book_OrderBook()
        self.book.set_order_listener(self.listener)
        self.book.set_symbol("BTCUSDT")
        self.orders: dict[int, Any] = {}  # neutral id -> SimpleOrder (kept alive)

    def items(self, cmds: Sequence[tuple[int, ...]]) -> list[Item]:
        """Convert neutral commands; builds and accepts each ``SimpleOrder`` up front."""
        lb, book, orders = self.lb, self.book, self.orders
        ioc = lb.oc_immediate_or_cancel
        out: list[Item] = []
        for op, oid, side, price, qty, _account in cmds:
            if op == 0 or op == 1:
                o = orders[oid] = lb.SimpleOrder(side == BUY, price, qty)
                o.accept()
                out.append((book.add, (o, ioc if op == 1 else 0)))
            elif op == 2:
                out.append((book.cancel, (orders[oid],)))
            else:
                out.append((book.replace, (orders[oid], 0, price)))
        return out

    @property
    def traded(self) -> int:
        return int(self.listener.traded)

    @property
    def notional(self) -> int:
        return int(self.listener.notional)

    def resting(self) -> int:
        """Orders resting in the book now."""
        return len(self.book.bids()) + len(self.book.asks())
