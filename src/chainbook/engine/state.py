"""Whole-engine state as one msgspec value: export, import, hash, invariants.

``export_state`` and ``import_state`` are exact inverses: books are written level by
level in priority order, so a restored book has the same time priority, and counters,
breaker windows, pending withdrawals and applied external ids come along, so applying
the same commands to a restored engine yields the same events as the original.
``state_hash`` is a BLAKE2b digest of the canonical encoding (sorted where order is not
meaningful), covering books, balances and everything else in the state.
"""

from __future__ import annotations

import gc
import hashlib
from collections import deque

import msgspec

from chainbook.accounts.fees import buy_reserve
from chainbook.book.order import orders_of, snap_orders
from chainbook.book.ordersnap import OrderSnap
from chainbook.domain.enums import SymbolStatus
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine.engine import Engine
from chainbook.engine.funds import HELD, Withdrawal
from chainbook.engine.symbol_state import SymbolState

STATE_VERSION = 1


class EngineInvariantError(RuntimeError):
    """``check()`` found the engine state inconsistent."""


class SymbolSnap(msgspec.Struct, array_like=True):
    spec: SymbolSpec
    status: int
    until_ts: int
    last_price: int
    bids: list[OrderSnap]  # priority order, best first
    asks: list[OrderSnap]
    lo_q: list[tuple[int, int]]
    hi_q: list[tuple[int, int]]


class EngineSnap(msgspec.Struct, array_like=True):
    version: int
    seq: int
    ts: int
    next_order_id: int
    next_trade_id: int
    symbols: list[SymbolSnap]
    balances: list[tuple[int, str, int, int]]  # account, asset, available, frozen
    deposited: list[tuple[str, int]]
    withdrawn: list[tuple[str, int]]
    blocked: list[int]
    external_ids: list[str]
    withdrawals: list[tuple[str, int, str, int, int]]  # id, account, asset, amount, state


def export_state(engine: Engine) -> EngineSnap:
    """Capture the engine's whole state as a value (orders are copied, so commands
    applied afterwards do not change it). O(orders + balances + ids)."""
    symbols = [
        SymbolSnap(
            s.spec, int(s.status), s.until_ts, s.last_price,
            snap_orders(list(s.book.iter_side(0))),
            snap_orders(list(s.book.iter_side(1))),
            list(s.lo_q), list(s.hi_q),
        )
        for s in engine.symbols.values()
    ]
    bal = engine.balances
    return EngineSnap(
        version=STATE_VERSION,
        seq=engine.last_seq,
        ts=engine.last_ts,
        next_order_id=engine.next_order_id,
        next_trade_id=engine.next_trade_id,
        symbols=symbols,
        balances=sorted(
            (a, asset, cell[0], cell[1])
            for a, assets in bal.acct.items()
            for asset, cell in assets.items()
        ),
        deposited=sorted(bal.deposited.items()),
        withdrawn=sorted(bal.withdrawn.items()),
        blocked=sorted(engine.blocked),
        external_ids=sorted(engine.external_ids),
        withdrawals=sorted((k, w.account, w.asset, w.amount, w.state)
                           for k, w in engine.withdrawals.items()),
    )


def import_state(snap: EngineSnap, engine: Engine | None = None) -> Engine:
    """Build an engine holding exactly ``snap``'s state (into a fresh ``engine`` if given).

    The garbage collector is paused meanwhile: a million new orders (GC-tracked objects)
    would otherwise set off a full collection each time the heap grew by a quarter."""
    if snap.version != STATE_VERSION:
        raise ValueError(f"snapshot state version {snap.version}, expected {STATE_VERSION}")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _import(snap, engine)
    finally:
        if was_enabled:
            gc.enable()


def _import(snap: EngineSnap, engine: Engine | None) -> Engine:
    eng = engine if engine is not None else Engine()
    eng.last_seq = snap.seq
    eng.last_ts = snap.ts
    eng.next_order_id = snap.next_order_id
    eng.next_trade_id = snap.next_trade_id
    for s in snap.symbols:
        sym = SymbolState(s.spec, eng.book_factory())
        sym.status = SymbolStatus(s.status)
        sym.until_ts = s.until_ts
        sym.last_price = s.last_price
        sym.restore(orders_of(s.bids), orders_of(s.asks))
        sym.book.clear_touched()
        sym.lo_q = deque(s.lo_q)
        sym.hi_q = deque(s.hi_q)
        eng.symbols[s.spec.name] = sym
    bal = eng.balances
    for a, asset, avail, frozen in snap.balances:
        bal.acct.setdefault(a, {})[asset] = [avail, frozen]
    bal.deposited = dict(snap.deposited)
    bal.withdrawn = dict(snap.withdrawn)
    eng.blocked = set(snap.blocked)
    eng.external_ids = set(snap.external_ids)
    eng.withdrawals = {
        k: Withdrawal(a, asset, amt, st) for k, a, asset, amt, st in snap.withdrawals
    }
    return eng


_encoder = msgspec.msgpack.Encoder()


def state_hash(engine: Engine) -> str:
    """Hex BLAKE2b-256 of the canonical state (books, balances, counters, ids)."""
    snap = export_state(engine)
    snap.seq = 0  # the hash is about state, not about how many commands led to it
    snap.ts = 0
    snap.symbols.sort(key=lambda s: s.spec.name)
    return hashlib.blake2b(_encoder.encode(snap), digest_size=32).hexdigest()


def check(engine: Engine) -> None:
    """Verify every engine invariant in O(state); raise on the first breach.

    Books are uncrossed and consistent, balances are non-negative and conserved, every
    resting order is indexed, and each (account, asset)'s frozen amount equals what its
    open orders reserve plus its held withdrawals."""
    expect_frozen: dict[tuple[int, str], int] = {}
    for name, sym in engine.symbols.items():
        sym.book.check()
        spec = sym.spec
        resting = {o.id: o for side in (0, 1) for o in sym.book.iter_side(side)}
        if resting.keys() != sym.orders.keys():
            raise EngineInvariantError(f"{name}: order index differs from the book")
        n_by_acct = sum(len(v) for v in sym.by_account.values())
        if n_by_acct != len(resting):
            raise EngineInvariantError(f"{name}: per-account index differs from the book")
        for o in resting.values():
            if o.side == 0:
                need = buy_reserve(o.price, o.left, spec.quote_per_tick_lot, spec.max_fee_bps)
                if o.reserved < need:
                    raise EngineInvariantError(f"order {o.id}: reserve {o.reserved} < {need}")
                key = (o.account, spec.quote)
            else:
                if o.reserved != o.left * spec.lot_units:
                    raise EngineInvariantError(f"order {o.id}: reserve {o.reserved} wrong")
                key = (o.account, spec.base)
            expect_frozen[key] = expect_frozen.get(key, 0) + o.reserved
    for w in engine.withdrawals.values():
        if w.state == HELD:
            key = (w.account, w.asset)
            expect_frozen[key] = expect_frozen.get(key, 0) + w.amount
    engine.balances.check()
    for account, assets in engine.balances.acct.items():
        for asset, (_, frozen) in assets.items():
            if frozen != expect_frozen.get((account, asset), 0):
                raise EngineInvariantError(
                    f"account {account} {asset}: frozen {frozen} but orders and "
                    f"withdrawals hold {expect_frozen.get((account, asset), 0)}"
                )
