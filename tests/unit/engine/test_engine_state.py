"""Engine state: export/import round trips, state_hash, check() catching corruption."""

from __future__ import annotations

import msgspec
import pytest

from chainbook.accounts.errors import BalanceInvariantError
from chainbook.book.errors import BookInvariantError
from chainbook.domain import commands as C
from chainbook.domain.enums import Side, SymbolStatus
from chainbook.engine.state import (
    EngineInvariantError,
    EngineSnap,
    check,
    export_state,
    import_state,
    state_hash,
)

BUY, SELL = Side.BUY, Side.SELL


def _busy(ex):
    """Some resting orders, trades, a held withdrawal, a blocked account."""
    ex.sell(2, 1000, 5, client_id="a")
    ex.sell(3, 1001, 5)
    ex.buy(1, 999, 4)
    ex.buy(1, 1000, 2)
    ex.apply(C.WithdrawHold(3, "USDT", 10, "w1"))
    ex.apply(C.SetKillSwitch(3, False))
    ex.apply(C.SetKillSwitch(2, True))
    ex.apply(C.SetKillSwitch(2, False))
    ex.sell(2, 1002, 1, client_id="b")
    ex.apply(C.SetSymbolStatus("ETHUSDT", SymbolStatus.CANCEL_ONLY))


def _roundtrip(engine):
    blob = msgspec.msgpack.encode(export_state(engine))
    return import_state(msgspec.msgpack.decode(blob, type=EngineSnap))


def test_serialized_roundtrip_keeps_state_and_future(ex):
    _busy(ex)
    restored = _roundtrip(ex.engine)
    check(restored)
    assert state_hash(restored) == state_hash(ex.engine)
    seq, ts = ex.seq, ex.ts
    for i, cmd in enumerate([
        C.PlaceOrder(1, "BTCUSDT", BUY, 0, 6, 1002),
        C.CancelOrder(2, "BTCUSDT", None, "a"),
        C.AmendOrder(1, "BTCUSDT", 3, None, None, 3),
        C.WithdrawComplete("w1"),
        C.Deposit(1, "USDT", 1, "w1"),
        C.PlaceOrder(3, "ETHUSDT", SELL, 0, 1, 50),
    ]):
        assert ex.apply(cmd) == restored.apply(cmd, seq + 1 + i, ts + 1 + i)
        check(restored)
    assert state_hash(restored) == state_hash(ex.engine)


def test_hash_ignores_seq_and_ts_but_not_state(ex):
    _busy(ex)
    restored = _roundtrip(ex.engine)
    restored.last_seq += 100
    restored.last_ts += 100
    assert state_hash(restored) == state_hash(ex.engine)
    restored.apply(C.Deposit(9, "BTC", 1, "extra"), restored.last_seq + 1, restored.last_ts)
    assert state_hash(restored) != state_hash(ex.engine)


def test_hash_covers_priority_counters_and_ids(ex):
    ex.sell(2, 1000, 1)
    ex.sell(3, 1000, 1)
    base = state_hash(ex.engine)
    swapped = export_state(ex.engine)
    msgspec.msgpack.encode(swapped)  # encodable as is
    snap = msgspec.msgpack.decode(msgspec.msgpack.encode(swapped), type=EngineSnap)
    snap.symbols[0].asks.reverse()  # same orders, other time priority
    assert state_hash(import_state(snap)) != base
    snap = msgspec.msgpack.decode(msgspec.msgpack.encode(swapped), type=EngineSnap)
    snap.next_order_id += 1
    assert state_hash(import_state(snap)) != base
    snap = msgspec.msgpack.decode(msgspec.msgpack.encode(swapped), type=EngineSnap)
    snap.external_ids.append("zzz")
    assert state_hash(import_state(snap)) != base


def test_snapshot_is_a_value_not_a_view(ex):
    """export_state captures the state *now*: commands applied afterwards (while a
    snapshot writer is still encoding it) must not change what it holds."""
    ex.sell(2, 1000, 5)
    snap = export_state(ex.engine)
    blob = msgspec.msgpack.encode(snap)
    ex.buy(1, 1000, 2)
    assert msgspec.msgpack.encode(snap) == blob


def test_imported_engine_is_independent_of_the_source(ex):
    """import_state(export_state(e)) without serializing must not share orders with e."""
    ex.sell(2, 1000, 5)
    copy = import_state(export_state(ex.engine))
    before = state_hash(copy)
    ex.buy(1, 1000, 2)
    check(copy)
    assert state_hash(copy) == before


def test_import_rejects_other_versions(ex):
    snap = export_state(ex.engine)
    snap.version = 99
    with pytest.raises(ValueError, match="version"):
        import_state(snap)


# --- check() finds corruption ------------------------------------------------------------


def test_check_finds_negative_balance(ex):
    ex.engine.balances.acct[1]["USDT"][0] = -1
    with pytest.raises(BalanceInvariantError):
        check(ex.engine)


def test_check_finds_money_from_nowhere(ex):
    ex.engine.balances.acct[1]["USDT"][0] += 1
    with pytest.raises(BalanceInvariantError, match="USDT"):
        check(ex.engine)


def test_check_finds_frozen_not_backed_by_orders(ex):
    cell = ex.engine.balances.acct[1]["USDT"]
    cell[0] -= 5
    cell[1] += 5
    with pytest.raises(EngineInvariantError, match="frozen"):
        check(ex.engine)


def test_check_finds_under_reserved_order(ex):
    ex.buy(1, 1000, 5)
    order = next(iter(ex.engine.symbols["BTCUSDT"].orders.values()))
    order.reserved -= 1
    ex.engine.balances.acct[1]["USDT"][1] -= 1
    ex.engine.balances.acct[1]["USDT"][0] += 1
    with pytest.raises(EngineInvariantError, match="reserve"):
        check(ex.engine)


def test_check_finds_order_index_drift(ex):
    ex.buy(1, 1000, 5)
    ex.engine.symbols["BTCUSDT"].orders.clear()
    with pytest.raises(EngineInvariantError, match="index"):
        check(ex.engine)


def test_check_finds_crossed_book(ex):
    ex.buy(1, 1000, 5)
    ex.sell(2, 1001, 5)
    ask = ex.engine.symbols["BTCUSDT"].book.head(SELL)
    book = ex.engine.symbols["BTCUSDT"].book
    book.remove(ask)
    ask.price = 999
    book.add(ask)
    with pytest.raises(BookInvariantError, match="crossed"):
        check(ex.engine)


def _cancel_ids_after_restart(ex, cmd):
    restored = _roundtrip(ex.engine)
    mine = [e.order_id for e in restored.apply(cmd, ex.seq + 1, ex.ts) if hasattr(e, "order_id")]
    theirs = [e.order_id for e in ex.apply(cmd) if hasattr(e, "order_id")]
    return theirs, mine


def test_restart_keeps_cancel_all_event_order(ex):
    """Replay must give identical events: cancel-all after a restart emits its
    OrderCanceled events in the same order as the engine that never stopped."""
    ex.buy(1, 990, 1)
    ex.buy(1, 995, 1)  # better price: first in the book, second by arrival
    ex.sell(1, 1010, 1)
    theirs, mine = _cancel_ids_after_restart(ex, C.CancelAll(1, "BTCUSDT"))
    assert len(theirs) == 3
    assert mine == theirs


def test_restart_keeps_kill_switch_event_order(ex):
    ex.buy(1, 990, 1)
    ex.buy(1, 995, 1)
    theirs, mine = _cancel_ids_after_restart(ex, C.SetKillSwitch(1, True))
    assert len(theirs) == 2
    assert mine == theirs
