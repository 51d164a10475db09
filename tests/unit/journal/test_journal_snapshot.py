"""Snapshots: hash, framing, corruption detection, the store, the forked writer."""

from __future__ import annotations

import itertools
import os
import struct
import zlib

import pytest

from chainbook.engine import Engine
from chainbook.engine.state import check, export_state, import_state, state_hash
from chainbook.journal.crashchild import command_stream
from chainbook.journal.snapshot import (
    SNAP_HEADER,
    CorruptSnapshotError,
    SnapshotStore,
    SnapshotWriter,
    decode_snapshot,
    encode_snapshot,
    snap_hash,
)


def _engine(n: int, seed: int = 11) -> Engine:
    eng = Engine()
    for seq, (cmd, ts) in enumerate(itertools.islice(command_stream(seed), n), start=1):
        eng.apply(cmd, seq, ts)
    return eng


@pytest.fixture(scope="module")
def busy_engine() -> Engine:
    eng = _engine(3000)
    assert sum(len(s.orders) for s in eng.symbols.values()) > 100
    assert eng.withdrawals and eng.balances.acct
    return eng


def test_snap_hash_is_state_hash(busy_engine):
    assert snap_hash(export_state(busy_engine)) == state_hash(busy_engine)
    assert snap_hash(export_state(Engine())) == state_hash(Engine())


def test_image_round_trips_to_the_same_state(busy_engine):
    image = encode_snapshot(export_state(busy_engine))
    snap = decode_snapshot(image)
    assert snap.seq == busy_engine.last_seq == 3000
    eng = import_state(snap)
    check(eng)
    assert state_hash(eng) == state_hash(busy_engine)
    assert SNAP_HEADER.unpack_from(image)[3].hex() == state_hash(busy_engine)


def test_every_flipped_byte_and_every_truncation_is_detected():
    image = encode_snapshot(export_state(_engine(400)))
    assert len(image) < 20_000
    for i in range(len(image)):
        bad = bytearray(image)
        bad[i] ^= 0x04
        with pytest.raises(CorruptSnapshotError):
            decode_snapshot(bytes(bad))
    for cut in range(0, len(image), 97):
        with pytest.raises(CorruptSnapshotError):
            decode_snapshot(image[:cut])


def test_a_valid_frame_around_the_wrong_state_is_detected(busy_engine):
    """CRCs that match but a hash that does not (a writer bug, not bit rot)."""
    image = encode_snapshot(export_state(busy_engine))
    fields = list(SNAP_HEADER.unpack_from(image))
    fields[3] = bytes.fromhex(state_hash(Engine()))
    head = SNAP_HEADER.pack(*fields)[:-4]
    forged = head + struct.pack("<I", zlib.crc32(head)) + image[SNAP_HEADER.size:]
    with pytest.raises(CorruptSnapshotError, match="state hash"):
        decode_snapshot(forged)


def test_store_keeps_the_newest_k_and_falls_back_past_bad_ones(tmp_path):
    store = SnapshotStore(tmp_path, keep=3)
    engines = {n: _engine(n) for n in (100, 200, 300, 400)}
    for eng in engines.values():
        store.write(export_state(eng))
    assert store.seqs() == [200, 300, 400]
    # newest is damaged: the next one is used and the reason reported
    p = store.path(400)
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p.write_bytes(raw)
    snap, skipped = store.newest_valid(10_000)
    assert snap is not None and snap.seq == 300
    assert skipped[0][0] == str(p) and "CRC" in skipped[0][1]
    assert state_hash(import_state(snap)) == state_hash(engines[300])
    # a snapshot ahead of the log's end is never used
    snap, skipped = store.newest_valid(250)
    assert snap is not None and snap.seq == 200
    assert [why for _, why in skipped][:1] == ["seq 400 is beyond the log's end 250"]
    assert store.newest_valid(150) == (None, [(str(store.path(s)), w) for s, w in
                                              zip((400, 300, 200),
                                                  ("seq 400 is beyond the log's end 150",
                                                   "seq 300 is beyond the log's end 150",
                                                   "seq 200 is beyond the log's end 150"),
                                                  strict=True)])


def test_clean_temp_removes_what_dead_writers_left(tmp_path):
    store = SnapshotStore(tmp_path)
    store.write(export_state(_engine(50)))
    stale = tmp_path / f".{store.path(99).name}.12345.tmp"
    stale.write_bytes(b"half a snapshot")
    assert store.clean_temp() == [str(stale)]
    assert not stale.exists() and store.seqs() == [50]


@pytest.mark.parametrize("mode", ["fork", "inline"])
def test_writer_captures_the_state_at_start_while_the_engine_moves_on(tmp_path, mode):
    eng = _engine(1500)
    before = state_hash(eng)
    writer = SnapshotWriter(SnapshotStore(tmp_path), mode=mode)
    job = writer.start(eng)
    stream = itertools.islice(command_stream(11), 1500, 2500)
    for seq, (cmd, ts) in enumerate(stream, start=1501):
        eng.apply(cmd, seq, ts)  # the parent keeps matching while the child writes
    info = job.wait(timeout=30)
    assert not writer.busy
    assert info.seq == 1500 and info.state_hash == before != state_hash(eng)
    assert (job.pid != 0) == (mode == "fork")
    snap = writer.store.load(1500)
    assert state_hash(import_state(snap)) == before
    assert os.path.getsize(info.path) == info.size


def test_one_forked_write_at_a_time_and_failures_are_reported(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    writer = SnapshotWriter(SnapshotStore(blocker), mode="fork")
    job = writer.start(_engine(20))
    with pytest.raises(RuntimeError, match="failed"):
        job.wait(timeout=30)
    assert job.done and job.info is None and "Error" in (job.error or "")
    writer2 = SnapshotWriter(SnapshotStore(tmp_path / "snaps"), mode="fork")
    eng = _engine(2000)
    job2 = writer2.start(eng)
    if not job2.poll():
        with pytest.raises(RuntimeError, match="already"):
            writer2.start(eng)
    assert job2.wait(timeout=30).seq == 2000
