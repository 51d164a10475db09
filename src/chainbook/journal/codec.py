"""Record framing for the command log and the event journal: bytes <-> records, no I/O.

A log file is a sequence of frames.  One frame carries a run of ``count`` entries with
contiguous sequence numbers starting at ``first_seq`` (a group commit writes one frame per
batch, so the common case pays one header, one CRC and one msgpack call per batch)::

    offset size field
         0    4 crc        CRC-32 (zlib.crc32, IEEE polynomial) of bytes 4 .. end of payload
         4    2 magic      0xCB1A, to tell a frame from zeros or garbage
         6    1 type       RecordType: COMMAND or EVENTS
         7    1 version    FORMAT_VERSION of the payload
         8    4 length     payload bytes
        12    4 count      entries in the frame (>= 1)
        16    8 first_seq  seq of the first entry; entry i has seq first_seq + i
        24    . payload    msgpack [ts_list, items] (msgspec), len(ts_list) == len(items) == count

``items`` are ``AnyCommand`` values for COMMAND frames and lists of ``AnyEvent`` for
EVENTS frames (the events one command produced).  A COMMAND frame with one entry is the
plain "COMMAND (seq, ts, command)" record; nothing in the format distinguishes it.

``decode_buffer`` returns the good frames and, if it had to stop early, exactly why and
where: ``TornTail`` when the buffer ends inside a frame (a write that did not finish),
``CorruptRecord`` when a complete frame fails its checks.  It never returns a frame past
the first bad one.  zlib's CRC-32 is used rather than CRC-32C because it ships with
Python and runs at memory speed; it detects every burst error up to 32 bits.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

import msgspec

from chainbook.domain.commands import AnyCommand
from chainbook.domain.events import AnyEvent

MAGIC = 0xCB1A
FORMAT_VERSION = 1
HEADER = struct.Struct("<IHBBIIQ")
HEADER_SIZE = HEADER.size  # 24
MAX_PAYLOAD = 1 << 30  # a larger length field is corruption, not a record
_MAGIC_BYTES = struct.pack("<H", MAGIC)
_CRC = struct.Struct("<I")


class RecordType(IntEnum):
    """What a frame's entries are."""

    COMMAND = 1
    EVENTS = 2


class Record(NamedTuple):
    """One decoded frame: entries ``first_seq .. first_seq + len(items) - 1``."""

    type: RecordType
    first_seq: int
    ts: list[int]
    items: list[Any]
    offset: int  # where the frame starts in the buffer
    end: int  # offset just past the frame

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.items) - 1


class FrameInfo(NamedTuple):
    """A frame whose header and CRC checked out, payload not decoded."""

    type: RecordType
    first_seq: int
    n: int  # entries
    offset: int
    end: int

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.n - 1


@dataclass(frozen=True)
class TornTail:
    """The buffer ends inside a frame at ``offset``: an unfinished write."""

    offset: int
    reason: str
    kind: str = "torn"


@dataclass(frozen=True)
class CorruptRecord:
    """The complete frame at ``offset`` failed a check (CRC, magic, type, payload)."""

    offset: int
    reason: str
    kind: str = "corrupt"


Stop = TornTail | CorruptRecord

_encoder = msgspec.msgpack.Encoder()
_decoders: dict[RecordType, msgspec.msgpack.Decoder[Any]] = {
    RecordType.COMMAND: msgspec.msgpack.Decoder(tuple[list[int], list[AnyCommand]]),
    RecordType.EVENTS: msgspec.msgpack.Decoder(tuple[list[int], list[list[AnyEvent]]]),
}


def encode_frame(rtype: RecordType, first_seq: int, ts: list[int], items: list[Any],
                 out: bytearray | None = None) -> bytearray:
    """Append one frame holding ``items`` (seqs from ``first_seq``) to ``out``; return it.

    O(payload).  Raises ValueError for an empty run or mismatched ``ts``/``items``."""
    count = len(items)
    if count == 0 or len(ts) != count:
        raise ValueError(f"a frame needs 1+ items and one ts each (got {count}, {len(ts)})")
    if first_seq < 1:
        raise ValueError(f"seq starts at 1, got {first_seq}")
    buf = bytearray() if out is None else out
    start = len(buf)
    _encoder.encode_into((ts, items), buf, start + HEADER_SIZE)
    length = len(buf) - start - HEADER_SIZE
    if length > MAX_PAYLOAD:
        raise ValueError(f"frame payload of {length} bytes is over {MAX_PAYLOAD}")
    HEADER.pack_into(buf, start, 0, MAGIC, int(rtype), FORMAT_VERSION, length, count,
                     first_seq)
    _CRC.pack_into(buf, start, zlib.crc32(memoryview(buf)[start + 4:]))
    return buf


