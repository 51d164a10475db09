"""Error cases through real ccxt: each raises the exception spec §5 promises, and none
changes a balance or the book."""

from __future__ import annotations

import ccxt
import httpx
import pytest
from gwclient import Server, ccxt_client, signed_request, totals

BTC = "BTC/USDT"


def test_bad_secret_is_authentication_error(server: Server) -> None:
    ex = ccxt_client(server, "demo1", secret="x" * 64)
    ex.load_markets()
    with pytest.raises(ccxt.AuthenticationError):
        ex.fetch_balance()
    with pytest.raises(ccxt.AuthenticationError):
        ex.create_order(BTC, "limit", "buy", 0.001, 29000.0)


def test_unknown_api_key_is_authentication_error(server: Server) -> None:
    ex = ccxt_client(server, "demo1", apiKey="A" * 64)
    with pytest.raises(ccxt.AuthenticationError):
        ex.fetch_balance()


def test_bad_signature_after_a_success_is_still_authentication_error(server: Server) -> None:
    ex = ccxt_client(server, "demo1")
    ex.fetch_balance()  # sets hasAlreadyAuthenticatedSuccessfully (spec §5, -2015 note)
    ex.secret = "y" * 64
    with pytest.raises(ccxt.AuthenticationError):
        ex.fetch_balance()


@pytest.mark.parametrize("skew_ms", [120_000, -5_000])
def test_stale_or_future_timestamp_is_invalid_nonce(server: Server, skew_ms: int) -> None:
    ex = ccxt_client(server, "demo1")
    ex.options["timeDifference"] = skew_ms  # timestamp = now - skew
    with pytest.raises(ccxt.InvalidNonce):
        ex.fetch_balance()


def test_insufficient_funds(clean: Server) -> None:
    ex = ccxt_client(clean, "demo1")
    before = totals(ex)
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(BTC, "limit", "buy", 100, 30000.0)  # 3,000,000 USDT > 1,000,000
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(BTC, "limit", "sell", float(before["BTC"][0] + 1), 30000.0)
    assert totals(ex) == before and ex.fetch_open_orders(BTC) == []


def test_price_off_the_tick_is_invalid_order(clean: Server) -> None:
    ex = ccxt_client(clean, "demo1")
    before = totals(ex)
    with pytest.raises(ccxt.InvalidOrder):  # bypasses ccxt's rounding
        ex.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                               "timeInForce": "GTC", "quantity": "0.001",
                               "price": "29000.005"})
    with pytest.raises(ccxt.InvalidOrder):
        ex.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                               "timeInForce": "GTC", "quantity": "0.0010001",
                               "price": "29000.00"})
    assert totals(ex) == before and ex.fetch_open_orders(BTC) == []


def test_unknown_symbol_is_bad_symbol(server: Server) -> None:
    ex = ccxt_client(server, "demo1")
    with pytest.raises(ccxt.BadSymbol):
        ex.private_post_order({"symbol": "NOPE", "side": "BUY", "type": "LIMIT",
                               "timeInForce": "GTC", "quantity": "1", "price": "1"})
    with pytest.raises(ccxt.BadSymbol):
        ex.public_get_depth({"symbol": "NOPE"})


def test_unknown_order_is_order_not_found(server: Server) -> None:
    ex = ccxt_client(server, "demo1")
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order("987654321", BTC)
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order("987654321", BTC)


def test_another_accounts_order_is_order_not_found(clean: Server) -> None:
    a, b = ccxt_client(clean, "demo1"), ccxt_client(clean, "demo2")
    order = a.create_order(BTC, "limit", "buy", 0.001, 29000.0)
    with pytest.raises(ccxt.OrderNotFound):
        b.fetch_order(order["id"], BTC)
    with pytest.raises(ccxt.OrderNotFound):
        b.cancel_order(order["id"], BTC)
    assert order["id"] not in {o["id"] for o in b.fetch_orders(BTC)}
    assert order["id"] not in {t["order"] for t in b.fetch_my_trades(BTC)}
    assert a.fetch_order(order["id"], BTC)["status"] == "open"  # untouched


def test_raw_error_bodies(server: Server) -> None:
    """The codes behind the exceptions above, as spec §5 lists them."""
    with httpx.Client(timeout=10) as http:
        r = signed_request(http, server, "demo1", "GET", "/api/v3/order",
                           {"symbol": "BTCUSDT", "orderId": 987654321})
        assert (r.status_code, r.json()["code"]) == (400, -2013)
        r = signed_request(http, server, "demo1", "GET", "/api/v3/account", {},
                           ts_ms=1_000_000_000_000)
        assert (r.status_code, r.json()["code"]) == (400, -1021)
        r = http.get(server.base + "/api/v3/account?timestamp=1&signature=" + "0" * 64)
        assert r.status_code == 401 and r.json()["code"] == -2014
        r = http.get(server.base + "/api/v3/depth", params={"symbol": "NOPE"})
        assert r.json() == {"code": -1121, "msg": "Invalid symbol."}
