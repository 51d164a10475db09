"""The resting-order record shared by the book and the engine."""

from __future__ import annotations

import msgspec


class Order(msgspec.Struct, array_like=True, gc=False):
    """An open order.  Mutable on purpose: the engine updates ``left``/``filled``/``reserved``
    in place on the hot path.  ``gc=False`` (no reference cycles) saves memory and GC time
    for a million resting orders.  Invariant: ``left + filled == qty`` and ``left > 0``
    while the order rests."""

    id: int
    account: int
    side: int  # Side
    price: int  # ticks (0 for a MARKET order, which never rests)
    qty: int  # total lots ordered
    left: int  # lots still open
    filled: int  # lots traded
    reserved: int  # funds still frozen for this order (quote units for a buy, base for a sell)
    type: int  # OrderType
    tif: int  # TimeInForce
    stp: int  # resolved Stp mode (never DEFAULT)
    client_id: str | None = None
