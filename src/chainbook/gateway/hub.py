"""WebSocket fan-out: who listens to what, and one bounded outgoing queue per connection.

Market data calls ``publish(stream, payload)`` and account views ``publish_user(account,
payload)`` synchronously on the event-loop thread. Each call encodes the payload to JSON
once; every framing (raw, combined ``{"stream","data"}``, ws-api
``{"subscriptionId","event"}``) is spliced around those bytes, at most once per call.
A connection with a direct writer (``gateway.wsdirect``: uvicorn's sansio protocol, ready
to send) whose queue is empty gets the frame written to its transport at once, framed as
WebSocket bytes once per call and shared by every such subscriber: no task switch and no
per-subscriber framing. Otherwise frames go into the connection's bounded queue without
waiting and its writer task (``Conn.pump``) sends them in order, so order is kept either
way.

A connection whose queue is full is a slow consumer: it is detached from every stream at
once, its queued frames are dropped and its session closes it with 1008. Nobody ever
waits for it, so a client that stops reading cannot slow the core or the other clients.
Not thread-safe: every method runs on the event loop that serves the sockets.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any, NamedTuple

import msgspec

from chainbook.gateway.wsdirect import DirectWriter, text_frame

SLOW_CONSUMER = 1008  # close code: policy violation
GOING_AWAY = 1001  # close code: server shutting down

_encode = msgspec.json.Encoder().encode


@dataclass
class HubStats:
    """Counters for metrics; only ever increase."""

    frames_sent: int = 0  # frames handed to a socket (directly or by the writers)
    frames_direct: int = 0  # of which written at once by publish (no queue, no task)
    frames_queued: int = 0  # frames accepted into a queue
    slow_dropped: int = 0  # connections closed because their queue was full
    connections_opened: int = 0
    publishes: int = 0  # publish calls that reached at least one subscriber
    publish_ns: int = 0  # total time inside those calls (framing + direct writes)
    publish_ns_max: int = 0


class Conn:
    """The outgoing state of one WebSocket connection.

    ``streams`` are the market streams it listens to; ``user_subs`` maps a ws-api
    subscription id to its account (the key ``None`` is a legacy listenKey stream, framed
    raw). Frames wait in a deque of at most ``limit`` entries until ``pump`` sends them.
    Once ``finish`` has been called (``close_code`` set) it accepts nothing more."""

    def __init__(self, cid: int, limit: int, combined: bool, stats: HubStats) -> None:
        self.id = cid
        self.combined = combined
        self.streams: set[str] = set()
        self.user_subs: dict[int | None, int] = {}
        self.user_grants: dict[int | None, Grant] = {}  # what keeps each one allowed
        self.next_sub_id = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self._limit = limit
        self._stats = stats
        self._queue: deque[str] = deque()
        self._ready = asyncio.Event()
        self._finished = asyncio.Event()
        self.direct: DirectWriter | None = None  # set once the socket is accepted
        self._sending = False  # the writer task is inside an ASGI send

    def __repr__(self) -> str:
        return f"Conn({self.id}, streams={len(self.streams)}, queued={len(self._queue)})"

    @property
    def queued(self) -> int:
        return len(self._queue)

    def offer(self, frame: str, wire: bytes | None = None) -> bool:
        """Send ``frame`` now through the direct writer if it is idle and ready (``wire``:
        its pre-built WebSocket frame, if the caller has one), else queue it without
        waiting; False if the queue is full or the connection is closing. O(1)."""
        if self.close_code is not None:
            return False
        direct = self.direct
        if direct is not None and not self._queue and not self._sending and direct.ready():
            direct.write(wire if wire is not None else text_frame(frame.encode()))
            self._stats.frames_sent += 1
            self._stats.frames_direct += 1
            return True
        if len(self._queue) >= self._limit:
            return False
        self._queue.append(frame)
        self._stats.frames_queued += 1
        self._ready.set()
        return True

    def finish(self, code: int, reason: str) -> None:
        """Stop accepting frames, drop the queued ones and ask the session to close."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        self._queue.clear()
        self._ready.set()
        self._finished.set()

    async def wait_finished(self) -> None:
        """Return once ``finish`` has been called."""
        await self._finished.wait()

    async def pump(self, send: Callable[[str], Awaitable[Any]]) -> None:
        """Send queued frames in order until ``finish`` is called (the writer task): all
        of them in one write when the direct writer is ready, else one ``send`` each."""
        queue = self._queue
        while self.close_code is None:
            await self._ready.wait()
            self._ready.clear()
            while queue and self.close_code is None:
                direct = self.direct
                if direct is not None and direct.ready():
                    n = len(queue)
                    direct.write(b"".join(text_frame(f.encode()) for f in queue))
                    queue.clear()
                    self._stats.frames_sent += n
                    continue
                self._sending = True
                try:
                    await send(queue.popleft())
                finally:
                    self._sending = False
                self._stats.frames_sent += 1


