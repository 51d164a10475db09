"""The journal tail reads a live journal without the lock, stops at torn frames, follows
segment rollover and never writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chainbook.domain import commands as C
from chainbook.domain.events import Deposited
from chainbook.journal.backend import CorruptLogError, FsyncPolicy
from chainbook.journal.codec import RecordType, encode_frame
from chainbook.journal.recovery import DurableEngine
from chainbook.journal.segment_log import list_segments
from chainbook.ledger.source import JournalRewound, JournalTail

TS = 1_700_000_000_000_000_000


def _deposit(de: DurableEngine, i: int) -> None:
    de.submit(C.Deposit(1, "USDT", 10 + i, f"d{i}"), TS + i)


def _fingerprint(d: Path) -> dict[str, tuple[int, int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_mode)
            for p in sorted(d.iterdir())}


def test_tails_a_live_engine_across_rollovers_without_lock_or_writes(tmp_path):
    de = DurableEngine(tmp_path, fsync=FsyncPolicy.OFF, segment_bytes=2000)
    tail = JournalTail(tmp_path / "events")
    assert tail.poll() == []  # nothing written yet
    seen: list[int] = []
    try:
        for i in range(1, 301):
            _deposit(de, i)
            if i % 7 == 0:
                de.commit()  # the server holds LOCK all along; the tail never asks for it
                before = _fingerprint(tmp_path / "events")
                got = tail.poll(50)
                assert _fingerprint(tmp_path / "events") == before
                seen += [seq for seq, _ts, _ev in got]
        de.commit()
        seen += [seq for seq, _ts, _ev in tail.poll(10_000)]
    finally:
        de.close()
    assert len(list_segments(tmp_path / "events")) > 5
    assert seen == list(range(1, 301))


def test_stops_at_a_torn_frame_and_resumes_when_it_completes(tmp_path):
    with DurableEngine(tmp_path, fsync=FsyncPolicy.OFF) as de:
        for i in range(1, 4):
            _deposit(de, i)
        de.commit()
    seg = list_segments(tmp_path / "events")[-1][1]
    frame = encode_frame(RecordType.EVENTS, 4, [TS + 4],
                         [[Deposited(1, "USDT", 14, "d4")]])
    tail = JournalTail(tmp_path / "events")
    assert [s for s, _, _ in tail.poll()] == [1, 2, 3]
    with open(seg, "ab") as f:
        f.write(frame[:10])  # a writer in the middle of its write
    assert tail.poll() == [] and tail.poll() == []
    assert tail.waits == 2
    with open(seg, "ab") as f:
        f.write(frame[10:])
    got = tail.poll()
    assert [(s, ev[0].amount) for s, _, ev in got] == [(4, 14)]


def test_starts_mid_journal_and_reports_a_rewound_file(tmp_path):
    with DurableEngine(tmp_path, fsync=FsyncPolicy.OFF, segment_bytes=600) as de:
        for i in range(1, 60):
            _deposit(de, i)
            de.commit()
    tail = JournalTail(tmp_path / "events", from_seq=41)
    assert [s for s, _, _ in tail.poll()] == list(range(41, 60))
    seg = list_segments(tmp_path / "events")[-1][1]
    os.truncate(seg, 10)
    with pytest.raises(JournalRewound):
        tail.poll()


def test_a_hole_between_segments_is_damage(tmp_path):
    with DurableEngine(tmp_path, fsync=FsyncPolicy.OFF, segment_bytes=600) as de:
        for i in range(1, 60):
            _deposit(de, i)
            de.commit()
    segs = list_segments(tmp_path / "events")
    segs[1][1].unlink()  # entries of the second segment are gone
    tail = JournalTail(tmp_path / "events")
    got = tail.poll(10_000)  # what precedes the hole, then the damage
    assert [s for s, _, _ in got] == list(range(1, segs[1][0]))
    with pytest.raises(CorruptLogError, match="next segment starts at seq"):
        tail.poll(10_000)
