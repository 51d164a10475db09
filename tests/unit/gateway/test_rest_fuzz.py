"""Malformed input never yields a 500: random params and bodies on every route.

Every response must be a 200 with JSON or a well-formed ``{"code", "msg"}`` error with a
4xx status, and an error must leave the exchange as it was (state hash, order ids).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from restfixtures import Gateway, TestClient

from chainbook.engine.state import state_hash
from chainbook.gateway.auth import sign
from chainbook.gateway.rest import API, ENDPOINTS

ROUTES = sorted({(s.method, API + s.path) for s in ENDPOINTS}) + [
    ("GET", "/openapi.json"), ("GET", "/nope"), ("PATCH", API + "/order")]
NAMES = ["symbol", "side", "type", "timeInForce", "quantity", "price", "quoteOrderQty",
         "newClientOrderId", "newOrderRespType", "orderId", "origClientOrderId", "limit",
         "startTime", "endTime", "fromId", "interval", "symbols", "listenKey",
         "omitZeroBalances", "selfTradePreventionMode", "recvWindow", "stopPrice", "x"]
VALUES = st.one_of(
    st.sampled_from(["BTCUSDT", "ETHUSDT", "BUY", "SELL", "LIMIT", "MARKET", "LIMIT_MAKER",
                     "GTC", "IOC", "FOK", "FULL", "ACK", "0.1", "100.00", "1", "0", "-1",
                     "1e5", "NaN", "", "1m", '["BTCUSDT"]', "[", "true", "99999999999999999999",
                     "0.000000001", "EXPIRE_BOTH", "\u00e9", "a" * 40]),
    st.text(max_size=12),
    st.integers(-10**20, 10**20).map(str),
)
PARAMS = st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=8)


def _fingerprint(gw: Gateway) -> tuple[Any, ...]:
    eng = gw.core.engine
    return state_hash(eng), eng.next_order_id, eng.next_trade_id


def _check(r: Any) -> None:
    assert r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    if r.status_code != 200:
        assert set(body) == {"code", "msg"}, body
        assert isinstance(body["code"], int) and body["code"] < 0
        assert isinstance(body["msg"], str) and body["msg"]
    path = r.path if isinstance(r, Raw) else r.url.path
    if path.startswith(API) and r.status_code not in (404, 405):
        assert "X-MBX-USED-WEIGHT-1M" in r.headers


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, TestClient]]:
    gw = Gateway(tmp_path_factory.mktemp("fuzz"), weight_per_minute=10**9,
                 orders_per_10s=10**9, orders_per_day=10**9)
    with TestClient(gw.app) as client:
        yield gw, client
    gw.keys.close()


class Raw:
    """A response from ``send_raw``."""

    def __init__(self, status: int, headers: httpx.Headers, body: bytes, path: str) -> None:
        self.status_code = status
        self.headers = headers
        self.body = body
        self.path = path

    def json(self) -> Any:
        return json.loads(self.body)


def send_raw(app: Any, method: str, path: str, query: bytes, body: bytes,
             headers: list[tuple[bytes, bytes]]) -> Raw:
    """Drive the ASGI app with bytes no HTTP client would send (NUL, bad UTF-8...)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query, "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80), "state": {}}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Raw(start["status"], httpx.Headers(start["headers"]), data, path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), query=st.binary(max_size=80),
       body=st.binary(max_size=80), key=st.sampled_from([b"", b"valid", b"zz\xff"]))
def test_raw_garbage_is_a_clean_error(world: tuple[Gateway, TestClient], route: Any,
                                      query: bytes, body: bytes, key: bytes) -> None:
    gw, _ = world
    method, path = route
    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    if key:
        headers.append((b"x-mbx-apikey", gw.alice.key.encode() if key == b"valid" else key))
    before = _fingerprint(gw)
    r = send_raw(gw.app, method, path, query, body, headers)
    _check(r)
    if r.status_code != 200:
        assert _fingerprint(gw) == before


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), params=PARAMS, in_body=st.booleans())
def test_signed_random_params(world: tuple[Gateway, TestClient], route: Any,
                              params: dict[str, str], in_body: bool) -> None:
    gw, client = world
    method, path = route
    items = {**params, "timestamp": str(gw.clock())}
    if "recvWindow" in items:
        items["recvWindow"] = "5000"
    text = urlencode(items)
    signed = text + "&signature=" + sign(gw.alice.secret, text.encode())
    headers = {"X-MBX-APIKEY": gw.alice.key,
               "Content-Type": "application/x-www-form-urlencoded"}
    before = _fingerprint(gw)
    if in_body:
        r = client.request(method, path, content=signed.encode(), headers=headers)
    else:
        r = client.request(method, path + "?" + signed, headers=headers)
    _check(r)
    if r.status_code != 200:
        assert _fingerprint(gw) == before, r.json()
