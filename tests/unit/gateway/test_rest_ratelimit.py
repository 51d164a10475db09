"""Rate limits: weight per IP per minute (429, then 418 ban), orders per 10 s."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from restfixtures import Gateway, Signer, TestClient

from chainbook.gateway import errors
from chainbook.gateway.ratelimit import RateLimiter


def test_weight_limit_429_then_ban_418(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, weight_per_minute=10, ban_after=2, ban_ms=120_000)
    try:
        with TestClient(gw.app) as client:
            for used in range(1, 11):
                r = client.get("/api/v3/ping")
                assert r.status_code == 200 and r.headers["X-MBX-USED-WEIGHT-1M"] == str(used)
            limited = client.get("/api/v3/ping")
            assert limited.status_code == 429
            body = limited.json()
            assert body["code"] == -1003 and body["msg"].startswith(
                "Too many requests; current limit of IP(testclient) request weight per "
                "1 MINUTE is 10.")
            assert 1 <= int(limited.headers["Retry-After"]) <= 60
            assert client.get("/api/v3/ping").status_code == 429
            banned = client.get("/api/v3/ping")
            assert banned.status_code == 418
            until = gw.clock() + 120_000
            assert banned.json() == {"code": -1003,
                                     "msg": f"Way too many requests; IP banned until {until}."}
            assert banned.headers["Retry-After"] == "120"
            assert banned.headers["X-MBX-USED-WEIGHT-1M"] == "10"
            gw.clock.advance(60_000)  # a new minute, but still banned
            assert client.get("/api/v3/ping").status_code == 418
            gw.clock.advance(60_000)
            assert client.get("/api/v3/ping").status_code == 200
    finally:
        gw.keys.close()


ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.1", "price": "100.00"}


@contextmanager
def two_orders_per_10s(tmp: Path) -> Iterator[tuple[Gateway, Signer]]:
    """A gateway whose order limit is 2 per 10 s, and Alice's signer."""
    gw = Gateway(tmp, orders_per_10s=2)
    try:
        with TestClient(gw.app) as client:
            yield gw, Signer(client, gw.alice, gw.clock)
    finally:
        gw.keys.close()


def test_order_rate_limit(tmp_path: Path) -> None:
    with two_orders_per_10s(tmp_path) as (gw, alice):
        counts = [alice.ccxt("POST", "/api/v3/order", ORDER).headers[
            "X-MBX-ORDER-COUNT-10S"] for _ in range(2)]
        assert counts == ["1", "2"]
        r = alice.ccxt("POST", "/api/v3/order", ORDER)
        assert r.status_code == 429
        assert r.json() == {"code": -1015, "msg": "Too many new orders; current limit is "
                                                  "2 orders per TEN_SECONDS."}
        assert "Retry-After" in r.headers
        assert (r.headers["X-MBX-ORDER-COUNT-10S"], r.headers["X-MBX-ORDER-COUNT-1D"]) == (
            "2", "2")  # the counts, as on an accepted order
        assert len(gw.views.open_orders(gw.alice.account)) == 2
        gw.clock.advance(10_000)
        assert alice.ccxt("POST", "/api/v3/order", ORDER).status_code == 200


def test_limiter_day_limit_and_windows() -> None:
    now = [0]
    rl = RateLimiter(lambda: now[0], orders_per_10s=100, orders_per_day=3)
    assert [rl.order(1) for _ in range(3)] == [(1, 1), (2, 2), (3, 3)]
    with pytest.raises(errors.ApiError) as e:
        rl.order(1)
    assert e.value.code == -1015 and "per DAY" in e.value.msg
    assert rl.order(2) == (1, 1)  # per account
    now[0] = 86_400_000
    assert rl.order(1) == (1, 1)
    assert rl.request("a", 7) == 7 and rl.request("b", 1) == 1 and rl.used_weight("a") == 7


def test_only_orders_the_core_accepts_count(tmp_path: Path) -> None:
    """Binance: "every successful request to place an order adds to the unfilled order
    count": a refused order (here: a price off the tick, then one beyond the balance)
    leaves the count where it was, and cannot use up the limit."""
    with two_orders_per_10s(tmp_path) as (_gw, alice):
        for bad in ({"price": "100.001"}, {"quantity": "100000"}):
            r = alice.ccxt("POST", "/api/v3/order", {**ORDER, **bad})
            assert r.status_code == 400
            assert r.headers["X-MBX-ORDER-COUNT-10S"] == "0"
        counts = [alice.ccxt("POST", "/api/v3/order", ORDER).headers[
            "X-MBX-ORDER-COUNT-10S"] for _ in range(2)]
        assert counts == ["1", "2"]
        assert alice.ccxt("POST", "/api/v3/order", ORDER).status_code == 429
