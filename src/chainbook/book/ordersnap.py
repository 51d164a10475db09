"""The snapshot record of a resting order.

Kept out of the compiled modules on purpose: mypyc builds the classes of a compiled
module itself and drops msgspec's class options (``array_like``, ``gc``), which would
change the snapshot encoding."""

from __future__ import annotations

import msgspec


class OrderSnap(msgspec.Struct, array_like=True, gc=False):
    """A resting order in a snapshot: ``Order``'s fields in its constructor's order (the
    same msgpack array the order itself encoded to when it was a msgspec struct)."""

    id: int
    account: int
    side: int
    price: int
    qty: int
    left: int
    filled: int
    reserved: int
    type: int
    tif: int
    stp: int
    client_id: str | None = None
