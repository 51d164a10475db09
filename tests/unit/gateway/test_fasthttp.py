"""The REST protocol (gateway/fasthttp.py) answers like uvicorn + Starlette, on real sockets.

Two twin gateways (same keys, same state) are served by real uvicorn servers on loopback:
one with uvicorn's httptools protocol (guarded, as serve's ``http = "uvicorn"``) and the
Starlette app, one with ``fast_protocol``.
The same requests (from an HTTP client, and as raw bytes: pipelined, split bodies, an
oversized body, ``Connection: close``, HTTP/1.0) must get the same status, headers and
body from both; only the Date header differs.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from restfixtures import Gateway
from test_rest_hotpath import _scenario, _twin
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chainbook.gateway import fasthttp
from chainbook.gateway.endpoint import Endpoint
from chainbook.gateway.fasthttp import GuardedProtocol, fast_protocol
from chainbook.gateway.rest import direct_rest, fast_table


@contextmanager
def _serving(app: Any, http: Any, **settings: Any) -> Iterator[int]:
    """A real uvicorn server for ``app`` on a free loopback port, in a thread, set up
    as ``chainbook serve`` sets it up (no proxy headers unless ``settings`` say so)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=http, loop="uvloop", lifespan="off",
                            log_level="warning", ws="websockets-sansio",
                            **{"proxy_headers": False, **settings})
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _pair(tmp: Path) -> tuple[Gateway, Gateway]:
    plain, fast = _twin(tmp / "plain"), _twin(tmp / "fast")
    assert plain.alice.secret == fast.alice.secret
    return plain, fast


@contextmanager
def _servers(tmp: Path) -> Iterator[tuple[Gateway, int, Gateway, int]]:
    plain, fast = _pair(tmp)
    try:
        with _serving(direct_rest(plain.app, plain.app.routes), GuardedProtocol) as p1, \
                _serving(fast.app, fast_protocol(fast_table(fast.app.routes))) as p2:
            yield plain, p1, fast, p2
    finally:
        plain.keys.close()
        fast.keys.close()


def _strip_date(reply: tuple[int, dict[str, str], bytes]) -> tuple[int, dict[str, str], bytes]:
    status, headers, body = reply
    return status, {k: v for k, v in headers.items() if k.lower() != "date"}, body


