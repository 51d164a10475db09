"""Hot tick stream: binary datagrams over UDP multicast, with a unicast gap-fill path.

``TickSender.on_commit(batch)`` runs on the core thread after each commit: one TRADE
datagram per trade and one BBO datagram per command that changed a symbol's best bid or
ask, each with the next sequence number, kept in a ring of the last ``history`` datagrams.
A thread answers RESEND_REQUESTs on ``resend_address`` by unicast, from the ring, or with
NOT_AVAILABLE for what is gone. ``TickListener``/``listen`` join the group, print a line
per datagram, detect gaps by sequence and ask for them. Format: docs/ticks.md and ticks.py.

``group`` may also be a unicast address (no group membership then), for hosts whose
loopback refuses multicast.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from chainbook.domain.events import BookLevelChanged, Trade
from chainbook.marketdata import ticks
from chainbook.marketdata.depth import DepthBook
from chainbook.service.applied import Applied

log = logging.getLogger(__name__)

GROUP = "239.255.42.1"
PORT = 31337


def _is_multicast(addr: str) -> bool:
    return ipaddress.ip_address(addr).is_multicast


class TickSender:
    """Publishes ticks from committed batches; serves re-sends from a ring."""

    def __init__(self, group: str = GROUP, port: int = PORT, resend_port: int = 0,
                 ttl: int = 1, interface: str = "127.0.0.1", history: int = 65536) -> None:
        if history < 1:
            raise ValueError("history must hold at least one datagram")
        self.dest = (group, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # the core thread sends: a full send buffer must fail the sendto (counted in
        # send_errors; receivers fill the gap by re-send), never make the core wait
        self.sock.setblocking(False)
        if _is_multicast(group):
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                 socket.inet_aton(interface))
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        self.seq = 0  # last sequence number used (written by the core thread only)
        self.ring: list[bytes | None] = [None] * history
        self.books: dict[str, DepthBook] = {}
        self.names: dict[str, bytes] = {}
        self.drop: Callable[[int], bool] | None = None  # test hook: True = do not send
        self.send_errors = 0
        self.resent = 0
        self._resend = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._resend.bind((interface, resend_port))
        self._resend.settimeout(0.2)
        self.resend_address: tuple[str, int] = self._resend.getsockname()
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="tick-resend", daemon=True)
        self._thread.start()

    # --- the core thread -------------------------------------------------------------

    def on_commit(self, batch: list[Applied]) -> None:
        """Send the ticks of a committed batch (core thread: pack + sendto, no waiting)."""
        for ap in batch:
            try:
                self._apply(ap, True)
            except Exception:  # never raise into the core thread
                log.exception("tick sender could not send seq %d", ap.seq)

    def replay(self, batch: list[Applied]) -> None:
        """Follow the book through history without sending (start-up replay)."""
        for ap in batch:
            self._apply(ap, False)

    def _apply(self, ap: Applied, send: bool) -> None:
        tops: dict[str, tuple[int, int, int, int]] = {}
        for ev in ap.events:
            if type(ev) is Trade:
                if send:
                    seq = self.seq + 1
                    self._send(seq, ticks.pack_trade(seq, ap.ts, self._name(ev.symbol),
                                                     ev.trade_id, ev.price, ev.qty,
                                                     ev.taker_side))
            elif type(ev) is BookLevelChanged:
                book = self.books.get(ev.symbol)
                if book is None:
                    book = self.books[ev.symbol] = DepthBook()
                if ev.symbol not in tops:
                    tops[ev.symbol] = book.top()
                book.apply(ev.side, ev.price, ev.qty, False)
        if send:
            for name, before in tops.items():
                top = self.books[name].top()
                if top != before:
                    seq = self.seq + 1
                    self._send(seq, ticks.pack_bbo(seq, ap.ts, self._name(name), top))

    def _name(self, symbol: str) -> bytes:
        raw = self.names.get(symbol)
        if raw is None:
            raw = self.names[symbol] = ticks.encode_symbol(symbol)
        return raw

    def _send(self, seq: int, data: bytes) -> None:
        """Keep datagram ``seq`` (= self.seq + 1) in the ring, then multicast it."""
        self.ring[seq % len(self.ring)] = data
        self.seq = seq
        if self.drop is not None and self.drop(seq):
            return
        try:
            self.sock.sendto(data, self.dest)
        except OSError:  # a full socket buffer must not stop the core; gap fill covers it
            self.send_errors += 1

    # --- the resend thread -----------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopping:
            try:
                data, addr = self._resend.recvfrom(64)
            except TimeoutError:
                continue
            except OSError:
                break
            try:
                from_seq, count = ticks.unpack_request(data)
            except ticks.FormatError:
                continue
            for reply in self.resend_replies(from_seq, count):
                try:
                    self._resend.sendto(reply, addr)
                except OSError:
                    break

    def resend_replies(self, from_seq: int, count: int) -> list[bytes]:
        """The datagrams answering a request: the held ones, NOT_AVAILABLE for the rest
        (one per missing run). At most ``MAX_RESEND`` datagrams are considered."""
        newest = self.seq
        size = len(self.ring)
        oldest = max(1, newest - size + 1) if newest else 0
        out: list[bytes] = []
        gap_from = 0
        count = max(0, min(count, ticks.MAX_RESEND))
        for s in range(from_seq, from_seq + count):
            data = self.ring[s % size] if 1 <= s <= newest else None
            if data is not None and ticks.seq_of(data) == s:
                if gap_from:
                    out.append(ticks.pack_not_available(gap_from, s - gap_from, oldest, newest))
                    gap_from = 0
                out.append(data)
                self.resent += 1
            elif not gap_from:
                gap_from = s
        if gap_from:
            out.append(ticks.pack_not_available(gap_from, from_seq + count - gap_from,
                                                oldest, newest))
        return out

    def close(self) -> None:
        """Stop the resend thread and close the sockets."""
        self._stopping = True
        self._thread.join(timeout=2)
        self._resend.close()
        self.sock.close()


class TickListener:
    """Receives the stream, prints a line per datagram and fills gaps via ``resend_addr``.

    Gaps are asked for in runs of at most ``ROUND`` datagrams at a time, the next round
    once the previous one has arrived (or after ``RETRY_S``): a gap of thousands asked at
    once would come back faster than a UDP receive buffer holds.  A datagram with a lower
    sequence number than expected but a newer timestamp than any seen is a restarted
    sender (sequence numbers start again at 1), not a duplicate: the listener follows it."""

    RETRY_S = 0.3
    ATTEMPTS = 3
    ROUND = 256  # datagrams asked for and not yet received, at most
    RCVBUF = 4 << 20

    def __init__(self, group: str = GROUP, port: int = PORT,
                 resend_addr: tuple[str, int] | None = None, out: TextIO | None = None,
                 interface: str = "127.0.0.1", from_seq: int | None = None) -> None:
        """``from_seq``: also fetch what was sent before joining, from that sequence
        number (None: start with the first datagram received)."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((group, port))
        # as large as the kernel allows (net.core.rmem_max caps it)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RCVBUF)
        if _is_multicast(group):
            mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(interface))
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        self.port: int = self.sock.getsockname()[1]
        self.req = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.req.bind((interface, 0))
        self.resend_addr = resend_addr
        self.out = out
        self.req.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RCVBUF)
        self.expected: int | None = from_seq  # next sequence number due
        # seq -> (last asked, attempts), in increasing seq (gaps are found in order)
        self.missing: dict[int, tuple[float, int]] = {}
        self.in_flight = 0  # asked in the current round and not received
        self.newest_ts = 0  # of any stream datagram received
        self.restarts = 0
        self.received: list[ticks.Tick] = []
        self.lost: list[int] = []  # gaps the sender could not fill
        self.unavailable: list[ticks.NotAvailable] = []

    def run(self, count: int | None = None, timeout: float | None = None) -> list[ticks.Tick]:
        """Receive until ``count`` stream datagrams arrived (None: forever) or nothing came
        for ``timeout`` seconds; return the datagrams accepted, in arrival order."""
        idle_since = time.monotonic()
        while count is None or len(self.received) < count:
            ready, _, _ = select.select([self.sock, self.req], [], [], 0.1)
            for s in ready:
                self._handle(s.recv(2048))
                idle_since = time.monotonic()
            self._pump()
            if not ready and timeout is not None and time.monotonic() - idle_since > timeout:
                break
        return self.received

    def _handle(self, data: bytes) -> None:
        try:
            tick = ticks.decode(data)
        except ticks.FormatError as e:
            self._print(f"bad datagram: {e}")
            return
        if isinstance(tick, ticks.NotAvailable):
            self.unavailable.append(tick)
            for s in range(tick.from_seq, tick.from_seq + tick.count):
                if self.missing.pop(s, None) is not None:
                    self.lost.append(s)
                    self.in_flight -= 1
            self._print(ticks.describe(tick))
            self._pump()
            return
        seq, resent = tick.seq, False
        if self.expected is not None and seq < self.expected and seq not in self.missing \
                and tick.ts > self.newest_ts:
            self.restarts += 1  # a restarted sender: its sequence starts again
            self._print(f"sender restarted: sequence reset at {seq} (was {self.expected})")
            self.missing.clear()
            self.in_flight = 0
            self.expected = None
        if self.expected is None or seq == self.expected:
            self.expected = seq + 1
        elif seq > self.expected:
            gap = range(self.expected, seq)
            for s in gap:
                self.missing[s] = (0.0, 0)
            self._print(f"gap {gap.start}..{gap.stop - 1} detected")
            self.expected = seq + 1
            self._pump()
        elif self.missing.pop(seq, None) is not None:
            resent = True
            self.in_flight -= 1
            if self.in_flight <= 0:
                self._pump()
        else:
            return  # a duplicate
        self.newest_ts = max(self.newest_ts, tick.ts)
        self.received.append(tick)
        self._print(ticks.describe(tick, resent))

    def _ask(self, from_seq: int, count: int) -> None:
        if self.resend_addr is not None:
            self.req.sendto(ticks.pack_request(from_seq, count), self.resend_addr)

    def _pump(self) -> None:
        """Start the next round of requests when the last one is done or stale: the
        oldest missing datagrams not asked within RETRY_S, at most ROUND of them, in
        contiguous runs; one given up after ATTEMPTS asks is lost."""
        if not self.missing:
            self.in_flight = 0
            return
        now = time.monotonic()
        if self.in_flight > 0 and now - next(iter(self.missing.values()))[0] < self.RETRY_S:
            return  # the round's oldest request is still fresh
        runs: list[list[int]] = []
        budget, gone = self.ROUND, []
        for s, (asked, attempts) in self.missing.items():
            if budget == 0:
                break
            if attempts and now - asked < self.RETRY_S:
                continue
            if attempts >= self.ATTEMPTS or self.resend_addr is None:
                gone.append(s)
                continue
            if runs and runs[-1][-1] == s - 1:
                runs[-1].append(s)
            else:
                runs.append([s])
            budget -= 1
        for s in gone:
            del self.missing[s]
            self.lost.append(s)
            self._print(f"gap {s} lost")
        self.in_flight = 0
        for run in runs:
            for s in run:
                self.missing[s] = (now, self.missing[s][1] + 1)
            self.in_flight += len(run)
            self._ask(run[0], len(run))

    def _print(self, line: str) -> None:
        if self.out is not None:
            print(line, file=self.out, flush=True)

    def close(self) -> None:
        self.sock.close()
        self.req.close()


def listen(group: str = GROUP, port: int = PORT, resend_addr: tuple[str, int] | None = None,
           count: int | None = None, out: TextIO = sys.stdout,
           timeout: float | None = None, from_seq: int | None = None) -> list[ticks.Tick]:
    """Join ``group``:``port`` on loopback and print one line per datagram, filling gaps
    through ``resend_addr``; return after ``count`` datagrams (or ``timeout`` s idle)."""
    listener = TickListener(group, port, resend_addr, out, from_seq=from_seq)
    try:
        return listener.run(count, timeout)
    finally:
        listener.close()
