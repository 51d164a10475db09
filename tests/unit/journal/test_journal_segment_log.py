"""The segment log: seqs, group commit, fsync policies, rolling, torn tails, corruption."""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path

import pytest

import chainbook.journal.segment_log as segment_log
from chainbook.domain.commands import Deposit
from chainbook.journal.backend import CorruptLogError, FsyncPolicy, LogError
from chainbook.journal.codec import RecordType, scan_frames
from chainbook.journal.crashchild import command_stream
from chainbook.journal.segment_log import SegmentLog, UnencodableEntry, list_segments

CMDS = list(itertools.islice(command_stream(3), 400))


def _log(path: Path, **kw: object) -> SegmentLog:
    return SegmentLog(path, RecordType.COMMAND, **kw)  # type: ignore[arg-type]


def _fill(log: SegmentLog, sizes: list[int], start: int = 0) -> list[int]:
    """Append and commit runs of ``sizes`` commands; return the seq after each commit."""
    acks, i = [], start
    for n in sizes:
        for cmd, ts in CMDS[i:i + n]:
            log.append(ts, cmd)
        i += n
        acks.append(log.commit())
    return acks


@pytest.fixture
def fsyncs(monkeypatch):
    """Count real fdatasync calls made by the log (the call still happens)."""
    calls = []
    real = segment_log._datasync

    def counting(fd):
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(segment_log, "_datasync", counting)
    return calls


def test_seqs_start_at_one_are_contiguous_and_read_back(tmp_path):
    log = _log(tmp_path)
    assert (log.last_seq, log.durable_seq) == (0, 0)
    assert log.append(*CMDS[0][::-1]) == 1
    assert log.append_batch((ts, c) for c, ts in CMDS[1:5]) == 5
    assert log.durable_seq == 0 and log.pending == 5
    assert log.commit() == 5
    assert _fill(log, [3, 7], start=5) == [8, 15]
    got = list(log.read())
    assert [s for s, _, _ in got] == list(range(1, 16))
    assert [(c, ts) for _, ts, c in got] == CMDS[:15]
    assert [(s, c) for s, _, c in log.read(9)] == [(s, CMDS[s - 1][0]) for s in range(9, 16)]
    assert [f for f, _, _ in log.read_batches(7)] == [7, 9]
    log.close()
    again = _log(tmp_path)
    assert (again.last_seq, again.durable_seq) == (15, 15)
    assert again.report.messages == []
    assert _fill(again, [2], start=15) == [17]
    assert [c for _, _, c in again.read()] == [c for c, _ in CMDS[:17]]
    again.close()


def test_commit_upto_writes_only_that_far(tmp_path):
    log = _log(tmp_path)
    for cmd, ts in CMDS[:10]:
        log.append(ts, cmd)
    assert log.commit(upto=4) == 4
    assert log.pending == 6 and log.last_seq == 10
    assert [s for s, _, _ in log.read()] == [1, 2, 3, 4]
    assert log.commit(upto=2) == 4  # nothing below the written seq is rewritten
    assert log.commit() == 10
    assert [c for _, _, c in log.read()] == [c for c, _ in CMDS[:10]]
    log.close()


def test_discard_last_and_drop_pending_only_touch_the_buffer(tmp_path):
    log = _log(tmp_path)
    _fill(log, [3])
    with pytest.raises(LogError):
        log.discard_last()
    log.append(1, CMDS[3][0])
    log.append(2, CMDS[4][0])
    log.discard_last()
    assert log.last_seq == 4
    assert log.append(3, CMDS[5][0]) == 5
    assert log.commit() == 5
    assert [c for _, _, c in log.read()] == [c for c, _ in CMDS[:4]] + [CMDS[5][0]]
    log.append(4, CMDS[6][0])
    assert log.drop_pending() == 1 and log.last_seq == 5
    log.close()


def test_segments_roll_at_the_size_limit_and_are_named_by_first_seq(tmp_path):
    log = _log(tmp_path, segment_bytes=600)
    acks = _fill(log, [5] * 30)
    segs = list_segments(tmp_path)
    assert len(segs) >= 5
    firsts = [s for s, _ in segs]
    assert firsts[0] == 1 and firsts == sorted(firsts)
    for (first, path), nxt in zip(segs, firsts[1:] + [acks[-1] + 1], strict=True):
        frames, stop = scan_frames(path.read_bytes())
        assert stop is None and frames[0].first_seq == first
        assert frames[-1].last_seq == nxt - 1
        assert path.stat().st_size <= 600 or len(frames) == 1
    assert [c for _, _, c in log.read()] == [c for c, _ in CMDS[:150]]
    assert [s for s, _, _ in log.read(firsts[3] + 2)][0] == firsts[3] + 2
    log.close()
    again = _log(tmp_path, segment_bytes=600)
    assert again.last_seq == 150 and again.report.segments == len(segs)
    again.close()


