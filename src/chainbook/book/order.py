"""The resting-order record shared by the book and the engine."""

from __future__ import annotations

from chainbook.book.ordersnap import OrderSnap


class Order:
    """An open order.  Mutable on purpose: the engine updates ``left``/``filled``/``reserved``
    in place on the hot path.  Invariant: ``left + filled == qty`` and ``left > 0`` while
    the order rests.

    A plain class with fixed slots rather than a msgspec struct: compiled (docs/core.md,
    "Compiled core"), its fields are read and written as C struct members.  Snapshots
    store it through ``astuple``/``Order(*t)`` (engine/state.py)."""

    __slots__ = ("id", "account", "side", "price", "qty", "left", "filled", "reserved",
                 "type", "tif", "stp", "client_id")

    def __init__(self, id: int, account: int, side: int, price: int, qty: int, left: int,
                 filled: int, reserved: int, type: int, tif: int, stp: int,
                 client_id: str | None = None) -> None:
        self.id = id
        self.account = account
        self.side = side  # Side
        self.price = price  # ticks (0 for a MARKET order, which never rests)
        self.qty = qty  # total lots ordered
        self.left = left  # lots still open
        self.filled = filled  # lots traded
        self.reserved = reserved  # funds still frozen (quote units for a buy, base for a sell)
        self.type = type  # OrderType
        self.tif = tif  # TimeInForce
        self.stp = stp  # resolved Stp mode (never DEFAULT)
        self.client_id = client_id

    def astuple(self) -> tuple[int, int, int, int, int, int, int, int, int, int, int,
                               str | None]:
        """Every field, in constructor order."""
        return (self.id, self.account, self.side, self.price, self.qty, self.left,
                self.filled, self.reserved, self.type, self.tif, self.stp, self.client_id)

    def copy(self) -> Order:
        """An independent copy (snapshots must not see later fills)."""
        return Order(*self.astuple())

    def __repr__(self) -> str:
        return "Order" + repr(self.astuple())


def snap_orders(orders: list[Order]) -> list[OrderSnap]:
    """Snapshot records of ``orders`` (same order)."""
    return [OrderSnap(o.id, o.account, o.side, o.price, o.qty, o.left, o.filled,
                      o.reserved, o.type, o.tif, o.stp, o.client_id) for o in orders]


def orders_of(snaps: list[OrderSnap]) -> list[Order]:
    """Live orders for snapshot records (same order)."""
    return [Order(s.id, s.account, s.side, s.price, s.qty, s.left, s.filled, s.reserved,
                  s.type, s.tif, s.stp, s.client_id) for s in snaps]
