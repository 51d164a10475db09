"""A server of its own per test: state survives SIGTERM and a restart on the same data
dir; request-weight limits answer 429 then 418, with Retry-After."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ccxt
import httpx
import pytest
from gwclient import ccxt_client, signed_request, start_server, stop_server

BTC = "BTC/USDT"
TIME_FIELDS = ("openTime", "closeTime")  # the 24 h window moves with the clock


def _state(srv: Any) -> dict[str, Any]:
    """Everything a restart must keep, as the raw JSON the server sends."""
    pub = ccxt_client(srv, None)
    state: dict[str, Any] = {
        "depth": pub.public_get_depth({"symbol": "BTCUSDT", "limit": 1000}),
        "trades": pub.public_get_trades({"symbol": "BTCUSDT", "limit": 1000}),
        "aggTrades": pub.public_get_aggtrades({"symbol": "BTCUSDT", "limit": 1000}),
        "klines_1m": pub.public_get_klines({"symbol": "BTCUSDT", "interval": "1m"}),
        "klines_1d": pub.public_get_klines({"symbol": "BTCUSDT", "interval": "1d"}),
        "tickers": [{k: v for k, v in t.items() if k not in TIME_FIELDS}
                    for t in pub.public_get_ticker_24hr()],
        "prices": pub.public_get_ticker_price(),
    }
    for name in ("demo1", "demo2"):
        ex = ccxt_client(srv, name)
        account = ex.private_get_account()
        account.pop("updateTime", None)
        state[name] = {
            "balances": account["balances"],
            "open": ex.private_get_openorders(),
            "all": ex.private_get_allorders({"symbol": "BTCUSDT"}),
            "trades": ex.private_get_mytrades({"symbol": "BTCUSDT"}),
        }
    return state


def test_state_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        a, b = ccxt_client(srv, "demo1"), ccxt_client(srv, "demo2")
        a.create_order(BTC, "limit", "sell", 0.004, 30000.0)
        b.create_order(BTC, "limit", "buy", 0.001, 30000.0)
        market = b.create_order(BTC, "market", "buy", 0.001)
        resting = b.create_order(BTC, "limit", "buy", 0.003, 29950.0)
        gone = a.create_order(BTC, "limit", "sell", 0.001, 30100.0)
        a.cancel_order(gone["id"], BTC)
        a.create_order("ETH/USDT", "limit", "sell", 0.5, 2000.0)
        # settlementStatus is part of the state: let the ledger (a child process) settle
        # the last trade first, as the restarted server's ledger will have
        deadline = time.monotonic() + 15
        while b.fetch_order(market["id"], BTC)["info"]["settlementStatus"] != "SETTLED":
            assert time.monotonic() < deadline, "the ledger never settled the last trade"
            time.sleep(0.02)
        before = _state(srv)
    finally:
        code = stop_server(srv)
    assert code == 0, f"SIGTERM exit status {code}\n{srv.log_tail()}"
    assert len(before["demo1"]["trades"]) == 2 and len(before["demo2"]["open"]) == 1

    again = start_server(data)
    try:
        after = _state(again)
        assert set(after) == set(before)
        for key in before:
            assert after[key] == before[key], key
        # and it keeps working: the resting bid still trades
        fill = ccxt_client(again, "demo1").create_order(BTC, "limit", "sell", 0.003, 29950.0)
        assert fill["status"] == "closed"
        assert ccxt_client(again, "demo2").fetch_order(resting["id"], BTC)["status"] == "closed"
        assert again.accounts == srv.accounts  # demo accounts are created once
    finally:
        assert stop_server(again) == 0


def test_weight_limit_gives_429_then_418_with_retry_after(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", rate_limits={"request_weight_per_minute": 40})
    try:
        statuses: list[int] = []
        last: dict[int, httpx.Response] = {}
        with httpx.Client(timeout=10) as http:
            for _ in range(120):
                r = http.get(srv.base + "/api/v3/depth", params={"symbol": "BTCUSDT"})
                statuses.append(r.status_code)
                last[r.status_code] = r
                if r.status_code == 418:
                    break
        first_429 = statuses.index(429)
        assert set(statuses[:first_429]) == {200} and first_429 >= 1
        assert 418 in statuses and all(s == 429 for s in statuses[first_429:-1])
        assert int(last[200].headers["X-MBX-USED-WEIGHT-1M"]) <= 40
        limited, banned = last[429], last[418]
        assert limited.json()["code"] == -1003 and banned.json()["code"] == -1003
        assert int(limited.headers["Retry-After"]) >= 1
        assert int(banned.headers["Retry-After"]) >= 1
        # once banned, every request is refused, even one of weight 1
        with httpx.Client(timeout=10) as http:
            assert http.get(srv.base + "/api/v3/ping").status_code == 418
    finally:
        assert stop_server(srv) == 0


def _weights(srv: Any, forwarded_for: list[str]) -> list[int]:
    """The used weight after one depth request per ``X-Forwarded-For`` value."""
    with httpx.Client(timeout=10) as http:
        return [int(http.get(srv.base + "/api/v3/depth", params={"symbol": "BTCUSDT"},
                             headers={"X-Forwarded-For": ip}).headers["X-MBX-USED-WEIGHT-1M"])
                for ip in forwarded_for]


@pytest.mark.parametrize("trusted", [False, True])
def test_x_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path: Path,
                                                          trusted: bool) -> None:
    srv = start_server(tmp_path / "data", server_toml='trusted_proxies = ["127.0.0.1"]'
                       if trusted else "")
    try:
        w = _weights(srv, ["1.2.3.4", "5.6.7.8", "1.2.3.4"])
    finally:
        assert stop_server(srv) == 0
    if trusted:  # the proxy names the client: one counter per forwarded address
        assert w[0] == w[1] and w[2] == 2 * w[0]
    else:  # the header is ignored: every request counts against 127.0.0.1
        assert w[1] == 2 * w[0] and w[2] == 3 * w[0]


def test_order_rate_limit_gives_429_minus_1015(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", rate_limits={"orders_per_10s": 3})
    try:
        if time.time() % 10 > 8:  # windows are aligned on the clock: start in a fresh one
            time.sleep(10 - time.time() % 10 + 0.05)
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                 "quantity": "0.001", "price": "29000.00"}
        with httpx.Client(timeout=10) as http:
            replies = [signed_request(http, srv, "demo1", "POST", "/api/v3/order", order)
                       for _ in range(4)]
        assert [r.status_code for r in replies] == [200, 200, 200, 429]
        assert [r.headers.get("X-MBX-ORDER-COUNT-10S") for r in replies[:3]] == ["1", "2", "3"]
        assert replies[3].json()["code"] == -1015
        assert 1 <= int(replies[3].headers["Retry-After"]) <= 10
        with pytest.raises(ccxt.DDoSProtection):  # how ccxt sees a 429 (spec §5)
            ccxt_client(srv, "demo1").create_order(BTC, "limit", "buy", 0.001, 29000.0)
    finally:
        assert stop_server(srv) == 0


def test_a_revoked_api_key_loses_its_user_data_stream(tmp_path: Path) -> None:
    """``chainbook apikey revoke`` in another process: within about two seconds the
    server ends the ws-api subscription made with that key (eventStreamTerminated)."""
    import hashlib
    import hmac
    import json
    import subprocess
    import sys

    from websockets.sync.client import connect

    srv = start_server(tmp_path / "data")
    try:
        acct = srv.accounts["demo1"]
        params = {"apiKey": acct.api_key, "timestamp": int(time.time() * 1000)}
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        params["signature"] = hmac.new(acct.api_secret.encode(), payload.encode(),
                                       hashlib.sha256).hexdigest()
        with connect(srv.ws + "/ws-api/v3") as ws:
            ws.send(json.dumps({"id": 1, "method": "userDataStream.subscribe.signature",
                                "params": params}))
            assert json.loads(ws.recv(timeout=10))["result"] == {"subscriptionId": 0}
            done = subprocess.run([sys.executable, "-m", "chainbook", "apikey", "revoke",
                                   acct.api_key, "--data", str(srv.data)],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            t0 = time.monotonic()
            ended = json.loads(ws.recv(timeout=10))
            assert ended["subscriptionId"] == 0
            assert ended["event"]["e"] == "eventStreamTerminated"
            assert time.monotonic() - t0 < 5
    finally:
        assert stop_server(srv) == 0
