"""Replay through the journal: a 120k-command seeded run, a forked snapshot mid-way, a
restart from the files, and the same state as an uninterrupted in-process run."""

from __future__ import annotations

import itertools

import msgspec

from chainbook.engine import Engine
from chainbook.engine.state import check, state_hash
from chainbook.journal.codec import RecordType
from chainbook.journal.crashchild import command_stream
from chainbook.journal.recovery import DurableEngine, recover
from chainbook.journal.segment_log import SegmentLog

N = 120_000
SNAP_AT = 61_000


def test_restart_from_snapshot_and_log_matches_the_uninterrupted_run(tmp_path):
    stream = list(itertools.islice(command_stream(77), N))
    ref = Engine()
    ref_events = [ref.apply(cmd, seq, ts) for seq, (cmd, ts) in enumerate(stream, start=1)]
    with DurableEngine(tmp_path, segment_bytes=1 << 20) as de:
        for i in range(0, N, 1000):
            for cmd, ts in stream[i:i + 1000]:
                de.submit(cmd, ts)
            de.commit()
            if i + 1000 == SNAP_AT - 1000:
                for cmd, ts in stream[i + 1000:SNAP_AT]:
                    de.submit(cmd, ts)
                job = de.snapshot()
                assert job is not None and job.seq == SNAP_AT
                stream_pos = SNAP_AT
                break
        for i in range(stream_pos, N, 1000):
            for cmd, ts in stream[i:i + 1000]:
                de.submit(cmd, ts)
            de.commit()
        assert job.wait(timeout=60).seq == SNAP_AT
    engine, last, report = recover(tmp_path)
    assert (last, report.snapshot_seq, report.replayed) == (N, SNAP_AT, N - SNAP_AT)
    assert state_hash(engine) == state_hash(ref)
    check(engine)
    enc = msgspec.msgpack.Encoder()
    journal = SegmentLog(tmp_path / "events", RecordType.EVENTS, readonly=True)
    got = [enc.encode(evs) for _, _, evs in journal.read()]
    assert got == [enc.encode(evs) for evs in ref_events]
    assert sum(len(e) for e in ref_events) > 3 * N