def test_fsync_every_syncs_each_commit(tmp_path, fsyncs):
    log = _log(tmp_path, fsync="every")
    assert _fill(log, [4, 1, 9]) == [5 - 1, 5, 14]
    assert len(fsyncs) == 3 and log.durable_seq == log.written_seq == 14
    assert log.commit() == 14 and len(fsyncs) == 3  # nothing new: no fsync
    log.close()


def test_fsync_interval_syncs_at_most_every_interval(tmp_path, fsyncs):
    now = [100.0]
    log = _log(tmp_path, fsync=FsyncPolicy.INTERVAL, fsync_interval_ms=50,
               clock=lambda: now[0])
    assert _fill(log, [3, 3]) == [0, 0]  # written, not yet synced: not acknowledged
    assert log.written_seq == 6 and fsyncs == []
    now[0] += 0.049
    assert _fill(log, [1], start=6) == [0]
    now[0] += 0.002
    assert _fill(log, [2], start=7) == [9]
    assert len(fsyncs) == 1
    assert _fill(log, [1], start=9) == [9]
    assert log.sync() == 10 and len(fsyncs) == 2
    log.close()


def test_fsync_off_never_syncs_and_acks_what_is_written(tmp_path, fsyncs):
    log = _log(tmp_path, fsync="off")
    assert _fill(log, [2, 5]) == [2, 7]
    log.close()
    assert fsyncs == []
    assert _log(tmp_path, fsync="off").last_seq == 7


def test_background_every_acks_after_a_sync_by_the_helper_thread(tmp_path, fsyncs):
    log = _log(tmp_path, fsync="every", background=True)
    acks = _fill(log, [50] * 8)
    assert all(a <= w for a, w in zip(acks, range(50, 401, 50), strict=True))
    assert log.wait_durable(400, timeout=10)
    assert log.durable_seq == 400 and 1 <= len(fsyncs) <= 8
    assert log.commit() == 400
    log.close()
    assert _log(tmp_path).last_seq == 400


def test_background_interval_moves_the_ack_point_without_further_commits(tmp_path, fsyncs):
    log = _log(tmp_path, fsync="interval", fsync_interval_ms=5, background=True)
    _fill(log, [10])
    assert log.wait_durable(10, timeout=10)
    deadline = time.monotonic() + 10
    while log.durable_seq < 10 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert log.durable_seq == 10 and fsyncs
    log.close()


def test_wait_durable_syncs_inline_without_a_thread(tmp_path, fsyncs):
    log = _log(tmp_path, fsync="interval", fsync_interval_ms=10_000)
    _fill(log, [3])
    assert log.durable_seq == 0
    assert log.wait_durable(3, timeout=1)
    assert log.durable_seq == 3 and len(fsyncs) == 1
    assert not log.wait_durable(4, timeout=0.01)  # never written: cannot become durable
    log.close()


def _three_commit_log(path: Path) -> tuple[list[int], bytes]:
    log = _log(path)
    acks = _fill(log, [4, 2, 5])
    log.close()
    (seg,) = list_segments(path)
    return acks, seg[1].read_bytes()


def test_torn_tail_at_every_offset_is_cut_on_open_and_never_read(tmp_path):
    acks, data = _three_commit_log(tmp_path / "orig")
    frames, _ = scan_frames(data)
    last = frames[-1]
    for cut in range(last.offset + 1, last.end):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / segment_log.segment_name(1)).write_bytes(data[:cut])
        log = _log(d)
        assert log.last_seq == acks[1], cut
        assert [s for s, _, _ in log.read()] == list(range(1, acks[1] + 1))
        (msg,) = log.report.messages
        assert "torn tail" in msg and f"byte {last.offset}" in msg
        assert (d / segment_log.segment_name(1)).stat().st_size == last.offset
        # the log goes on from the cut, with the same seqs the cut entries had
        assert _fill(log, [1], start=acks[1])[0] == acks[1] + 1
        log.close()
        shutil.rmtree(d)


def test_a_flipped_byte_anywhere_is_cut_in_the_tail_and_an_error_in_the_middle(tmp_path):
    acks, data = _three_commit_log(tmp_path / "orig")
    frames, _ = scan_frames(data)
    seg = segment_log.segment_name(1)
    for i in range(len(data)):
        d = tmp_path / f"flip{i}"
        d.mkdir()
        bad = bytearray(data)
        bad[i] ^= 0x10
        (d / seg).write_bytes(bad)
        k = next(j for j, f in enumerate(frames) if f.offset <= i < f.end)
        if k == len(frames) - 1:
            log = _log(d)
            assert log.last_seq == acks[-2], i
            (msg,) = log.report.messages
            assert "tail record" in msg and f"byte {frames[k].offset}" in msg
            assert (d / seg).stat().st_size == frames[k].offset
            log.close()
        else:
            with pytest.raises(CorruptLogError) as err:
                _log(d)
            assert err.value.offset == frames[k].offset, i
            assert "valid frames follow" in str(err.value)
            assert (d / seg).read_bytes() == bad  # nothing was cut
        shutil.rmtree(d)


