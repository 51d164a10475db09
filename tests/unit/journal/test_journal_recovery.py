"""Recovery and the DurableEngine shell: ordering, ack point, fallbacks, failures."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from chainbook.domain.commands import Deposit
from chainbook.engine import Engine
from chainbook.engine.state import check, state_hash
from chainbook.journal.backend import CorruptLogError
from chainbook.journal.codec import RecordType, scan_frames
from chainbook.journal.crashchild import command_stream
from chainbook.journal.recovery import (
    DurableEngine,
    EngineFailure,
    JournalLocked,
    RecoveryError,
    recover,
)
from chainbook.journal.segment_log import SegmentLog, list_segments

SEED = 21
STREAM = list(itertools.islice(command_stream(SEED), 3000))


def _reference(n: int) -> tuple[Engine, list[list[object]]]:
    """The engine and per-command events after the first ``n`` commands, in process."""
    eng = Engine()
    events = [eng.apply(cmd, seq, ts) for seq, (cmd, ts) in enumerate(STREAM[:n], start=1)]
    return eng, events


def _run(de: DurableEngine, start: int, stop: int, batch: int = 100) -> None:
    for i in range(start, stop, batch):
        for cmd, ts in STREAM[i:min(stop, i + batch)]:
            de.submit(cmd, ts)
        de.commit()


def _journal(path: Path) -> list[tuple[int, int, object]]:
    return list(SegmentLog(path / "events", RecordType.EVENTS, readonly=True).read())


def test_submit_returns_seq_and_the_engines_events_and_reopen_restores(tmp_path):
    ref, ref_events = _reference(1200)
    with DurableEngine(tmp_path) as de:
        assert de.last_seq == 0 and de.report.replayed == 0
        for i, (cmd, ts) in enumerate(STREAM[:1200]):
            seq, events = de.submit(cmd, ts)
            assert seq == i + 1 and events == ref_events[i]
            if seq % 250 == 0:
                assert de.commit() == seq == de.durable_seq
        assert de.durable_seq == 1000  # 1001..1200 are applied, not acknowledged
    engine, last, report = recover(tmp_path)
    assert last == 1200 and report.replayed == 1200 and report.snapshot_seq == 0
    assert state_hash(engine) == state_hash(ref)
    check(engine)
    assert [(s, e) for s, _, e in _journal(tmp_path)] == list(enumerate(ref_events, start=1))


def test_recovery_uses_the_newest_snapshot_and_replays_only_after_it(tmp_path):
    with DurableEngine(tmp_path, snapshot_mode="fork") as de:
        _run(de, 0, 1000)
        de.snapshot(wait=True)
        _run(de, 1000, 1700)
        job = de.snapshot()
        assert job is not None
        _run(de, 1700, 2000)  # matching goes on while the child writes
        job.wait(timeout=30)
    engine, last, report = recover(tmp_path)
    assert (last, report.snapshot_seq, report.replayed) == (2000, 1700, 300)
    assert state_hash(engine) == state_hash(_reference(2000)[0])


def test_a_corrupt_newest_snapshot_falls_back_to_the_older_one(tmp_path):
    with DurableEngine(tmp_path, snapshot_mode="inline") as de:
        _run(de, 0, 800)
        de.snapshot()
        _run(de, 800, 1500)
        de.snapshot()
        _run(de, 1500, 1600)
    newest = de.store.path(1500)
    raw = bytearray(newest.read_bytes())
    raw[-10] ^= 0x01
    newest.write_bytes(raw)
    engine, last, report = recover(tmp_path)
    assert report.snapshot_seq == 800 and report.replayed == 800 and last == 1600
    assert report.skipped_snapshots == [(str(newest), f"{newest}: body CRC mismatch")]
    assert state_hash(engine) == state_hash(_reference(1600)[0])


@pytest.mark.parametrize("fsync", ["every", "interval"])
def test_torn_command_tail_at_every_offset_is_cut_and_never_applied(tmp_path, fsync):
    """Under ``interval`` too, events are written only for fsynced (acknowledged)
    commands, so the event journal proves the tail was acknowledged."""
    orig = tmp_path / "orig"
    with DurableEngine(orig, fsync=fsync, fsync_interval_ms=0) as de:
        _run(de, 0, 60, batch=30)
        for cmd, ts in STREAM[60:64]:
            de.submit(cmd, ts)
        de.commit()
    (seg,) = list_segments(orig / "commands")
    data = seg[1].read_bytes()
    frames, _ = scan_frames(data)
    last = frames[-1]
    assert (last.first_seq, last.n) == (61, 4)
    want = state_hash(_reference(60)[0])
    for cut in range(last.offset + 1, last.end):
        d = tmp_path / f"c{cut}"
        shutil.copytree(orig, d)
        (d / "commands" / seg[1].name).write_bytes(data[:cut])
        # the event journal holds seq 64, written only once 61..64 were fsynced: the
        # "torn tail" is damage to acknowledged commands, refused before anything is cut
        with pytest.raises(RecoveryError, match="seq 64 was acknowledged"):
            recover(d, fsync=fsync)
        assert (d / "commands" / seg[1].name).read_bytes() == data[:cut]
        engine, n, report = recover(d, fsync=fsync, accept_loss=True)  # the operator accepts
        assert n == 60 and state_hash(engine) == want, cut
        assert any("torn tail record" in m for m in report.messages)
        # the event journal held events of the cut commands: they are dropped too
        assert report.events_dropped == 4
        assert [s for s, _, _ in _journal(d)] == list(range(1, 61))
        shutil.rmtree(d)


def test_a_tail_torn_before_it_was_durable_is_cut_without_being_asked(tmp_path):
    """A crash while writing a batch: its commands are not fsynced, so there are no events
    for them; the torn tail is cut and nothing acknowledged is lost."""
    orig = tmp_path / "orig"
    with DurableEngine(orig) as de:
        _run(de, 0, 60, batch=30)
        for cmd, ts in STREAM[60:64]:
            de.submit(cmd, ts)
        de.commands.commit()  # written (and synced) but the events are not written yet
        shutil.copytree(orig, tmp_path / "crash")
    (seg,) = list_segments(tmp_path / "crash" / "commands")
    data = seg[1].read_bytes()
    last = scan_frames(data)[0][-1]
    seg[1].write_bytes(data[:last.end - 3])
    engine, n, report = recover(tmp_path / "crash")
    assert n == 60 and state_hash(engine) == state_hash(_reference(60)[0])
    assert any("torn tail record" in m for m in report.messages)


def test_a_snapshot_beyond_a_damaged_log_is_refused_then_set_aside(tmp_path):
    """A snapshot is taken only after an fsync of everything applied: a command log that
    ends before it lost acknowledged commands.  Refused; accepted, the snapshot is moved
    aside so that no later start loads it over a log that has gone another way."""
    with DurableEngine(tmp_path, fsync="off", snapshot_mode="inline") as de:
        _run(de, 0, 300, batch=50)
        de.snapshot(wait=True)
        _run(de, 300, 320, batch=20)
    (seg,) = list_segments(tmp_path / "commands")
    data = seg[1].read_bytes()
    frames, _ = scan_frames(data)
    cut = next(f for f in frames if f.first_seq > 200)
    seg[1].write_bytes(data[:cut.offset + 5])  # a "torn" tail at seq 200
    with pytest.raises(RecoveryError, match=r"seq 3[02]0 was acknowledged.*accept-data-loss"):
        recover(tmp_path)
    engine, n, report = recover(tmp_path, accept_loss=True)
    assert n == 200 and report.snapshot_seq == 0
    assert state_hash(engine) == state_hash(_reference(200)[0])
    assert any("moved aside" in m for m in report.messages)
    assert list((tmp_path / "snapshots").glob("*.beyond-log"))
    engine, n, report = recover(tmp_path)  # later starts: no error, the snapshot is gone
    assert n == 200 and report.snapshot_seq == 0


def test_a_flipped_byte_in_an_acknowledged_command_is_an_error(tmp_path):
    with DurableEngine(tmp_path) as de:
        _run(de, 0, 300)
    (seg,) = list_segments(tmp_path / "commands")
    raw = bytearray(seg[1].read_bytes())
    raw[len(raw) // 3] ^= 0x40
    seg[1].write_bytes(raw)
    with pytest.raises(CorruptLogError, match="valid frames follow"):
        recover(tmp_path)


def test_a_missing_event_journal_is_rebuilt_from_the_commands(tmp_path):
    ref_events = _reference(900)[1]
    with DurableEngine(tmp_path) as de:
        _run(de, 0, 900)
    shutil.rmtree(tmp_path / "events")
    _, _, report = recover(tmp_path)
    assert report.events_rewritten == 900
    assert [e for _, _, e in _journal(tmp_path)] == ref_events
    _, _, report = recover(tmp_path)
    assert report.events_rewritten == 0


def test_a_damaged_older_event_segment_is_set_aside_and_rebuilt(tmp_path):
    """The event journal is derived from the commands: damage in one of its older
    segments (after an OS crash it was never fsynced before segments rolled) does not
    stop the start: it is moved aside and written again from the command log."""
    ref_events = _reference(900)[1]
    with DurableEngine(tmp_path, segment_bytes=8 << 10) as de:
        _run(de, 0, 900)
    segs = list_segments(tmp_path / "events")
    assert len(segs) > 2
    older = segs[1][1]
    older.write_bytes(older.read_bytes()[:-100])  # lost writeback of an older segment
    _, n, report = recover(tmp_path, segment_bytes=8 << 10)
    assert n == 900 and report.events_rewritten == 900
    assert any("event journal damaged, rebuilt" in m for m in report.messages)
    assert [e for _, _, e in _journal(tmp_path)] == ref_events
    assert (tmp_path / "events.damaged-1").is_dir()
    # the journal's first segment lost: noticed, and rebuilt the same way
    other = tmp_path / "other"
    with DurableEngine(other, segment_bytes=8 << 10) as de:
        _run(de, 0, 900)
    list_segments(other / "events")[0][1].unlink()
    _, n, report = recover(other, segment_bytes=8 << 10)
    assert any("starts at seq" in m for m in report.messages), report.messages
    assert [e for _, _, e in _journal(other)] == ref_events


def test_events_are_written_only_for_commands_that_are_durable(tmp_path):
    now = [0.0]
    de = DurableEngine(tmp_path, fsync="interval", fsync_interval_ms=100,
                       clock=lambda: now[0])
    _run(de, 0, 200)
    assert de.durable_seq == 0 and de.commands.written_seq == 200
    assert de.events is not None and de.events.written_seq == 0
    now[0] += 1
    _run(de, 200, 250)
    assert de.durable_seq == 250 == de.events.written_seq
    _run(de, 250, 300)
    assert de.events.written_seq == 250
    de.close()
    assert recover(tmp_path)[1] == 300


def test_background_sync_acks_through_wait_durable(tmp_path):
    with DurableEngine(tmp_path, background_sync=True) as de:
        _run(de, 0, 1000, batch=250)
        assert de.wait_durable(1000, timeout=10)
        assert de.durable_seq == 1000
        assert de.events is not None and de.events.written_seq == 1000
    assert recover(tmp_path)[1] == 1000


def test_a_command_that_breaks_the_engine_is_taken_out_of_the_log(tmp_path):
    de = DurableEngine(tmp_path)
    _run(de, 0, 100)
    for cmd, ts in STREAM[100:110]:
        de.submit(cmd, ts)
    with pytest.raises(EngineFailure, match="seq 111"):
        de.submit("not a command", 1)  # type: ignore[arg-type]
    with pytest.raises(EngineFailure):
        de.submit(*STREAM[110])
    with pytest.raises(EngineFailure):
        de.snapshot()
    assert de.commit() == 110  # what was applied before the failure is kept
    de.close()
    engine, last, _ = recover(tmp_path)
    assert last == 110 and state_hash(engine) == state_hash(_reference(110)[0])


def test_a_command_the_log_cannot_encode_fails_the_commit_and_is_not_kept(tmp_path):
    de = DurableEngine(tmp_path)
    _run(de, 0, 50)
    de.submit(Deposit(1, "XYZ", 2**70, "too-big"), STREAM[50][1])
    with pytest.raises(EngineFailure, match="cannot be logged"):
        de.commit()
    de.close()
    engine, last, _ = recover(tmp_path)
    assert last == 50 and state_hash(engine) == state_hash(_reference(50)[0])


def test_a_second_owner_is_locked_out(tmp_path):
    de = DurableEngine(tmp_path)
    with pytest.raises(JournalLocked):
        DurableEngine(tmp_path, lock_timeout=0.05)
    de.close()
    DurableEngine(tmp_path, lock_timeout=0.05).close()


def test_a_snapshot_is_never_ahead_of_the_log(tmp_path):
    now = [0.0]
    de = DurableEngine(tmp_path, fsync="interval", fsync_interval_ms=1000,
                       snapshot_mode="inline", clock=lambda: now[0])
    _run(de, 0, 400)
    assert de.durable_seq == 0
    job = de.snapshot()
    assert job is not None and job.seq == 400 and de.durable_seq == 400
    de.close()
    assert recover(tmp_path)[2].snapshot_seq == 400