UserSub = tuple[Conn, int | None]  # (connection, ws-api subscription id or None = raw)


class Grant(NamedTuple):
    """Why a user-data subscription may go on: ``valid()`` is checked every second
    (``end_revoked_users``); ``listen_key`` names the legacy stream's key, None for ws-api."""

    valid: Callable[[], bool]
    listen_key: str | None = None


class Hub:
    """Subscriptions and fan-out; implements ``Publisher`` and ``UserSink``."""

    def __init__(self, max_queue: int = 1000, max_streams: int = 1024) -> None:
        if max_queue < 1 or max_streams < 1:
            raise ValueError("max_queue and max_streams must be positive")
        self.max_queue = max_queue
        self.max_streams = max_streams  # per connection
        self.stats = HubStats()
        self._conns: set[Conn] = set()
        self._streams: dict[str, set[Conn]] = {}
        self._users: dict[int, set[UserSub]] = {}

    # --- connections ---------------------------------------------------------------

    def open(self, combined: bool = False) -> Conn:
        """Register a new connection; ``combined`` wraps stream frames with their name."""
        self.stats.connections_opened += 1
        conn = Conn(self.stats.connections_opened, self.max_queue, combined, self.stats)
        self._conns.add(conn)
        return conn

    def detach(self, conn: Conn) -> None:
        """Forget ``conn`` everywhere (it disconnected or is being closed). O(its subs)."""
        self._conns.discard(conn)
        for stream in conn.streams:
            subs = self._streams.get(stream)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self._streams[stream]
        conn.streams.clear()
        for sub_id in list(conn.user_subs):
            self.unsubscribe_user(conn, sub_id)

    @property
    def connections(self) -> int:
        return len(self._conns)

    def close_all(self, code: int = GOING_AWAY, reason: str = "server shutting down") -> None:
        """Ask every session to close (server shutdown)."""
        for conn in list(self._conns):
            self.detach(conn)
            conn.finish(code, reason)

    # --- market streams ------------------------------------------------------------

    def subscribe(self, conn: Conn, stream: str) -> bool:
        """Add ``stream`` to ``conn``; False if that would exceed ``max_streams``."""
        if stream in conn.streams:
            return True
        if len(conn.streams) >= self.max_streams:
            return False
        conn.streams.add(stream)
        self._streams.setdefault(stream, set()).add(conn)
        return True

    def unsubscribe(self, conn: Conn, stream: str) -> None:
        """Remove ``stream`` from ``conn`` (no-op if it was not subscribed)."""
        conn.streams.discard(stream)
        subs = self._streams.get(stream)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self._streams[stream]

    def wants(self, stream: str) -> bool:
        """True if some connection listens to ``stream``."""
        return stream in self._streams

    def publish(self, stream: str, payload: Any) -> None:
        """Queue ``payload`` to every subscriber of ``stream``; never blocks. O(subscribers)."""
        subs = self._streams.get(stream)
        if not subs:
            return
        t0 = perf_counter_ns()
        raw = _encode(payload)
        plain: str | None = None
        combined: str | None = None
        plain_wire: bytes | None = None
        combined_wire: bytes | None = None
        slow: list[Conn] = []
        for conn in subs:
            if conn.combined:
                if combined is None:
                    combined = _combined(stream, raw)
                    combined_wire = text_frame(combined.encode())
                frame, wire = combined, combined_wire
            else:
                if plain is None:
                    plain = raw.decode()
                    plain_wire = text_frame(raw)
                frame, wire = plain, plain_wire
            if not conn.offer(frame, wire):
                slow.append(conn)
        for conn in slow:
            self.drop_slow(conn)
        took = perf_counter_ns() - t0
        stats = self.stats
        stats.publishes += 1
        stats.publish_ns += took
        if took > stats.publish_ns_max:
            stats.publish_ns_max = took

    def send_stream(self, conn: Conn, stream: str, payload: Any) -> None:
        """Queue one ``stream`` payload to ``conn`` only (a snapshot after subscribing)."""
        raw = _encode(payload)
        self.send_frame(conn, _combined(stream, raw) if conn.combined else raw.decode())

    # --- user data -----------------------------------------------------------------

    def subscribe_user(self, conn: Conn, account: int, wrapped: bool,
                       grant: Grant | None = None) -> int | None:
        """Route ``account``'s events to ``conn``; return the new subscription id
        (``wrapped``: ws-api framing) or None (legacy listenKey, raw framing).  With a
        ``grant``, the subscription ends when it no longer holds (``end_revoked_users``)."""
        sub_id: int | None = None
        if wrapped:
            sub_id = conn.next_sub_id
            conn.next_sub_id += 1
        conn.user_subs[sub_id] = account
        if grant is not None:
            conn.user_grants[sub_id] = grant
        self._users.setdefault(account, set()).add((conn, sub_id))
        return sub_id

    def unsubscribe_user(self, conn: Conn, sub_id: int | None) -> bool:
        """Stop subscription ``sub_id`` of ``conn``; False if it did not exist."""
        account = conn.user_subs.pop(sub_id, None)
        conn.user_grants.pop(sub_id, None)
        if account is None:
            return False
        subs = self._users.get(account)
        if subs is not None:
            subs.discard((conn, sub_id))
            if not subs:
                del self._users[account]
        return True

    def end_revoked_users(self, now_ms: int) -> int:
        """End every user-data subscription whose grant no longer holds (a listenKey
        deleted or expired, an API key revoked): the client gets Binance's closing event
        (``listenKeyExpired`` on a listenKey stream, ``eventStreamTerminated`` on ws-api)
        and nothing of the account after it; the connection stays open.  Returns how many
        ended.  O(user-data subscriptions)."""
        ended = [(conn, sub_id, grant) for subs in self._users.values()
                 for conn, sub_id in subs
                 if (grant := conn.user_grants.get(sub_id)) is not None and not grant.valid()]
        for conn, sub_id, grant in ended:
            if sub_id is None:
                self.reply(conn, {"e": "listenKeyExpired", "E": now_ms,
                                  "listenKey": grant.listen_key})
            else:
                self.reply(conn, {"subscriptionId": sub_id,
                                  "event": {"e": "eventStreamTerminated", "E": now_ms}})
            self.unsubscribe_user(conn, sub_id)
        return len(ended)

    def wants_user(self, account: int) -> bool:
        """True if some connection listens to ``account``'s user data."""
        return account in self._users

    def publish_user(self, account: int, payload: Any) -> None:
        """Queue a user-data event to every connection of ``account``; never blocks."""
        subs = self._users.get(account)
        if not subs:
            return
        raw = _encode(payload).decode()
        slow: list[Conn] = []
        for conn, sub_id in subs:
            frame = raw if sub_id is None else f'{{"subscriptionId":{sub_id},"event":{raw}}}'
            if not conn.offer(frame):
                slow.append(conn)
        for conn in slow:
            self.drop_slow(conn)

    # --- replies and slow consumers ------------------------------------------------

    def reply(self, conn: Conn, message: Any) -> None:
        """Queue a protocol reply (JSON-encoded ``message``) to ``conn``."""
        self.send_frame(conn, _encode(message).decode())

    def send_frame(self, conn: Conn, frame: str) -> None:
        """Queue ``frame`` to ``conn``; close it as a slow consumer if its queue is full."""
        if not conn.offer(frame) and conn.close_code is None:
            self.drop_slow(conn)

    def drop_slow(self, conn: Conn) -> None:
        """Detach ``conn`` and have its session close it with 1008."""
        if conn.close_code is not None:
            return
        self.stats.slow_dropped += 1
        self.detach(conn)
        conn.finish(SLOW_CONSUMER, "slow consumer")


def _combined(stream: str, raw: bytes) -> str:
    """The combined-stream framing around an already encoded payload."""
    return (b'{"stream":' + _encode(stream) + b',"data":' + raw + b"}").decode()
