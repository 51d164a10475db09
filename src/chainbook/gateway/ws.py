"""WebSocket routes: market streams, combined streams, legacy listenKey and the ws-api.

Connection styles (spec §6.1), all on one host:

* ``/ws`` and ``/ws/<n>`` (ccxt's ``0``, ``1``...): raw frames, subscribe later;
* ``/ws/<stream>`` (a tail with ``@`` or starting with ``!``): raw frames of that stream;
* ``/ws/<listenKey>``: the account's user-data events, raw (ccxt <= 4.5.5);
* ``/stream?streams=a/b/c``: frames wrapped as ``{"stream": name, "data": payload}``;
* ``/ws-api/v3``: the WebSocket API (``gateway.ws_api``).

Every market connection speaks the subscribe protocol (§6.2): SUBSCRIBE, UNSUBSCRIBE,
LIST_SUBSCRIPTIONS and SET_PROPERTY/GET_PROPERTY ``combined``; replies echo ``id`` with
its type. A subscription is followed by
``market.stream_snapshot(stream)`` when there is one. Keepalive: uvicorn pings every
client every ``ws_ping_interval`` (20 s by default, like Binance) and answers client pings
itself, so the handlers here never see control frames.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import anyio
import msgspec
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import (
    WebSocket,
    WebSocketDisconnect,
    WebSocketDisconnected,
    WebSocketState,
)

from chainbook.gateway.context import GatewayContext
from chainbook.gateway.hub import Conn, Grant, Hub
from chainbook.gateway.ws_api import MAX_FRAME, ApiSession, key_reads_for
from chainbook.gateway.wsdirect import direct_writer

CLOSE_TIMEOUT = 5.0  # s to wait for a close frame to go out (a slow client may never read)
# Requests (SUBSCRIBE, LIST_SUBSCRIPTIONS, ws-api calls) a connection may send: a burst,
# then a rate.  Binance allows 5 a second; ccxt.pro sends one SUBSCRIBE per watch call
# without pacing them, so a client watching many symbols at once needs the burst.
REQUEST_BURST = 50
REQUEST_RATE = 10.0  # per second
POLICY = 1008  # close code: policy violation
# Largest WebSocket frame read (uvicorn's ws_max_size; beyond: closed with 1009).  Twice
# the longest request parsed, so a request up to 128 KiB gets the "message too long"
# error reply rather than a close.
WS_MAX_SIZE = 2 * MAX_FRAME
INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
             "1d", "3d", "1w", "1M")
_KIND = re.compile(
    r"(?:trade|aggTrade|miniTicker|ticker|bookTicker"
    r"|depth(?:5|10|20)?(?:@100ms|@1000ms)?"
    r"|kline_(?:" + "|".join(INTERVALS) + r"))"
)
ALL_MARKET = frozenset({"!ticker@arr", "!miniTicker@arr",  # and with Binance's speed
                        "!ticker@arr@1000ms", "!miniTicker@arr@1000ms"})  # suffix
_LISTEN_KEY = re.compile(r"[A-Za-z0-9]{64}")
_GONE = (WebSocketDisconnect, WebSocketDisconnected, OSError)  # the peer went away


def valid_stream(name: str, symbols: Collection[str]) -> bool:
    """True for ``<lower-case listed symbol>@<kind>`` and the all-market ticker arrays."""
    if name in ALL_MARKET:
        return True
    symbol, at, kind = name.partition("@")
    return (bool(at) and symbol.islower() and symbol.upper() in symbols
            and _KIND.fullmatch(kind) is not None)


def _error(rid: Any, msg: str, code: int = 2) -> dict[str, Any]:
    """Binance's error reply (code 0: unknown property, 1: a value of the wrong type,
    2: invalid request)."""
    text = f"Invalid request: {msg}" if code == 2 else msg
    return {"error": {"code": code, "msg": text}, "id": rid}


def _property(conn: Conn, method: str, params: Any, rid: Any) -> dict[str, Any]:
    """SET_PROPERTY / GET_PROPERTY: the one property is ``combined`` (frames wrapped as
    ``{"stream", "data"}`` from now on, or raw)."""
    if not isinstance(params, list) or not params or not isinstance(params[0], str):
        return _error(rid, "property name must be a string")
    if params[0] != "combined":
        return _error(rid, "Unknown property", code=0)
    if method == "GET_PROPERTY":
        if len(params) != 1:
            return _error(rid, "GET_PROPERTY takes one parameter")
        return {"result": conn.combined, "id": rid}
    if len(params) != 2:
        return _error(rid, "SET_PROPERTY takes a name and a value")
    if not isinstance(params[1], bool):
        return _error(rid, "Invalid value type: expected Boolean", code=1)
    conn.combined = params[1]
    return {"result": None, "id": rid}


class StreamSession:
    """State of one market-data connection (``/ws...`` or ``/stream``): its ``Conn``."""

    def __init__(self, ctx: GatewayContext, conn: Conn) -> None:
        self.ctx = ctx
        self.hub: Hub = ctx.hub
        self.conn = conn

    def check(self, streams: list[Any]) -> str | None:
        """Why subscribing ``streams`` is refused, or None."""
        symbols = self.ctx.core.specs
        for name in streams:
            if not isinstance(name, str) or not valid_stream(name, symbols):
                return f"invalid stream name {name!r}"
        if len(self.conn.streams.union(streams)) > self.hub.max_streams:
            return f"too many subscriptions (max {self.hub.max_streams})"
        return None

    def subscribe(self, streams: list[str]) -> None:
        """Add ``streams`` and queue a snapshot of each that has one (once per name: a
        request repeating a name gets one snapshot, not one per repeat)."""
        streams = list(dict.fromkeys(streams))
        for name in streams:
            self.hub.subscribe(self.conn, name)
        for name in streams:
            try:
                snapshot = self.ctx.market.stream_snapshot(name)
            except KeyError:  # the symbol went away between check and here
                snapshot = None
            if snapshot is not None:
                self.hub.send_stream(self.conn, name, snapshot)

    def on_text(self, text: str) -> None:
        """Handle one request frame and queue its reply."""
        reply = self.decide(text)
        if reply is not None:
            self.hub.reply(self.conn, reply)

    def decide(self, text: str) -> dict[str, Any] | None:
        """Apply one SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS request; return the reply
        (None when it was queued already, ahead of the snapshots)."""
        if len(text) > MAX_FRAME:
            return _error(None, "message too long")
        try:
            request = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return _error(None, "malformed JSON")
        if not isinstance(request, dict):
            return _error(None, "expected a JSON object")
        rid = request.get("id")
        if isinstance(rid, bool) or not isinstance(rid, int | str | None):
            return _error(None, "'id' must be an integer, a string or null")
        method, params = request.get("method"), request.get("params", [])
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(self.conn.streams), "id": rid}
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return _property(self.conn, method, params, rid)
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            return _error(rid, f"unknown method {method!r}")
        if not isinstance(params, list):
            return _error(rid, "'params' must be a list of stream names")
        if method == "UNSUBSCRIBE":
            for name in params:
                if isinstance(name, str):
                    self.hub.unsubscribe(self.conn, name)
            return {"result": None, "id": rid}
        why = self.check(params)
        if why is not None:
            return _error(rid, why)
        # The reply must precede the snapshots: ccxt waits for it before anything else.
        self.hub.reply(self.conn, {"result": None, "id": rid})
        self.subscribe(params)
        return None


async def _read(ws: WebSocket, on_text: Callable[[str], None], conn: Conn) -> None:
    """Feed the client's text frames to ``on_text`` until it disconnects, or until it
    sends requests faster than ``REQUEST_BURST`` at once and ``REQUEST_RATE`` a second
    after that: then ``conn`` is finished with 1008 (a request can cost a snapshot of
    every stream it names: unbounded, they would be an amplifier)."""
    tokens, last = float(REQUEST_BURST), time.monotonic()
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        now = time.monotonic()
        tokens = min(float(REQUEST_BURST), tokens + (now - last) * REQUEST_RATE)
        last = now
        if tokens < 1.0:
            conn.finish(POLICY, "too many requests")
            return
        tokens -= 1.0
        text = message.get("text")
        if text is None:
            data = message.get("bytes") or b""
            text = data.decode("utf-8", errors="replace")
        on_text(text)


async def run_session(ws: WebSocket, hub: Hub, conn: Conn,
                      on_text: Callable[[str], None]) -> None:
    """Pump ``conn``'s frames to ``ws`` and its requests to ``on_text`` until either side
    ends; close the socket if the hub finished ``conn`` (slow consumer, shutdown).

    The three parts (writer, reader, finish watch) share one anyio task group: the first
    to end cancels the others, which keeps an outer cancellation intact."""
    failures: list[Exception] = []

    async def until_done(part: Callable[[], Awaitable[None]], scope: anyio.CancelScope) -> None:
        try:
            await part()
        except _GONE:
            pass  # the peer went away
        except Exception as exc:  # a bug: close with 1011 and re-raise below
            failures.append(exc)
        finally:
            scope.cancel()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(until_done, lambda: conn.pump(ws.send_text), tg.cancel_scope)
            tg.start_soon(until_done, lambda: _read(ws, on_text, conn), tg.cancel_scope)
            tg.start_soon(until_done, conn.wait_finished, tg.cancel_scope)
    finally:
        hub.detach(conn)
    code, reason = (1011, "internal error") if failures else (conn.close_code,
                                                             conn.close_reason)
    if code is not None and ws.application_state == WebSocketState.CONNECTED:
        # A client that stopped reading may never take the close frame: do not wait forever.
        with contextlib.suppress(*_GONE), anyio.move_on_after(CLOSE_TIMEOUT):
            await ws.close(code, reason)
    if failures:
        raise failures[0]


def build_ws_routes(ctx: GatewayContext) -> list[BaseRoute]:
    """The WebSocket routes of the gateway (``/ws``, ``/ws/{tail}``, ``/stream``,
    ``/ws-api/v3``)."""
    hub: Hub = ctx.hub

    def admitted(ws: WebSocket) -> bool:
        """The IP's WebSocket connection allowance (ratelimit.ws_connect)."""
        return ctx.limits.ws_connect(ws.client.host if ws.client else "unknown")

    async def streams(ws: WebSocket, names: list[str], combined: bool,
                      account: int | None = None, listen_key: str = "") -> None:
        session = StreamSession(ctx, hub.open(combined))
        try:
            if session.check(names) is not None:
                await ws.close(1008, "invalid stream name")  # before accept: HTTP 403
                return
            if not admitted(ws):
                await ws.close(POLICY, "too many connections")  # before accept: 403
                return
            await ws.accept()
            session.conn.direct = direct_writer(ws)  # frames straight to the transport
            if account is not None:
                keys, active = ctx.views.listen_keys, key_reads_for(ctx.keys, account)
                hub.subscribe_user(session.conn, account, wrapped=False, grant=Grant(
                    lambda: keys.valid(listen_key, account, active), listen_key))
            session.subscribe(names)
            await run_session(ws, hub, session.conn, session.on_text)
        finally:
            hub.detach(session.conn)  # also when the handshake fails

    async def ws_root(ws: WebSocket) -> None:
        await streams(ws, [], combined=False)

    async def ws_tail(ws: WebSocket) -> None:
        tail: str = ws.path_params["tail"]
        lkeys = ctx.views.listen_keys
        account = lkeys.account_for(tail)
        if account is not None and not lkeys.valid(tail, account,
                                                   key_reads_for(ctx.keys, account)):
            account = None  # its API keys were revoked: forgotten, refused below
        if account is not None:
            await streams(ws, [], combined=False, account=account, listen_key=tail)
        elif _LISTEN_KEY.fullmatch(tail):  # unknown, expired or deleted: say so (403)
            await ws.close(1008, "invalid listenKey")
        elif "@" in tail or tail.startswith("!"):
            await streams(ws, [tail], combined=False)
        else:  # ccxt's /ws/0, /ws/1 ...: subscribe later
            await streams(ws, [], combined=False)

    async def combined(ws: WebSocket) -> None:
        names = [n for n in ws.query_params.get("streams", "").split("/") if n]
        await streams(ws, list(dict.fromkeys(names)), combined=True)

    async def ws_api(ws: WebSocket) -> None:
        session = ApiSession(hub, hub.open(), ctx.keys, ctx.clock_ms)
        try:
            if not admitted(ws):
                await ws.close(POLICY, "too many connections")  # before accept: 403
                return
            await ws.accept()
            session.conn.direct = direct_writer(ws)
            await run_session(ws, hub, session.conn, session.on_text)
        finally:
            hub.detach(session.conn)

    return [
        WebSocketRoute("/ws", ws_root),
        WebSocketRoute("/ws/{tail}", ws_tail),
        WebSocketRoute("/stream", combined),
        WebSocketRoute("/ws-api/v3", ws_api),
    ]