def _count_cycles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the REST protocol answered itself (not through uvicorn's ASGI cycle)."""
    seen: list[str] = []
    init = fasthttp._RestCycle.__init__

    def counting(self: Any, proto: Any, endpoint: Any, method: str, path: str,
                 *args: Any) -> None:
        seen.append(f"{method} {path}")
        init(self, proto, endpoint, method, path, *args)

    monkeypatch.setattr(fasthttp._RestCycle, "__init__", counting)
    return seen


def test_the_rest_protocol_answers_like_uvicorn_and_starlette(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _count_cycles(monkeypatch)
    with _servers(tmp_path) as (plain, p1, fast, p2):
        with httpx.Client(base_url=f"http://127.0.0.1:{p1}") as c:
            expected = [_strip_date(r) for r in _scenario(c, plain)]  # type: ignore[arg-type]
        with httpx.Client(base_url=f"http://127.0.0.1:{p2}") as c:
            got = [_strip_date(r) for r in _scenario(c, fast)]  # type: ignore[arg-type]
    assert [s for s, _, _ in expected][:8] == [200] * 8  # the scenario really traded
    assert got == expected
    assert seen.count("POST /api/v3/order") == 6 and "GET /api/v3/ping" in seen
    assert "HEAD /api/v3/ping" not in seen  # HEAD and unknown paths: uvicorn's own path
    assert plain.balance(plain.alice, "USDT") == fast.balance(fast.alice, "USDT")


def _exchange(port: int, chunks: list[bytes], pause: float = 0.05) -> bytes:
    """Send ``chunks`` (pausing between them) and read until the server closes or is
    quiet for 0.25 s."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        for i, chunk in enumerate(chunks):
            if i:
                time.sleep(pause)
            s.sendall(chunk)
        s.settimeout(0.25)
        out = b""
        while True:
            try:
                data = s.recv(65536)
            except TimeoutError:
                break
            if not data:
                out += b"<closed>"
                break
            out += data
    return out


def _no_dates(raw: bytes) -> bytes:
    return b"\r\n".join(line for line in raw.split(b"\r\n")
                        if not line.lower().startswith(b"date:"))


def _depth(extra: bytes = b"") -> bytes:
    return (b"GET /api/v3/depth?symbol=BTCUSDT&limit=5 HTTP/1.1\r\nHost: x\r\n" + extra
            + b"\r\n")


def test_raw_requests_get_the_same_bytes(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _count_cycles(monkeypatch)
    post = (b"POST /api/v3/order HTTP/1.1\r\nHost: x\r\nX-MBX-APIKEY: nobody\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 33\r\n\r\n")
    body = b"symbol=BTCUSDT&side=BUY&timestamp"
    big = b"a=" + b"x" * 20_000
    cases = [
        [_depth() + _depth() + b"GET /api/v3/ping HTTP/1.1\r\nHost: x\r\n\r\n"],  # pipelined
        [post, body],  # the body in a later packet
        [post + body[:10], body[10:]],
        [b"POST /api/v3/order HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big)
         + big],  # over auth.MAX_BYTES: -1101
        [_depth(b"Connection: close\r\n")],
        [b"GET /api/v3/ping HTTP/1.0\r\n\r\n"],
        [b"GET /api/v3/ping?x=1#frag HTTP/1.1\r\nHost: x\r\n\r\n"],
        [b"GET /api/v3/%70ing HTTP/1.1\r\nHost: x\r\n\r\n"],
        [b"HEAD /api/v3/ping HTTP/1.1\r\nHost: x\r\n\r\n"],
        [b"DELETE /api/v3/order?symbol=BTCUSDT HTTP/1.1\r\nHost: x\r\n"
         b"X-MBX-APIKEY: \xff\r\n\r\n"],
        [b"GET /api/v3/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab"],  # cut off
        [b"NONSENSE\r\n\r\n"],
        # over the limit and much more to come: refused at once, not after the upload
        [b"POST /api/v3/order HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
         + big],
        [b"POST /api/v3/order HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"%x\r\n" % len(big) + big + b"\r\n"],
        [post + body[:10]],  # the client leaves before the body ends
    ]
    with _servers(tmp_path) as (plain, p1, fast, p2):
        for chunks in cases:
            expected = _no_dates(_exchange(p1, chunks))
            got = _no_dates(_exchange(p2, chunks))
            assert got == expected, chunks
            # answered, or waiting for more (a cut-off body)
            assert expected or b"ab" in chunks[0] or chunks == cases[-1], chunks
        time.sleep(0.2)
        # every request was charged the same weight, the cut-off ones included
        ip = "127.0.0.1"
        assert fast.limits.used_weight(ip) == plain.limits.used_weight(ip) > len(cases)
        assert seen.count("POST /api/v3/order") == 6 and "DELETE /api/v3/order" in seen
        pipelined = _exchange(p2, cases[0])
        assert pipelined.count(b"HTTP/1.1 200 OK") == 3
        assert pipelined.index(b'"lastUpdateId"') < pipelined.rindex(b"{}")  # in order


def test_trusted_proxy_headers_keep_uvicorns_path(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With proxy headers trusted, uvicorn's middleware sets the client address (the
    rate limits' key): every request then takes uvicorn's path."""
    seen = _count_cycles(monkeypatch)
    gw = _twin(tmp_path)
    try:
        with _serving(gw.app, fast_protocol(fast_table(gw.app.routes)), proxy_headers=True,
                      forwarded_allow_ips="127.0.0.1") as port:
            r = httpx.get(f"http://127.0.0.1:{port}/api/v3/ping",
                          headers={"X-Forwarded-For": "203.0.113.9"})
        assert r.status_code == 200
        assert gw.limits.used_weight("203.0.113.9") == 1  # the forwarded address paid
    finally:
        gw.keys.close()
    assert seen == []


def _protocols_alive() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, HttpToolsProtocol))


def test_a_closed_connection_is_freed_without_the_cycle_collector(tmp_path: Path) -> None:
    """The protocol holds its REST cycle; a link back would keep every closed connection
    until a (full) collection, the pause gcstats measures."""
    gw = _twin(tmp_path)
    request = b"GET /api/v3/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    try:
        with _serving(gw.app, fast_protocol(fast_table(gw.app.routes))) as port:
            gc.collect()
            gc.disable()
            try:
                base = _protocols_alive()
                for _ in range(50):
                    assert _exchange(port, [request]).endswith(b"{}<closed>")
                time.sleep(0.2)
                assert _protocols_alive() - base == 0
            finally:
                gc.enable()
    finally:
        gw.keys.close()


def test_an_exception_in_the_cycle_is_answered_500_like_uvicorn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(self: Any, *args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(Endpoint, "handle", boom)
    with _servers(tmp_path) as (_plain, p1, _fast, p2):
        request = [b"GET /api/v3/ping HTTP/1.1\r\nHost: x\r\n\r\n"]
        expected = _no_dates(_exchange(p1, request))
        assert expected.startswith(b"HTTP/1.1 500 ")
        assert expected.endswith(b"Internal Server Error<closed>")
        assert _no_dates(_exchange(p2, request)) == expected
