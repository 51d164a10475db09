"""Engine.apply contract: seq strictly increasing, ts never backwards, symbols listed once."""

from __future__ import annotations

import pytest

from chainbook.book.naive import NaiveBook
from chainbook.domain import commands as C
from chainbook.domain.enums import Reject, Side
from chainbook.domain.events import SymbolAdded
from chainbook.engine import Engine, SequenceError
from chainbook.engine.state import check, state_hash


def test_seq_must_increase(ex):
    cmd = C.Deposit(1, "USDT", 1, "x")
    with pytest.raises(SequenceError):
        ex.engine.apply(cmd, ex.seq, ex.ts)
    with pytest.raises(SequenceError):
        ex.engine.apply(cmd, ex.seq - 1, ex.ts)
    assert ex.engine.balances.available(1, "USDT") == 10_000_000
    ex.engine.apply(cmd, ex.seq + 5, ex.ts)  # gaps are fine
    check(ex.engine)


def test_ts_never_runs_backwards(ex):
    ts = ex.ts
    ex.engine.apply(C.Deposit(1, "USDT", 1, "x"), ex.seq + 1, ts - 10**9)
    assert ex.engine.last_ts == ts


def test_add_symbol_event_and_duplicate(ex):
    eng = Engine()
    ev = eng.apply(C.AddSymbol(ex.spec), 1, 1)
    assert ev == [SymbolAdded(ex.spec)]
    ev = eng.apply(C.AddSymbol(ex.spec), 2, 2)
    assert ev[0].reason == Reject.SYMBOL_EXISTS


def test_same_commands_same_hash_on_either_book(make_exchange):
    a = make_exchange()
    b_engine = Engine(book_factory=NaiveBook)
    for seq, (cmd, events) in enumerate(a.history, start=1):
        assert b_engine.apply(cmd, seq, seq) == events
    for i in range(20):
        cmd = a.order_cmd(1 + i % 3, Side(i % 2), 995 + (i * 7) % 11, 1 + i % 4)
        events = a.apply(cmd)
        assert b_engine.apply(cmd, a.seq, a.ts) == events
    assert state_hash(a.engine) == state_hash(b_engine)
