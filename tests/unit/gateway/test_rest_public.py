"""Public endpoints: exchangeInfo shape, depth, trades, tickers; OpenAPI coverage."""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
from restfixtures import BTC, Gateway, Signer

from chainbook.domain.commands import AddSymbol
from chainbook.gateway.openapi import DOCS
from chainbook.gateway.rest import API, ENDPOINTS

FORBIDDEN_SPOT_KEYS = {"contractType", "deliveryDate", "expiryDate", "underlying",
                       "tradability"}


def test_ping_and_time(gw: Gateway, client) -> None:
    assert client.get("/api/v3/ping").json() == {}
    r = client.get("/api/v3/time")
    assert r.json() == {"serverTime": gw.clock()}
    assert r.headers["X-MBX-USED-WEIGHT-1M"] == "2"


def test_exchange_info_shape(gw: Gateway, client) -> None:
    info = client.get("/api/v3/exchangeInfo").json()
    assert info["timezone"] == "UTC" and info["serverTime"] == gw.clock()
    assert {r["rateLimitType"] for r in info["rateLimits"]} == {"REQUEST_WEIGHT", "ORDERS"}
    by = {s["symbol"]: s for s in info["symbols"]}
    assert set(by) == {"BTCUSDT", "ETHUSDT"}
    btc = by["BTCUSDT"]
    assert not FORBIDDEN_SPOT_KEYS & set(btc)
    assert btc["status"] == "TRADING" and btc["baseAsset"] == "BTC"
    assert btc["quoteAsset"] == "USDT" and btc["baseAssetPrecision"] == 8
    assert set(btc["orderTypes"]) == {"LIMIT", "LIMIT_MAKER", "MARKET"}
    assert btc["permissions"] == [] and btc["isMarginTradingAllowed"] is False
    f = {x["filterType"]: x for x in btc["filters"]}
    assert Decimal(f["PRICE_FILTER"]["tickSize"]) == Decimal("0.01")
    assert Decimal(f["LOT_SIZE"]["stepSize"]) == Decimal("0.00001")
    assert Decimal(f["LOT_SIZE"]["minQty"]) == Decimal("0.00001")
    assert Decimal(f["NOTIONAL"]["minNotional"]) == Decimal(5)
    # the core checks a MARKET order's notional only for quoteOrderQty (docs/core.md)
    # enforced on MARKET orders by quoteOrderQty, so said to apply to MARKET orders
    assert f["NOTIONAL"]["applyMinToMarket"] is True
    assert f["NOTIONAL"]["applyMaxToMarket"] is True
    assert {"minQty", "maxQty"} <= set(f["MARKET_LOT_SIZE"])
    one = client.get("/api/v3/exchangeInfo", params={"symbol": "ETHUSDT"}).json()
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
    many = client.get("/api/v3/exchangeInfo",
                      params={"symbols": json.dumps(["ETHUSDT", "BTCUSDT"])}).json()
    assert [s["symbol"] for s in many["symbols"]] == ["ETHUSDT", "BTCUSDT"]
    assert client.get("/api/v3/exchangeInfo", params={"symbol": "XYZ"}).json()["code"] == -1121
    bad = client.get("/api/v3/exchangeInfo", params={"symbols": "[BTCUSDT"})
    assert bad.status_code == 400 and bad.json()["code"] == -1100


