"""The gateway's HTTP/1.1 protocol: uvicorn's, with the REST endpoints answered in place.

``fast_protocol(table)`` subclasses uvicorn's httptools protocol (uvicorn is pinned).  A
request whose method and exact path are in ``table`` (the REST endpoints, e.g. ``POST
/api/v3/order``) is not turned into an ASGI scope, a ``RequestResponseCycle`` and
Starlette ``Request``/``Response`` objects: a small ``_RestCycle`` collects the body,
calls the endpoint's transport-neutral ``Endpoint.handle`` and writes the status line,
headers and JSON body in one ``transport.write``.  That saves ~40 % of the event loop's
work per order request (docs/gateway-performance.md, Session 6).

Everything else takes uvicorn's own path unchanged: other paths (WebSocket upgrades,
``/openapi.json``, 404s, the capital endpoints), HEAD, a percent-encoded path or a URL
fragment, ``Expect: 100-continue``, a ``root_path``, a concurrency limit, and every
request when proxy headers are trusted (uvicorn rewrites the client address in an ASGI
middleware this path would skip).  The cycle keeps the parts of uvicorn's contract the
protocol relies on (``response_complete``, ``keep_alive``, ``disconnected``,
``message_event``, ``run_asgi``), so keep-alive, pipelining (a request waits for the one
before it), flow control, graceful shutdown and the task bookkeeping are uvicorn's.
``tests/unit/gateway/test_fasthttp.py`` sends the same requests through both paths and
compares status, headers and body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from chainbook.gateway import auth, errors
from chainbook.gateway.endpoint import Endpoint

log = logging.getLogger("chainbook.gateway")

FastTable = dict[tuple[bytes, bytes], Endpoint]  # (method, raw path) -> endpoint
_JSON = b"content-type: application/json\r\n"


class _RestCycle:
    """One REST request handled without ASGI; what uvicorn's protocol expects of a cycle.

    It holds the pieces of the connection it writes to, not the protocol: the protocol
    holds the cycle, and a link back would leave every closed connection to the cyclic
    garbage collector (``on_response``, a bound method, is dropped once it has run, as
    uvicorn's own cycle does)."""

    __slots__ = ("endpoint", "method", "path", "query", "api_key", "ip", "transport",
                 "flow", "default_headers", "access", "body", "too_long", "more_body",
                 "message_event", "disconnected", "keep_alive", "response_complete",
                 "on_response")

    def __init__(self, proto: HttpToolsProtocol, endpoint: Endpoint, method: str,
                 path: str, query: bytes, api_key: str | None, keep_alive: bool) -> None:
        self.endpoint = endpoint
        self.method = method
        self.path = path
        self.query = query
        self.api_key = api_key
        client = proto.client
        self.ip = client[0] if client is not None else "unknown"
        self.transport = proto.transport
        self.flow = proto.flow
        self.default_headers = proto.server_state.default_headers
        self.access = proto.access_logger if proto.access_log else None
        self.body = bytearray()
        self.too_long = False
        self.more_body = True
        self.message_event = asyncio.Event()
        self.disconnected = False
        self.keep_alive = keep_alive
        self.response_complete = False
        self.on_response: Callable[[], None] = proto.on_response_complete

    def add_body(self, chunk: bytes) -> None:
        if not self.too_long:
            self.body += chunk
            if len(self.body) > auth.MAX_BYTES:  # refused (-1101) at once, as read_body
                self.too_long = True
                self.body = bytearray()
        self.message_event.set()

    def _head(self, status: int) -> list[bytes]:
        """The status line and the server's default headers (date, server)."""
        out = [STATUS_LINE[status]]
        for name, value in self.default_headers:
            out += (name, b": ", value, b"\r\n")
        return out

    async def run_asgi(self, _app: Any) -> None:
        """Called by the protocol (now, or once the request before it is answered)."""
        written = False
        try:
            while self.more_body and not self.disconnected and not self.too_long:
                self.flow.resume_reading()
                await self.message_event.wait()
                self.message_event.clear()
            body: bytes | errors.ApiError
            if self.disconnected:
                # cut off before its body ended: answered -1100 as on Starlette's path,
                # to nobody, but its weight is charged to the address all the same
                body = errors.illegal_chars_anywhere()
            elif self.too_long:
                body = errors.too_many_params()
            else:
                body = bytes(self.body)
            status, data, headers = await self.endpoint.handle(
                self.ip, self.method, self.path, self.query, body, self.api_key)
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()
            if self.disconnected:
                return
            out = self._head(status)
            for key, text in headers.items():
                out += (key.lower().encode("latin-1"), b": ", text.encode("latin-1"), b"\r\n")
            out.append(b"content-length: %d\r\n" % len(data))
            out.append(_JSON)
            if not self.keep_alive:
                out.append(b"connection: close\r\n")
            out += (b"\r\n", data)
            if self.access is not None and self.access.isEnabledFor(logging.INFO):
                self.access.info('%s - "%s %s HTTP/1.1" %d', self.ip, self.method,
                                 self.path, status)
            written = True
            self.transport.write(b"".join(out))
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()
        except BaseException as exc:  # as uvicorn's cycle: a 500 if nothing went out yet
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("REST request %s %s failed", self.method, self.path)
            if not written and not self.disconnected and not self.transport.is_closing():
                self.transport.write(b"".join(self._head(500)) + _ERROR_500)
            self.transport.close()
        finally:
            self.on_response = _nothing


_ERROR_500 = (b"content-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\n"
              b"connection: close\r\n\r\nInternal Server Error")  # uvicorn's


def _nothing() -> None:
    return None


# Bounds on what a client may make the server hold (docs/serve.md, "HTTP limits"):
# uvicorn's protocol buffers a request line and headers without limit (and the URL by
# repeated concatenation), and waits for them and for a body without a deadline.
MAX_HEAD = 64 * 1024  # bytes of request line + headers (the parameters: 16 KiB at most)
HEAD_TIMEOUT_S = 30.0  # from a request's first byte to the end of its headers
BODY_TIMEOUT_S = 30.0  # from the end of its headers to the end of its body
SWEEP_S = 1.0  # how often the deadlines are checked
_TOO_LONG = (b'{"code":-1101,"msg":"Request line and headers are longer than '
             + str(MAX_HEAD).encode() + b' bytes."}')
_TIMED_OUT = b'{"code":-1007,"msg":"Timeout waiting for the request to be sent."}'


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with ``MAX_HEAD`` and the two deadlines: past any of
    them the client gets a JSON error (431 -1101 or 408 -1007) and the connection is
    closed, before the bytes pile up or the connection is held for ever.

    The deadlines cost a request two clock reads: each connection notes when its
    current phase (headers, body) began, and one sweeper task per server checks every
    ``SWEEP_S`` (a timer per request cost ~7 us of the event loop)."""

    _in_head = True  # reading a request line and headers (or waiting for one)
    _head_bytes = 0
    _since = 0.0  # loop time the current phase began; 0: no deadline running
    _limit = 0.0  # the current phase's deadline, seconds

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _sweeper(self.loop, self.connections)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            # counted before parsing, checked after: a read holding many complete
            # (pipelined) requests resets the count at each one's start, so only the
            # head still open at its end is measured (to within one read, <= 256 KiB)
            self._head_bytes += len(data)
            if not self._since:
                self._since, self._limit = self.loop.time(), HEAD_TIMEOUT_S
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEAD:
            self._refuse(431, _TOO_LONG)

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def overdue(self, now: float) -> bool:
        return bool(self._since) and now - self._since > self._limit

    def timed_out(self) -> None:
        self._refuse(408, _TIMED_OUT)

    def _refuse(self, status: int, body: bytes) -> None:
        self._since = 0.0
        transport = self.transport
        if transport.is_closing():
            return
        out = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            out += (name, b": ", value, b"\r\n")
        out += (_JSON, b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n",
                body)
        transport.write(b"".join(out))
        transport.close()

    def send_400_response(self, msg: str) -> None:
        """What the parser refuses (a bad request line, a duplicate Content-Length, a
        bad chunk size ...): Binance's JSON error shape, not uvicorn's plain text."""
        self._refuse(400, b'{"code":-1100,"msg":"Invalid HTTP request received."}')

    def head_done(self) -> None:
        """The headers are complete: the body's deadline starts (not for an upgrade:
        the WebSocket protocol takes the connection over)."""
        self._in_head = False
        self._head_bytes = 0
        if self.parser.should_upgrade():
            self._since = 0.0
        else:
            self._since, self._limit = self.loop.time(), BODY_TIMEOUT_S

    def message_done(self) -> None:
        """The body is complete: no deadline until the next request's first byte."""
        self._since = 0.0
        self._in_head = True

    def on_headers_complete(self) -> None:
        self.head_done()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.message_done()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._since = 0.0
        super().connection_lost(exc)


