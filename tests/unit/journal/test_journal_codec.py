"""The pure codec: round trips for every command and event type, torn and corrupt frames."""

from __future__ import annotations

import ast
import struct
import typing
import zlib
from enum import IntEnum
from pathlib import Path

import msgspec
import pytest

import chainbook.journal.codec as codec_mod
from chainbook.domain.commands import AnyCommand
from chainbook.domain.events import AnyEvent
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine import Engine
from chainbook.journal.codec import (
    HEADER_SIZE,
    CorruptRecord,
    Record,
    RecordType,
    TornTail,
    decode_buffer,
    encode_frame,
    find_valid_frame_after,
    scan_frames,
)
from chainbook.journal.crashchild import command_stream

SPEC = SymbolSpec("AAA-BBB", "AAA", "BBB", lot_units=10, quote_per_tick_lot=3, maker_bps=1)


def _value(t: msgspec.inspect.Type, k: int) -> object:
    """A non-default sample value of msgspec type ``t`` (``k`` varies ints and strings)."""
    if isinstance(t, msgspec.inspect.UnionType):
        return _value(next(x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)),
                      k)
    if isinstance(t, msgspec.inspect.BoolType):
        return True
    if isinstance(t, msgspec.inspect.IntType):
        return 2**40 + k
    if isinstance(t, msgspec.inspect.StrType):
        return f"s{k}-é"
    if isinstance(t, msgspec.inspect.EnumType):
        members = list(t.cls)
        return members[k % len(members)]
    if isinstance(t, msgspec.inspect.StructType) and t.cls is SymbolSpec:
        return SPEC
    raise AssertionError(f"no sample value for {t}")


def _sample(cls: type) -> object:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return cls(*[_value(f.type, i) for i, f in enumerate(info.fields)])


ALL_COMMANDS = [_sample(c) for c in typing.get_args(AnyCommand)]
ALL_EVENTS = [_sample(c) for c in typing.get_args(AnyEvent)]


def test_samples_cover_every_type_with_non_default_fields():
    assert len(ALL_COMMANDS) == len(typing.get_args(AnyCommand)) >= 11
    assert len(ALL_EVENTS) == len(typing.get_args(AnyEvent)) >= 15
    for obj in ALL_COMMANDS + ALL_EVENTS:
        for f in msgspec.structs.fields(obj):
            assert getattr(obj, f.name) is not None


@pytest.mark.parametrize("cmd", ALL_COMMANDS, ids=lambda c: type(c).__name__)
def test_every_command_type_round_trips_alone(cmd):
    buf = encode_frame(RecordType.COMMAND, 41, [123], [cmd])
    records, stop = decode_buffer(bytes(buf))
    assert stop is None
    (rec,) = records
    assert (rec.type, rec.first_seq, rec.last_seq, rec.ts) == (RecordType.COMMAND, 41, 41, [123])
    assert rec.items == [cmd] and type(rec.items[0]) is type(cmd)
    for f in msgspec.structs.fields(cmd):
        got, want = getattr(rec.items[0], f.name), getattr(cmd, f.name)
        assert got == want
        if isinstance(want, IntEnum):
            assert type(got) is type(want)


def test_every_event_type_round_trips_in_one_frame():
    lists = [ALL_EVENTS[i:] for i in range(len(ALL_EVENTS))] + [[]]
    ts = [10**18 + i for i in range(len(lists))]
    buf = encode_frame(RecordType.EVENTS, 7, ts, lists)
    (rec,), stop = decode_buffer(buf)
    assert stop is None
    assert rec.type == RecordType.EVENTS and rec.first_seq == 7 and rec.ts == ts
    assert rec.items == lists
    assert [type(e) for e in rec.items[0]] == list(typing.get_args(AnyEvent))


def test_real_engine_traffic_round_trips():
    """Commands of the crash stream and the events the engine made of them, in frames."""
    eng = Engine()
    stream = command_stream(5)
    cmds, ts, evs = [], [], []
    for seq in range(1, 3001):
        cmd, t = next(stream)
        cmds.append(cmd)
        ts.append(t)
        evs.append(eng.apply(cmd, seq, t))
    buf = bytearray()
    for i in range(0, 3000, 700):
        encode_frame(RecordType.COMMAND, i + 1, ts[i:i + 700], cmds[i:i + 700], buf)
    end_cmds = len(buf)
    encode_frame(RecordType.EVENTS, 1, ts, evs, buf)
    records, stop = decode_buffer(buf)
    assert stop is None
    assert [r.first_seq for r in records] == [1, 701, 1401, 2101, 2801, 1]
    assert sum((r.items for r in records[:-1]), []) == cmds
    assert records[-1].items == evs and records[-1].offset == end_cmds
    assert sum(len(e) for e in evs) > 6000  # it really traded, canceled, amended


