"""The binary tick format of the multicast stream (docs/ticks.md): pack and unpack.

Every datagram starts with ``magic "CB"``, ``version`` (1) and a ``type`` byte, all
big-endian. Stream datagrams (TRADE, BBO) then carry a u64 sequence number, contiguous
across the whole stream from 1, and the u64 timestamp (ns since the epoch) of the
command that produced them, then a 16-byte NUL-padded ASCII symbol name and integers
(price in ticks, quantity in lots). Control datagrams (RESEND_REQUEST, NOT_AVAILABLE) go
by unicast on the gap-fill path and carry no stream sequence number.

Pure: no sockets here (multicast.py does the I/O).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime

MAGIC = b"CB"
VERSION = 1
TRADE = 1
BBO = 2
RESEND_REQUEST = 0x10
NOT_AVAILABLE = 0x11
SYMBOL_BYTES = 16
MAX_RESEND = 1024  # datagrams served per request

PREFIX = struct.Struct("!2sBB")
TRADE_S = struct.Struct("!2sBBQQ16sQQQB")  # + trade id, price, qty, taker side (0 buy)
BBO_S = struct.Struct("!2sBBQQ16sQQQQ")  # + bid price, bid qty, ask price, ask qty
REQUEST_S = struct.Struct("!2sBBQI")  # from seq, count
NOT_AVAILABLE_S = struct.Struct("!2sBBQIQQ")  # from seq, count, oldest held, newest sent
SEQ_OFFSET = 4  # where the u64 sequence number sits in a stream datagram


class FormatError(ValueError):
    """A datagram that is not a tick of this format and version."""


@dataclass(frozen=True, slots=True)
class TradeTick:
    seq: int
    ts: int
    symbol: str
    trade_id: int
    price: int
    qty: int
    taker_side: int


@dataclass(frozen=True, slots=True)
class BboTick:
    """Top of book after a command; 0/0 for an empty side."""

    seq: int
    ts: int
    symbol: str
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int


@dataclass(frozen=True, slots=True)
class NotAvailable:
    """Reply to a resend request: ``count`` datagrams from ``from_seq`` are gone (or were
    never sent); the sender holds ``oldest..newest``."""

    from_seq: int
    count: int
    oldest: int
    newest: int


Tick = TradeTick | BboTick


def pack_trade(seq: int, ts: int, symbol: bytes, trade_id: int, price: int, qty: int,
               taker_side: int) -> bytes:
    """A TRADE datagram (``symbol`` already ASCII-encoded, at most 16 bytes)."""
    return TRADE_S.pack(MAGIC, VERSION, TRADE, seq, ts, symbol, trade_id, price, qty,
                        taker_side)


def pack_bbo(seq: int, ts: int, symbol: bytes, top: tuple[int, int, int, int]) -> bytes:
    """A BBO datagram: ``top`` is (bid, bid qty, ask, ask qty)."""
    return BBO_S.pack(MAGIC, VERSION, BBO, seq, ts, symbol, *top)


def pack_request(from_seq: int, count: int) -> bytes:
    """A RESEND_REQUEST for ``count`` datagrams from ``from_seq``."""
    return REQUEST_S.pack(MAGIC, VERSION, RESEND_REQUEST, from_seq, count)


def pack_not_available(from_seq: int, count: int, oldest: int, newest: int) -> bytes:
    return NOT_AVAILABLE_S.pack(MAGIC, VERSION, NOT_AVAILABLE, from_seq, count, oldest, newest)


def encode_symbol(symbol: str) -> bytes:
    """ASCII bytes of ``symbol``; FormatError if it does not fit the 16-byte field."""
    try:
        raw = symbol.encode("ascii")
    except UnicodeEncodeError as e:
        raise FormatError(f"symbol {symbol!r} is not ASCII") from e
    if len(raw) > SYMBOL_BYTES:
        raise FormatError(f"symbol {symbol!r} is longer than {SYMBOL_BYTES} bytes")
    return raw


def seq_of(datagram: bytes) -> int:
    """The sequence number of a stream datagram (no checks: the sender's own bytes)."""
    return int.from_bytes(datagram[SEQ_OFFSET:SEQ_OFFSET + 8], "big")


def unpack_request(data: bytes) -> tuple[int, int]:
    """``(from_seq, count)`` of a RESEND_REQUEST; FormatError otherwise."""
    if len(data) != REQUEST_S.size:
        raise FormatError("not a resend request")
    magic, version, kind, from_seq, count = REQUEST_S.unpack(data)
    if magic != MAGIC or version != VERSION or kind != RESEND_REQUEST:
        raise FormatError("not a resend request")
    return from_seq, count


def decode(data: bytes) -> Tick | NotAvailable:
    """Decode a TRADE, BBO or NOT_AVAILABLE datagram; FormatError for anything else."""
    if len(data) < PREFIX.size:
        raise FormatError("datagram too short")
    magic, version, kind = PREFIX.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise FormatError(f"bad magic or version {magic!r}/{version}")
    try:
        if kind == TRADE and len(data) == TRADE_S.size:
            _, _, _, seq, ts, sym, tid, price, qty, side = TRADE_S.unpack(data)
            return TradeTick(seq, ts, sym.rstrip(b"\0").decode("ascii"), tid, price, qty, side)
        if kind == BBO and len(data) == BBO_S.size:
            _, _, _, seq, ts, sym, bid, bq, ask, aq = BBO_S.unpack(data)
            return BboTick(seq, ts, sym.rstrip(b"\0").decode("ascii"), bid, bq, ask, aq)
        if kind == NOT_AVAILABLE and len(data) == NOT_AVAILABLE_S.size:
            return NotAvailable(*NOT_AVAILABLE_S.unpack(data)[3:])
    except UnicodeDecodeError as e:
        raise FormatError("symbol is not ASCII") from e
    raise FormatError(f"unknown datagram type {kind} or length {len(data)}")


def describe(tick: Tick | NotAvailable, resent: bool = False) -> str:
    """One human line for a datagram."""
    if isinstance(tick, NotAvailable):
        last = tick.from_seq + tick.count - 1
        return (f"gap {tick.from_seq}..{last} not available "
                f"(sender holds {tick.oldest}..{tick.newest})")
    when = datetime.fromtimestamp(tick.ts / 1e9, tz=UTC).strftime("%H:%M:%S.%f")
    tail = " (resent)" if resent else ""
    if isinstance(tick, TradeTick):
        side = "BUY" if tick.taker_side == 0 else "SELL"
        return (f"#{tick.seq} {when} {tick.symbol} TRADE id={tick.trade_id} "
                f"price={tick.price} qty={tick.qty} taker={side}{tail}")
    return (f"#{tick.seq} {when} {tick.symbol} BBO bid={tick.bid}x{tick.bid_qty} "
            f"ask={tick.ask}x{tick.ask_qty}{tail}")
