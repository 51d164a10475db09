"""HTTP limits (gateway/fasthttp.GuardedProtocol) on real uvicorn servers on loopback.

A request line + headers past MAX_HEAD gets 431 -1101 and the connection is closed,
before the bytes pile up; a request whose headers or body do not arrive within their
deadline gets 408 -1007 and is closed (slowloris).  Idle keep-alive connections and
WebSocket connections are not subject to these deadlines; a WebSocket frame past
WS_MAX_SIZE closes the connection with 1009.  Both HTTP paths: the fast REST protocol
and the plain guarded one (``[server] http = "uvicorn"``).
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from restfixtures import Gateway
from test_fasthttp import _serving
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from wsfixtures import World

from chainbook.gateway import fasthttp
from chainbook.gateway.fasthttp import MAX_HEAD, GuardedProtocol, fast_protocol
from chainbook.gateway.rest import direct_rest, fast_table
from chainbook.gateway.ws import WS_MAX_SIZE


@pytest.fixture(params=["fast", "guarded"])
def port(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    gw = Gateway(tmp_path)
    http: Any = (fast_protocol(fast_table(gw.app.routes)) if request.param == "fast"
                 else GuardedProtocol)
    try:
        with _serving(direct_rest(gw.app, gw.app.routes), http) as p:
            yield p
    finally:
        gw.keys.close()


def _reply(sock: socket.socket) -> tuple[int, dict[str, Any], bytes]:
    """One response (status, JSON body) and then what follows it until EOF or 2 s."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    body, after = rest[:length], rest[length:]
    sock.settimeout(2)
    try:
        while chunk := sock.recv(65536):
            after += chunk
    except TimeoutError:
        after += b"<open>"
    except ConnectionResetError:
        pass  # closed with our unread bytes still in its buffer: a reset, still closed
    return int(head.split(b" ")[1]), json.loads(body), after


def _ping(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /api/v3/ping HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        return _reply(s)[0]


@pytest.mark.parametrize("where", ["url", "header"])
def test_a_head_past_the_limit_is_refused_and_closed(port: int, where: str) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /api/v3/ping?" if where == "url" else
                  b"GET /api/v3/ping HTTP/1.1\r\nx-big: ")
        # the client never ends the line; it stops as soon as the reply is there (more
        # bytes would arrive after the close and reset the connection, reply and all).
        # The limit holds to within one read of the server (<= 256 KiB).
        for _ in range((MAX_HEAD + 300 * 1024) // 8192):
            s.sendall(b"a" * 8192)
            if select.select([s], [], [], 0.02)[0]:
                break
        status, body, after = _reply(s)
    assert (status, body["code"]) == (431, -1101) and after == b""  # closed
    assert _ping(port) == 200


def test_slow_headers_and_bodies_time_out_idle_keep_alive_does_not(
        port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fasthttp, "HEAD_TIMEOUT_S", 0.3)
    monkeypatch.setattr(fasthttp, "BODY_TIMEOUT_S", 0.3)
    monkeypatch.setattr(fasthttp, "SWEEP_S", 0.05)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /api/v3/ping HTTP/1.1\r\nhost: x\r\n")  # and nothing more
        status, body, after = _reply(s)
    assert (status, body["code"], after) == (408, -1007, b"")
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /api/v3/order HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n"
                  b"content-type: application/x-www-form-urlencoded\r\n\r\nsymbol=BT")
        status, body, after = _reply(s)
    assert (status, body["code"], after) == (408, -1007, b"")
    with socket.create_connection(("127.0.0.1", port)) as s:  # keep-alive, idle between
        for _ in range(2):
            s.sendall(b"GET /api/v3/ping HTTP/1.1\r\nhost: x\r\n\r\n")
            status, body, after = _reply(s)  # waits 2 s for more: past both deadlines
            assert (status, body, after) == (200, {}, b"<open>")


def test_websockets_outlive_the_deadlines_and_frames_are_bounded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fasthttp, "HEAD_TIMEOUT_S", 0.3)
    monkeypatch.setattr(fasthttp, "BODY_TIMEOUT_S", 0.3)
    monkeypatch.setattr(fasthttp, "SWEEP_S", 0.05)
    world = World(tmp_path)
    try:
        with _serving(world.app, GuardedProtocol, ws_max_size=WS_MAX_SIZE) as p:
            with connect(f"ws://127.0.0.1:{p}/ws") as ws:
                time.sleep(1.0)
                ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
                assert json.loads(ws.recv(timeout=5)) == {"result": [], "id": 1}
                ws.send("x" * (WS_MAX_SIZE + 1))
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    finally:
        world.close()


@pytest.mark.parametrize("raw", [
    b"GET /api/v3/ping HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
    b"FROB /api/v3/ping HTTP/1.1\r\n\r\n",
    b"GET /api/v3/p\xffng HTTP/1.1\r\n\r\n",
])
def test_what_the_http_parser_refuses_gets_a_binance_error(port: int, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(raw)
        status, body, after = _reply(s)
    assert (status, body["code"], after) == (400, -1100, b"")


def test_many_small_pipelined_requests_in_one_read_are_all_answered(port: int) -> None:
    """The head limit measures one request's head, not a read holding hundreds of
    complete pipelined requests (found by review: 396 pings, one 431)."""
    ping = b"GET /api/v3/ping HTTP/1.1\r\nhost: x\r\nuser-agent: " + b"a" * 120 + b"\r\n\r\n"
    n = 2 * MAX_HEAD // len(ping)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(ping * n + b"GET /api/v3/ping HTTP/1.1\r\nconnection: close\r\n\r\n")
        s.settimeout(10)
        data = b""
        while chunk := s.recv(1 << 16):
            data += chunk
    assert data.count(b"HTTP/1.1 200 ") == n + 1 and b" 431 " not in data