def _three_frames() -> bytes:
    buf = bytearray()
    encode_frame(RecordType.COMMAND, 1, [1, 2], ALL_COMMANDS[:2], buf)
    encode_frame(RecordType.COMMAND, 3, [3], ALL_COMMANDS[2:3], buf)
    encode_frame(RecordType.COMMAND, 4, [4, 5, 6], ALL_COMMANDS[3:6], buf)
    return bytes(buf)


def test_torn_tail_at_every_offset_of_the_last_frame_is_reported_and_not_returned():
    data = _three_frames()
    frames, _ = scan_frames(data)
    last = frames[-1]
    for cut in range(last.offset + 1, last.end):
        records, stop = decode_buffer(data[:cut])
        assert [r.first_seq for r in records] == [1, 3], cut
        assert isinstance(stop, TornTail), (cut, stop)
        assert stop.offset == last.offset and stop.kind == "torn"
    assert decode_buffer(data[:last.offset])[1] is None


@pytest.mark.parametrize("frame", [0, 1, 2])
def test_a_flipped_byte_anywhere_in_a_frame_stops_decoding_there(frame):
    data = _three_frames()
    frames, _ = scan_frames(data)
    f = frames[frame]
    for i in range(f.offset, f.end):
        for mask in (0x01, 0x80):
            bad = bytearray(data)
            bad[i] ^= mask
            records, stop = decode_buffer(bad)
            assert len(records) == frame, (i, mask)
            assert stop is not None and stop.offset == f.offset, (i, mask, stop)
            assert all(isinstance(r, Record) for r in records)
            # damage in a frame followed by good frames is told apart from a bad tail
            later = find_valid_frame_after(bad, stop.offset)
            expect = frames[frame + 1].offset if frame < 2 else None
            assert later == expect, (i, mask)


def test_corrupt_reasons_are_specific():
    data = bytearray(_three_frames())
    crc_bad = bytearray(data)
    crc_bad[HEADER_SIZE + 1] ^= 0xFF
    assert decode_buffer(crc_bad)[1] == CorruptRecord(0, "CRC mismatch")
    zeros = bytes(data) + bytes(64)
    records, stop = decode_buffer(zeros)
    assert len(records) == 3 and isinstance(stop, CorruptRecord) and stop.offset == len(data)
    assert isinstance(decode_buffer(data[:10])[1], TornTail)


def test_a_frame_with_a_valid_crc_but_a_bad_payload_is_corrupt_not_returned():
    bad = bytearray(encode_frame(RecordType.COMMAND, 1, [1], [ALL_COMMANDS[0]]))
    bad[6] = int(RecordType.EVENTS)  # claims to be events: payload no longer decodes as such
    struct.pack_into("<I", bad, 0, zlib.crc32(memoryview(bad)[4:]))
    records, stop = decode_buffer(bad)
    assert records == [] and isinstance(stop, CorruptRecord)
    assert "payload does not decode" in stop.reason


def test_encode_rejects_bad_runs():
    with pytest.raises(ValueError):
        encode_frame(RecordType.COMMAND, 1, [], [])
    with pytest.raises(ValueError):
        encode_frame(RecordType.COMMAND, 1, [1, 2], [ALL_COMMANDS[0]])
    with pytest.raises(ValueError):
        encode_frame(RecordType.COMMAND, 0, [1], [ALL_COMMANDS[0]])


def test_codec_is_pure():
    src = Path(codec_mod.__file__).read_text()
    mods = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module.split(".")[0])
    assert not mods & {"os", "io", "time", "threading", "logging", "pathlib", "random"}


def test_a_cancel_logged_before_cancel_client_id_existed_still_decodes() -> None:
    """CancelOrder gained ``cancel_client_id`` (last, defaulted): a frame written with
    the four-field form decodes with it None, so older command logs replay."""
    import msgspec

    from chainbook.domain.commands import AnyCommand, CancelOrder

    class Before(msgspec.Struct, frozen=True, array_like=True, tag_field="k", tag=2):
        account: int
        symbol: str
        order_id: int | None = None
        client_id: str | None = None

    raw = msgspec.msgpack.encode(([7], [Before(1, "BTCUSDT", None, "o1")]))
    _, (cmd,) = msgspec.msgpack.decode(raw, type=tuple[list[int], list[AnyCommand]])
    assert cmd == CancelOrder(1, "BTCUSDT", None, "o1", cancel_client_id=None)
    now = msgspec.msgpack.encode(([7], [CancelOrder(1, "BTCUSDT", 5, None, "c1")]))
    assert msgspec.msgpack.decode(now, type=tuple[list[int], list[AnyCommand]])[1] == [
        CancelOrder(1, "BTCUSDT", 5, None, "c1")]
