"""The durable hot path: list appenders instead of append calls, same bytes on disk.

``DurableEngine.submit`` buffers into a ``SegmentLog`` through ``pending_appenders`` (two
C-level list appends) and counts seqs itself; any other ``LogBackend`` goes through its
``append``.  Whatever the path, the files must be byte for byte what one
``codec.encode_frame`` per committed run writes.
"""

from __future__ import annotations

import gc
import itertools
from pathlib import Path
from typing import Any

import pytest

import chainbook.journal.segment_log as segment_log
from chainbook.engine import Engine
from chainbook.engine.state import state_hash
from chainbook.journal.backend import LogBackend
from chainbook.journal.codec import RecordType, decode_buffer, encode_frame
from chainbook.journal.crashchild import command_stream
from chainbook.journal.recovery import DurableEngine, EngineFailure, recover
from chainbook.journal.segment_log import SegmentLog, list_segments

STREAM = list(itertools.islice(command_stream(5), 1600))


def _bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for _, p in list_segments(directory))


def _reference_frames(rtype: RecordType, runs: list[tuple[int, list[int], list[Any]]]) -> bytes:
    """The old encoding: one ``encode_frame`` per committed run."""
    out = bytearray()
    for first, ts, items in runs:
        encode_frame(rtype, first, ts, items, out)
    return bytes(out)


