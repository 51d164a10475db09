"""What the journal needs from the core: a restored engine behaves exactly like the original,
and every state the engine accepts can be written to the log and to a snapshot."""

from __future__ import annotations

import itertools

from chainbook.domain.commands import AddSymbol, CancelAll, Deposit, PlaceOrder
from chainbook.domain.enums import OrderType, Side
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine import Engine
from chainbook.engine.state import export_state, import_state, state_hash
from chainbook.journal.crashchild import command_stream
from chainbook.journal.snapshot import decode_snapshot, encode_snapshot

SPEC = SymbolSpec("X-Y", "X", "Y", lot_units=1, quote_per_tick_lot=1)


def _restored(eng: Engine) -> Engine:
    """``eng`` written to a snapshot image and read back, as recovery does."""
    return import_state(decode_snapshot(encode_snapshot(export_state(eng))))


def test_cancel_all_after_a_restore_emits_the_same_events():
    """Resting orders are re-indexed in book priority order on import, not in the order
    the account placed them: CancelAll (and the kill switch) must not depend on that."""
    eng = Engine()
    for seq, cmd in enumerate([
        AddSymbol(SPEC), Deposit(1, "Y", 10**9, "d1"),
        PlaceOrder(1, "X-Y", Side.BUY, OrderType.LIMIT, qty=1, price=100),
        PlaceOrder(1, "X-Y", Side.BUY, OrderType.LIMIT, qty=1, price=101),
    ], start=1):
        eng.apply(cmd, seq, 0)
    copy = _restored(eng)
    assert state_hash(copy) == state_hash(eng)
    assert copy.apply(CancelAll(1, "X-Y"), 5, 0) == eng.apply(CancelAll(1, "X-Y"), 5, 0)


def test_a_seeded_stream_gives_the_same_events_across_a_snapshot_restore():
    stream = list(itertools.islice(command_stream(21), 6000))
    eng = Engine()
    for seq, (cmd, ts) in enumerate(stream[:3000], start=1):
        eng.apply(cmd, seq, ts)
    copy = _restored(eng)
    for seq, (cmd, ts) in enumerate(stream[3000:], start=3001):
        assert copy.apply(cmd, seq, ts) == eng.apply(cmd, seq, ts), seq
    assert state_hash(copy) == state_hash(eng)


def test_the_engine_never_holds_a_balance_its_state_cannot_encode():
    """Deposits are accepted with no upper bound, but export/state_hash (msgpack) and the
    command log only carry integers below 2**64: after these deposits state_hash()
    raises OverflowError and no snapshot can be written.  (A 100 ETH deposit in wei,
    10**20, cannot even be logged.)  The engine should refuse a deposit that takes a
    balance or an asset total past the representable range."""
    eng = Engine()
    for seq in range(1, 4):
        eng.apply(Deposit(1, "ETH", 2**63, f"d{seq}"), seq, 0)
    assert eng.balances.available(1, "ETH") == 0  # each one would overflow: rejected
    eng.apply(Deposit(1, "ETH", 2**63 - 1, "d4"), 4, 0)
    events = eng.apply(Deposit(2, "ETH", 1, "d5"), 5, 0)
    assert [type(e).__name__ for e in events] == ["OrderRejected"]
    assert eng.balances.available(1, "ETH") == 2**63 - 1
    digest = state_hash(eng)
    assert len(digest) == 64
    assert decode_snapshot(encode_snapshot(export_state(eng))).seq == 5
