"""A direct path for outgoing WebSocket frames: framed once, written to the transport.

Server-to-client frames are not masked, so one text frame's bytes (header + payload) are
the same for every subscriber: the hub frames a payload once per publish and each
connection only does ``transport.write(frame)``. Through the ASGI ``send`` every
subscriber cost a Starlette send, uvicorn's send coroutine and websockets' frame
serialisation (~40 µs a message; docs/gateway-performance.md).

The path is used only on uvicorn's ``websockets-sansio`` protocol (what ``chainbook
serve`` runs; uvicorn is pinned), when the server's own ASGI ``send`` was kept in the
scope by ``expose_raw_send`` around the app (Starlette wraps ``send`` per route), with no
extension negotiated (``serve`` turns
permessage-deflate off), and only while the protocol would send at once itself: the
handshake is done, no close was sent, the peer is connected and the transport is not
paused by flow control. Otherwise the caller falls back to the ASGI ``send``, which
awaits the transport's drain, so a client that stops reading still fills its bounded
queue and is dropped as a slow consumer. Not thread-safe: event-loop thread only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

_TEXT = 0x81  # FIN + opcode 1 (text)
RAW_SEND = "chainbook.raw_send"  # scope key: the server's own ASGI send (WebSocket only)

Scope = MutableMapping[str, Any]
AsgiApp = Callable[[Scope, Any, Any], Awaitable[None]]


def expose_raw_send(app: AsgiApp) -> AsgiApp:
    """Wrap an ASGI app so WebSocket scopes carry the server's ``send`` (``RAW_SEND``)."""

    async def with_raw_send(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND] = send
        await app(scope, receive, send)

    return with_raw_send


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket text frame carrying ``payload`` (UTF-8)."""
    n = len(payload)
    if n < 126:
        return bytes((_TEXT, n)) + payload
    if n < 65536:
        return bytes((_TEXT, 126)) + n.to_bytes(2, "big") + payload
    return bytes((_TEXT, 127)) + n.to_bytes(8, "big") + payload


class DirectWriter:
    """Writes pre-built frames straight to one uvicorn websockets-sansio connection."""

    __slots__ = ("_proto", "_transport", "_writable")

    def __init__(self, proto: Any) -> None:
        self._proto = proto
        self._transport = proto.transport
        self._writable = proto.writable

    def ready(self) -> bool:
        """True if a frame written now goes out as uvicorn's own send would write it."""
        proto = self._proto
        return (self._writable.is_set() and not proto.close_sent and not proto.disconnected
                and not self._transport.is_closing())

    def write(self, frame: bytes) -> None:
        """Hand ``frame`` (from ``text_frame``) to the transport; check ``ready`` first."""
        self._transport.write(frame)


def direct_writer(ws: Any) -> DirectWriter | None:
    """A ``DirectWriter`` for an accepted Starlette ``WebSocket``, or None when the
    server is not uvicorn's websockets-sansio protocol or an extension was negotiated."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import (
            WebSocketsSansIOProtocol,
        )
    except ImportError:  # pragma: no cover - uvicorn is a pinned dependency
        return None
    proto = getattr(ws.scope.get(RAW_SEND), "__self__", None)
    if type(proto) is not WebSocketsSansIOProtocol:
        return None
    if not proto.handshake_complete or getattr(proto.conn, "extensions", None):
        return None
    if getattr(proto, "transport", None) is None or not hasattr(proto, "writable"):
        return None
    return DirectWriter(proto)