def test_pending_appenders_buffer_exactly_like_append(tmp_path, monkeypatch):
    monkeypatch.setattr(segment_log, "MAX_FRAME_ITEMS", 7)  # long runs split into frames
    a = SegmentLog(tmp_path / "a", RecordType.COMMAND, fsync="off")
    b = SegmentLog(tmp_path / "b", RecordType.COMMAND, fsync="off")
    push_ts, push_item = b.pending_appenders()
    pending: list[tuple[int, Any]] = []  # the model of the buffer
    runs: list[tuple[int, list[int], list[Any]]] = []  # what each commit must write
    i = 0
    for step, n in enumerate([1, 5, 7, 8, 30, 3, 16, 0]):
        for cmd, ts in STREAM[i:i + n]:
            assert a.append(ts, cmd) == b.last_seq + 1
            push_ts(ts)
            push_item(cmd)
            pending.append((ts, cmd))
        i += n
        assert b.last_seq == a.last_seq == a.written_seq + len(pending)
        assert b.pending == len(pending)
        if step == 2:  # take the newest back, on both
            a.discard_last()
            b.discard_last()
            pending.pop()
        if step == 3:  # give up on the whole buffer
            assert a.drop_pending() == b.drop_pending() == len(pending) > 0
            pending.clear()
            continue
        written = b.written_seq
        upto = written + max(1, len(pending) // 2) if step % 2 else None  # partial commits
        assert a.commit(upto) == b.commit(upto)
        k = b.written_seq - written
        assert k == (len(pending) if upto is None else min(len(pending), upto - written))
        for off in range(0, k, 7):
            chunk = pending[off:min(k, off + 7)]
            runs.append((written + off + 1, [t for t, _ in chunk], [c for _, c in chunk]))
        del pending[:k]
        assert a.written_seq == b.written_seq and a.pending == b.pending == len(pending)
    a.close()
    b.close()
    assert len(runs) > 8  # partial commits and split runs were exercised
    ref = _reference_frames(RecordType.COMMAND, runs)
    assert _bytes(tmp_path / "b") == _bytes(tmp_path / "a") == ref


def test_durable_engine_writes_one_frame_per_commit_byte_for_byte(tmp_path):
    """Commands and events on disk equal one ``encode_frame`` per commit of the same runs
    (the format is unchanged by the appenders)."""
    eng = Engine()
    cmd_runs, ev_runs = [], []
    sizes = [1, 999, 1, 250, 249]
    with DurableEngine(tmp_path) as de:
        i = 0
        for n in sizes:
            ts_run, cmd_run, ev_run = [], [], []
            for cmd, ts in STREAM[i:i + n]:
                seq, events = de.submit(cmd, ts)
                assert seq == i + len(cmd_run) + 1
                assert events == eng.apply(cmd, seq, ts)
                ts_run.append(ts)
                cmd_run.append(cmd)
                ev_run.append(events)
            assert de.commit() == i + n
            cmd_runs.append((i + 1, ts_run, cmd_run))
            ev_runs.append((i + 1, ts_run, ev_run))
            i += n
    assert _bytes(tmp_path / "commands") == _reference_frames(RecordType.COMMAND, cmd_runs)
    assert _bytes(tmp_path / "events") == _reference_frames(RecordType.EVENTS, ev_runs)
    records, stop = decode_buffer(_bytes(tmp_path / "events"))
    assert stop is None and [r.first_seq for r in records] == [1, 2, 1001, 1002, 1252]
    # reopening counts on from the log's end
    with DurableEngine(tmp_path) as de:
        assert de.submit(*STREAM[1500])[0] == sum(sizes) + 1
        assert de.commit() == sum(sizes) + 1


class _Forwarding:
    """A ``LogBackend`` that is not a ``SegmentLog``: it forwards to one (real files)
    and counts the entries that came through ``append``."""

    def __init__(self, log: SegmentLog) -> None:
        self._log = log
        self.appended = 0

    def append(self, ts: int, item: Any) -> int:
        self.appended += 1
        return self._log.append(ts, item)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


@pytest.mark.parametrize("events", [True, False])
def test_any_other_backend_goes_through_append_and_writes_the_same(tmp_path, events):
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    cmds = _Forwarding(SegmentLog(slow / "commands", RecordType.COMMAND))
    evs = _Forwarding(SegmentLog(slow / "events", RecordType.EVENTS, fsync="off"))
    backend: LogBackend = cmds  # type: ignore[assignment]
    with DurableEngine(fast, events=events) as a, DurableEngine(
            slow, events=events, command_log=backend,
            event_log=evs if events else None) as b:  # type: ignore[arg-type]
        for i in range(0, 600, 150):
            for cmd, ts in STREAM[i:i + 150]:
                assert a.submit(cmd, ts) == b.submit(cmd, ts)
            assert a.commit() == b.commit() == i + 150
    assert cmds.appended == 600 and evs.appended == (600 if events else 0)
    assert _bytes(fast / "commands") == _bytes(slow / "commands")
    assert _bytes(fast / "events") == _bytes(slow / "events")
    if not events:
        evs.close()
    assert state_hash(recover(fast)[0]) == state_hash(recover(slow)[0])


def test_a_failed_command_gives_its_seq_back(tmp_path):
    de = DurableEngine(tmp_path)
    for cmd, ts in STREAM[:10]:
        de.submit(cmd, ts)
    with pytest.raises(EngineFailure, match="seq 11"):
        de.submit("not a command", 1)  # type: ignore[arg-type]
    assert de.commands.last_seq == 10 and de.commit() == 10
    de.close()
    with DurableEngine(tmp_path) as again:
        assert again.submit(*STREAM[10]) == (11, _events_of(11))
        assert again.commit() == 11


def _events_of(n: int) -> list[Any]:
    eng = Engine()
    out: list[Any] = []
    for seq, (cmd, ts) in enumerate(STREAM[:n], start=1):
        out = eng.apply(cmd, seq, ts)
    return out


def test_buffered_events_leave_nothing_for_the_collector_to_scan(tmp_path):
    """Each command's events wait for the commit as a tuple of untracked structs, which
    the collector untracks; a list would stay tracked (and be scanned) until written."""
    with DurableEngine(tmp_path) as de:
        lists = [de.submit(cmd, ts)[1] for cmd, ts in STREAM[:500]]
        assert de.events is not None and de.events.pending == 500
        buffered = list(de.events._items)  # noqa: SLF001 - the buffer under test
        gc.collect()
        assert all(not gc.is_tracked(evs) for evs in buffered)
        assert [list(evs) for evs in buffered] == lists
        assert any(gc.is_tracked(evs) for evs in lists)  # what the list would have cost