def test_market_data_follows_trades(gw: Gateway, client, alice: Signer, bob: Signer) -> None:
    alice.ccxt("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
                                         "timeInForce": "GTC", "quantity": "1",
                                         "price": "101.00"})
    bob.ccxt("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                       "timeInForce": "GTC", "quantity": "0.25",
                                       "price": "101.00"})
    depth = client.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5}).json()
    assert depth["asks"] == [["101.00000000", "0.75000000"]] and depth["bids"] == []
    assert depth["lastUpdateId"] > 0
    trades = client.get("/api/v3/trades", params={"symbol": "BTCUSDT"}).json()
    assert [(t["price"], t["qty"], t["isBuyerMaker"]) for t in trades] == [
        ("101.00000000", "0.25000000", False)]
    agg = client.get("/api/v3/aggTrades", params={"symbol": "BTCUSDT"}).json()
    assert agg[0]["p"] == "101.00000000" and agg[0]["M"] is True
    k = client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"}).json()
    assert k and k[-1][4] == "101.00000000"
    assert client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "7m"}
                      ).json() == {"code": -1120, "msg": "Invalid interval."}
    t = client.get("/api/v3/ticker/24hr", params={"symbol": "BTCUSDT"}).json()
    assert t["symbol"] == "BTCUSDT" and t["lastPrice"] == "101.00000000"
    all_t = client.get("/api/v3/ticker/24hr").json()
    assert sorted(x["symbol"] for x in all_t) == ["BTCUSDT", "ETHUSDT"]
    some = client.get("/api/v3/ticker/24hr", params={"symbols": '["ETHUSDT"]'}).json()
    assert [x["symbol"] for x in some] == ["ETHUSDT"]
    price = client.get("/api/v3/ticker/price", params={"symbol": "BTCUSDT"}).json()
    assert price == {"symbol": "BTCUSDT", "price": "101.00000000"}
    book = client.get("/api/v3/ticker/bookTicker", params={"symbols": '["BTCUSDT"]'}).json()
    assert book[0]["askPrice"] == "101.00000000" and book[0]["askQty"] == "0.75000000"


def test_depth_limits_and_weights(client) -> None:
    assert client.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 0}
                      ).json()["code"] == -1130
    assert client.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5001}
                      ).json()["code"] == -1130
    r = client.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5000})
    assert r.status_code == 200 and r.headers["X-MBX-USED-WEIGHT-1M"] == "252"
    assert client.get("/api/v3/depth").json()["code"] == -1102


def test_openapi_covers_every_route(client) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.0")
    for spec in ENDPOINTS:
        path = API + spec.path
        assert (spec.method, path) in DOCS
        op = doc["paths"][path][spec.method.lower()]
        if spec.security == "SIGNED":
            assert "signature" in {p["name"] for p in op["parameters"]}
    assert doc["components"]["schemas"]["Error"]["required"] == ["code", "msg"]


def test_a_breaker_halt_shows_trading_once_its_cooldown_is_over(
        gw: Gateway, client, alice: Signer, bob: Signer) -> None:
    """The core resumes a halted symbol only at its next order; exchangeInfo and
    order/test must not keep saying HALT after the cooldown (a client waiting for
    TRADING would never send that order)."""
    spec = msgspec.structs.replace(BTC, name="BRKUSDT", breaker_bps=500,
                                   breaker_window_ns=60 * 10**9,
                                   breaker_cooldown_ns=5 * 10**9)
    gw.core.apply(AddSymbol(spec))

    def status() -> str:
        info = client.get(API + "/exchangeInfo", params={"symbol": "BRKUSDT"}).json()
        return str(info["symbols"][0]["status"])

    def limit(side: str, price: str) -> dict[str, str]:
        return {"symbol": "BRKUSDT", "side": side, "type": "LIMIT", "timeInForce": "GTC",
                "quantity": "0.1", "price": price}

    alice.ccxt("POST", API + "/order", limit("SELL", "100.00"))
    bob.ccxt("POST", API + "/order", limit("BUY", "100.00"))  # the reference trade
    alice.ccxt("POST", API + "/order", limit("SELL", "110.00"))
    bob.ccxt("POST", API + "/order", limit("BUY", "110.00"))  # +10 %: trips the breaker
    assert status() == "HALT"
    assert alice.ccxt("POST", API + "/order/test", limit("SELL", "111.00")).json()[
        "code"] == -2010
    gw.clock.advance(5_001)
    assert status() == "TRADING"
    assert alice.ccxt("POST", API + "/order/test", limit("SELL", "111.00")).json() == {}
    assert gw.core.status["BRKUSDT"].name == "HALTED"  # the core itself: until an order
    alice.ccxt("POST", API + "/order", limit("SELL", "111.00"))
    assert gw.core.status["BRKUSDT"].name == "TRADING" and status() == "TRADING"