def _check_frame(mv: memoryview, pos: int, end: int) -> FrameInfo | Stop:
    """Validate the frame at ``pos`` (header, bounds, CRC) without decoding its payload."""
    if end - pos < HEADER_SIZE:
        return TornTail(pos, f"{end - pos} bytes left, less than a {HEADER_SIZE}-byte header")
    crc, magic, rtype, version, length, count, first_seq = HEADER.unpack_from(mv, pos)
    if length > MAX_PAYLOAD:
        return CorruptRecord(pos, f"length field {length} is impossible")
    stop = pos + HEADER_SIZE + length
    if stop > end:
        if magic != MAGIC:
            return CorruptRecord(pos, f"bad magic 0x{magic:04x} (and frame overruns the end)")
        return TornTail(pos, f"frame needs {HEADER_SIZE + length} bytes, {end - pos} written")
    if zlib.crc32(mv[pos + 4:stop]) != crc:
        return CorruptRecord(pos, "CRC mismatch")
    if magic != MAGIC:
        return CorruptRecord(pos, f"bad magic 0x{magic:04x}")
    if rtype not in (1, 2):
        return CorruptRecord(pos, f"unknown record type {rtype}")
    if version != FORMAT_VERSION:
        return CorruptRecord(pos, f"format version {version}, this build reads {FORMAT_VERSION}")
    if count < 1 or first_seq < 1:
        return CorruptRecord(pos, f"bad count {count} or first seq {first_seq}")
    return FrameInfo(RecordType(rtype), first_seq, count, pos, stop)


def scan_frames(buf: bytes | bytearray | memoryview, start: int = 0,
                end: int | None = None) -> tuple[list[FrameInfo], Stop | None]:
    """Check every frame's header and CRC from ``start``; stop at the first bad one.

    Return (good frames in order, why it stopped or None at a clean end). O(bytes)."""
    mv = memoryview(buf)
    stop_at = len(mv) if end is None else end
    frames: list[FrameInfo] = []
    pos = start
    while pos < stop_at:
        info = _check_frame(mv, pos, stop_at)
        if not isinstance(info, FrameInfo):
            return frames, info
        frames.append(info)
        pos = info.end
    return frames, None


def decode_payload(buf: bytes | bytearray | memoryview, info: FrameInfo) -> Record | Stop:
    """Decode the payload of a frame that ``scan_frames`` accepted."""
    mv = memoryview(buf)
    try:
        ts, items = _decoders[info.type].decode(mv[info.offset + HEADER_SIZE:info.end])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return CorruptRecord(info.offset, f"payload does not decode: {exc}")
    if len(ts) != info.n or len(items) != info.n:
        return CorruptRecord(info.offset, f"payload holds {len(items)} items, header says "
                                          f"{info.n}")
    return Record(info.type, info.first_seq, ts, items, info.offset, info.end)


def decode_buffer(buf: bytes | bytearray | memoryview, start: int = 0,
                  end: int | None = None) -> tuple[list[Record], Stop | None]:
    """Decode every frame from ``start``; stop at the first torn or corrupt one.

    Return (good records in order, why it stopped or None at a clean end). Never returns
    a record at or after the stop offset. O(bytes)."""
    mv = memoryview(buf)
    stop_at = len(mv) if end is None else end
    records: list[Record] = []
    pos = start
    while pos < stop_at:
        info = _check_frame(mv, pos, stop_at)
        if not isinstance(info, FrameInfo):
            return records, info
        rec = decode_payload(mv, info)
        if not isinstance(rec, Record):
            return records, rec
        records.append(rec)
        pos = info.end
    return records, None


def find_valid_frame_after(buf: bytes | bytearray | memoryview, offset: int,
                           end: int | None = None) -> int | None:
    """Offset of the first CRC-valid frame starting after ``offset``, or None.

    Tells a damaged record in the middle of a log (valid frames follow) from a damaged
    tail (nothing valid follows). O(bytes) plus one CRC per magic-number match."""
    mv = memoryview(buf)
    data = bytes(mv) if not isinstance(buf, bytes) else buf
    stop_at = len(mv) if end is None else end
    pos = offset + 1
    while True:
        hit = data.find(_MAGIC_BYTES, pos + 4, stop_at)
        if hit < 0:
            return None
        cand = hit - 4
        if isinstance(_check_frame(mv, cand, stop_at), FrameInfo):
            return cand
        pos = cand + 1