def test_damage_in_an_older_segment_is_an_error_not_a_cut(tmp_path):
    log = _log(tmp_path, segment_bytes=400)
    _fill(log, [5] * 12)
    log.close()
    segs = list_segments(tmp_path)
    assert len(segs) >= 3
    path = segs[0][1]
    good = path.read_bytes()
    frames, _ = scan_frames(good)
    # a flipped byte in the last frame of an older segment
    bad = bytearray(good)
    bad[frames[-1].offset + 30] ^= 1
    path.write_bytes(bad)
    with pytest.raises(CorruptLogError, match="older segment"):
        _log(tmp_path, segment_bytes=400)
    # an older segment that ends in a torn frame
    path.write_bytes(good[:-3])
    with pytest.raises(CorruptLogError, match="older segment"):
        _log(tmp_path, segment_bytes=400)
    assert path.read_bytes() == good[:-3]
    # a missing segment in the middle
    path.write_bytes(good)
    segs[1][1].unlink()
    with pytest.raises(CorruptLogError, match="entries are missing"):
        _log(tmp_path, segment_bytes=400)


def test_zeros_after_the_last_frame_are_cut(tmp_path):
    """What a filesystem can leave after a crash: the size grew, the data never came."""
    acks, data = _three_commit_log(tmp_path)
    (tmp_path / segment_log.segment_name(1)).write_bytes(data + bytes(4096))
    log = _log(tmp_path)
    assert log.last_seq == acks[-1] and "corrupt tail record" in log.report.messages[0]
    log.close()


def test_readonly_tails_a_live_log_and_never_cuts(tmp_path):
    writer = _log(tmp_path, segment_bytes=500)
    _fill(writer, [6, 6])
    reader = _log(tmp_path, readonly=True)
    assert [s for s, _, _ in reader.read()] == list(range(1, 13))
    _fill(writer, [6] * 5, start=12)
    assert [s for s, _, _ in reader.read(10)] == list(range(10, 43))
    with pytest.raises(LogError):
        reader.commit()
    # a torn frame at the very end (a write in progress) ends the read quietly
    last = list_segments(tmp_path)[-1][1]
    size = last.stat().st_size
    with open(last, "ab") as f:
        f.write(b"\x00\x01\x02")
    assert [s for s, _, _ in reader.read()][-1] == 42
    assert last.stat().st_size == size + 3
    writer.close()


def test_truncate_after_inside_a_frame_at_a_boundary_and_to_zero(tmp_path):
    log = _log(tmp_path, segment_bytes=300)
    _fill(log, [4] * 10)
    log.truncate_after(22)  # inside a frame (21..24)
    assert log.last_seq == log.durable_seq == 22
    assert [c for _, _, c in log.read()] == [c for c, _ in CMDS[:22]]
    _fill(log, [3], start=22)
    log.truncate_after(24)
    log.truncate_after(24)
    assert [s for s, _, _ in log.read()][-1] == 24
    log.close()
    again = _log(tmp_path, segment_bytes=300)
    assert again.last_seq == 24 and again.report.messages == []
    again.truncate_after(0)
    assert again.last_seq == 0 and list(again.read()) == []
    assert _fill(again, [2]) == [2]
    again.close()
    assert [s for s, _, _ in _log(tmp_path, readonly=True).read()] == [1, 2]


def test_an_entry_that_cannot_be_encoded_is_refused_and_nothing_is_written(tmp_path):
    log = _log(tmp_path)
    _fill(log, [2])
    log.append(5, Deposit(1, "ETH", 2**70, "huge"))
    with pytest.raises(UnencodableEntry, match="3..3"):
        log.commit()
    assert log.pending == 1 and log.written_seq == 2
    log.drop_pending()
    assert _fill(log, [1], start=2) == [3]
    log.close()


def test_verify_tail_opens_without_reading_old_segments_and_catches_damage_on_read(tmp_path):
    log = _log(tmp_path, segment_bytes=400)
    _fill(log, [5] * 12)
    log.close()
    segs = list_segments(tmp_path)
    path = segs[0][1]
    bad = bytearray(path.read_bytes())
    bad[40] ^= 1
    path.write_bytes(bad)
    with pytest.raises(CorruptLogError):
        _log(tmp_path, segment_bytes=400)
    quick = _log(tmp_path, segment_bytes=400, verify="tail")
    assert quick.last_seq == 60 and quick.report.messages == []
    assert [s for s, _, _ in quick.read(segs[1][0])][0] == segs[1][0]
    with pytest.raises(CorruptLogError, match="CRC mismatch"):
        list(quick.read())
    assert path.read_bytes() == bad
    quick.close()