_SWEEPERS: dict[int, asyncio.Task[None]] = {}  # id(connections set) -> its sweeper


def _sweeper(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    """Make sure a task checks ``connections`` (one server's) for overdue requests."""
    key = id(connections)
    task = _SWEEPERS.get(key)
    if task is None or task.done():
        _SWEEPERS[key] = loop.create_task(_sweep(connections, key), name="http-deadlines")


async def _sweep(connections: set[Any], key: int) -> None:
    """Every ``SWEEP_S``: refuse the requests past their deadline; end with the last
    connection (the next one starts a new sweeper)."""
    loop = asyncio.get_running_loop()
    try:
        while connections:
            await asyncio.sleep(SWEEP_S)
            now = loop.time()
            for proto in [c for c in connections if isinstance(c, GuardedProtocol)]:
                if proto.overdue(now):
                    proto.timed_out()
    finally:
        _SWEEPERS.pop(key, None)


def fast_protocol(table: FastTable) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol (``GuardedProtocol``) answering ``table``'s requests
    in place."""

    class RestProtocol(GuardedProtocol):
        def on_headers_complete(self) -> None:
            self.head_done()
            parser = self.parser
            url = self.url
            q = url.find(b"?")
            raw_path = url if q < 0 else url[:q]
            method = parser.get_method()
            endpoint = table.get((method, raw_path))
            if (endpoint is None or self.expect_100_continue or self.root_path
                    or self.limit_concurrency is not None or self.config.proxy_headers
                    or b"#" in url or parser.should_upgrade()):
                HttpToolsProtocol.on_headers_complete(self)  # head_done() ran above
                return
            api_key = None
            for name, value in self.headers:
                if name == b"x-mbx-apikey":
                    api_key = value.decode("latin-1")
                    break
            cycle = _RestCycle(
                self, endpoint, method.decode("ascii"), raw_path.decode("ascii"),
                b"" if q < 0 else url[q + 1:], api_key,
                parser.get_http_version() != "1.0" and parser.should_keep_alive())
            existing = self.cycle
            self.cycle = cycle  # type: ignore[assignment]
            if existing is None or existing.response_complete:
                self._start_asgi_task(cycle, self.app)  # type: ignore[arg-type]
            else:  # pipelined: answered after the one before it, as uvicorn does
                self.flow.pause_reading()
                self.pipeline.appendleft((cycle, self.app))  # type: ignore[arg-type]

        def on_body(self, body: bytes) -> None:
            cycle = self.cycle
            if type(cycle) is _RestCycle:
                if not cycle.response_complete:
                    cycle.add_body(body)
                return
            super().on_body(body)

        def on_message_complete(self) -> None:
            cycle = self.cycle
            if type(cycle) is _RestCycle:
                self.message_done()
                if not cycle.response_complete:
                    cycle.more_body = False
                    cycle.message_event.set()
                return
            super().on_message_complete()

    return RestProtocol

