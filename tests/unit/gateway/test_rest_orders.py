"""Order lifecycle over REST: place, fill, partial, cancel, query, allOrders, myTrades."""

from __future__ import annotations

from restfixtures import UNIT, Gateway, Signer

ORDER = "/api/v3/order"


def limit(side: str, price: str, qty: str, **extra: str) -> dict[str, str]:
    return {"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": "GTC",
            "quantity": qty, "price": price, **extra}


def test_resting_limit_order_full_response(gw: Gateway, alice: Signer) -> None:
    r = alice.ccxt("POST", ORDER, limit("BUY", "100.00", "0.5", newClientOrderId="x-abc-1",
                                        newOrderRespType="FULL"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["symbol"] == "BTCUSDT" and body["clientOrderId"] == "x-abc-1"
    assert body["status"] == "NEW" and body["fills"] == []
    assert body["price"] == "100.00000000" and body["origQty"] == "0.50000000"
    assert body["executedQty"] == "0.00000000" and body["cummulativeQuoteQty"] == "0.00000000"
    assert body["orderListId"] == -1 and body["transactTime"] == gw.clock()
    assert body["selfTradePreventionMode"] == "EXPIRE_MAKER"
    assert body["settlementStatus"] == "NONE"
    assert int(r.headers["X-MBX-ORDER-COUNT-10S"]) == 1
    # 100 * 0.5 = 50 USDT + 0.2 % max fee frozen
    assert gw.balance(gw.alice, "USDT") == (100_000 * UNIT - 50_100_00000, 50_100_00000)


def test_fill_partial_cancel_and_history(gw: Gateway, alice: Signer, bob: Signer) -> None:
    maker = alice.ccxt("POST", ORDER, limit("SELL", "200.00", "1.0")).json()
    taker = bob.pb("POST", ORDER, limit("BUY", "200.00", "0.4")).json()
    assert taker["status"] == "FILLED" and taker["executedQty"] == "0.40000000"
    assert taker["cummulativeQuoteQty"] == "80.00000000"
    assert taker["fills"] == [{"price": "200.00000000", "qty": "0.40000000",
                               "commission": "0.16000000", "commissionAsset": "USDT",
                               "tradeId": 1}]
    q = alice.ccxt("GET", ORDER, {"symbol": "BTCUSDT", "orderId": maker["orderId"]}).json()
    assert q["status"] == "PARTIALLY_FILLED" and q["executedQty"] == "0.40000000"
    assert q["time"] == maker["transactTime"] and "transactTime" not in q
    assert q["settlementStatus"] == "SETTLING"
    # python-binance sends DELETE parameters in the body
    c = alice.pb("DELETE", ORDER, {"symbol": "BTCUSDT", "orderId": maker["orderId"]})
    assert c.status_code == 200, c.text
    cancel = c.json()
    assert cancel["status"] == "CANCELED" and cancel["executedQty"] == "0.40000000"
    assert cancel["origClientOrderId"] == maker["clientOrderId"]
    again = alice.ccxt("DELETE", ORDER, {"symbol": "BTCUSDT", "orderId": maker["orderId"]})
    assert again.status_code == 400
    assert again.json() == {"code": -2011, "msg": "Unknown order sent."}
    every = alice.ccxt("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"}).json()
    assert [(o["orderId"], o["status"]) for o in every] == [(maker["orderId"], "CANCELED")]
    mine = alice.ccxt("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"}).json()
    assert len(mine) == 1
    row = mine[0]
    assert row["isBuyer"] is False and row["isMaker"] is True and row["id"] == 1
    assert row["commission"] == "0.08000000" and row["quoteQty"] == "80.00000000"
    assert not {"m", "isBuyerMaker", "side"} & set(row)
    theirs = bob.ccxt("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT",
                                                 "orderId": taker["orderId"]}).json()
    assert [(t["id"], t["isBuyer"], t["isMaker"]) for t in theirs] == [(1, True, False)]
    # balances moved: alice sold 0.4 BTC for 80 USDT minus 0.08 fee
    acct = alice.ccxt("GET", "/api/v3/account", {"omitZeroBalances": "true"}).json()
    bal = {b["asset"]: (b["free"], b["locked"]) for b in acct["balances"]}
    assert bal["BTC"] == ("9.60000000", "0.00000000")
    assert bal["USDT"] == ("100079.92000000", "0.00000000")
    assert acct["canTrade"] is True and acct["uid"] == gw.alice.account


def test_market_orders_by_quantity_and_by_quote(gw: Gateway, alice: Signer,
                                                bob: Signer) -> None:
    alice.ccxt("POST", ORDER, limit("SELL", "100.00", "1.0"))
    alice.ccxt("POST", ORDER, limit("SELL", "101.00", "1.0"))
    by_qty = bob.ccxt("POST", ORDER, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                      "quantity": "1.5"}).json()
    assert by_qty["status"] == "FILLED" and by_qty["price"] == "0.00000000"
    assert by_qty["cummulativeQuoteQty"] == "150.50000000" and len(by_qty["fills"]) == 2
    # a market order works from when it is placed (ccxt takes workingTime as its time)
    assert by_qty["workingTime"] == by_qty["transactTime"] == gw.clock()
    by_quote = bob.ccxt("POST", ORDER, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                        "quoteOrderQty": "10.10"}).json()
    assert by_quote["status"] == "FILLED"
    assert by_quote["origQty"] == by_quote["executedQty"] == "0.10000000"
    assert by_quote["origQuoteOrderQty"] == "10.10000000"
    # nothing left to buy: the market order expires unfilled remainder
    rest = bob.ccxt("POST", ORDER, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                    "quantity": "1.0"}).json()
    assert rest["status"] == "EXPIRED" and rest["executedQty"] == "0.40000000"


def test_ioc_remainder_expires_and_limit_maker_would_take(gw: Gateway, alice: Signer,
                                                          bob: Signer) -> None:
    alice.ccxt("POST", ORDER, limit("SELL", "100.00", "0.1"))
    ioc = bob.ccxt("POST", ORDER, limit("BUY", "100.00", "0.3", timeInForce="IOC")).json()
    assert ioc["status"] == "EXPIRED" and ioc["executedQty"] == "0.10000000"
    alice.ccxt("POST", ORDER, limit("SELL", "105.00", "0.1"))
    r = bob.ccxt("POST", ORDER, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER",
                                 "quantity": "0.1", "price": "105.00"})
    assert r.status_code == 400
    assert r.json() == {"code": -2010, "msg": "Order would immediately match and take."}
    ok = bob.ccxt("POST", ORDER, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER",
                                  "quantity": "0.1", "price": "104.00"}).json()
    assert set(ok) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}


def test_query_by_client_id_and_open_orders(gw: Gateway, alice: Signer) -> None:
    a = alice.ccxt("POST", ORDER, limit("BUY", "90.00", "0.1", newClientOrderId="one")).json()
    alice.ccxt("POST", "/api/v3/order", {"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT",
                                         "timeInForce": "GTC", "quantity": "1",
                                         "price": "10.00"})
    q = alice.pb("GET", ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "one"}).json()
    assert q["orderId"] == a["orderId"]
    every = alice.ccxt("GET", "/api/v3/openOrders").json()
    assert sorted(o["symbol"] for o in every) == ["BTCUSDT", "ETHUSDT"]
    one = alice.ccxt("GET", "/api/v3/openOrders", {"symbol": "ETHUSDT"}).json()
    assert [o["symbol"] for o in one] == ["ETHUSDT"]
    c = alice.ccxt("DELETE", ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "one",
                                     "newClientOrderId": "cancel-1"}).json()
    assert c["clientOrderId"] == "cancel-1" and c["origClientOrderId"] == "one"


def test_cancel_all_returns_an_array_then_2011(gw: Gateway, alice: Signer) -> None:
    for price in ("90.00", "91.00"):
        alice.ccxt("POST", ORDER, limit("BUY", price, "0.1"))
    r = alice.pb("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert r.status_code == 200, r.text
    assert [o["status"] for o in r.json()] == ["CANCELED", "CANCELED"]
    assert gw.balance(gw.alice, "USDT") == (100_000 * UNIT, 0)
    again = alice.ccxt("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert again.json() == {"code": -2011, "msg": "Unknown order sent."}


def test_another_accounts_order_is_not_found(gw: Gateway, alice: Signer,
                                             bob: Signer) -> None:
    oid = alice.ccxt("POST", ORDER, limit("BUY", "90.00", "0.1", newClientOrderId="mine")
                     ).json()["orderId"]
    q = bob.ccxt("GET", ORDER, {"symbol": "BTCUSDT", "orderId": oid})
    assert q.status_code == 400 and q.json() == {"code": -2013, "msg": "Order does not exist."}
    q2 = bob.ccxt("GET", ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "mine"})
    assert q2.json()["code"] == -2013
    c = bob.pb("DELETE", ORDER, {"symbol": "BTCUSDT", "orderId": oid})
    assert c.json() == {"code": -2011, "msg": "Unknown order sent."}
    wrong_symbol = alice.ccxt("GET", ORDER, {"symbol": "ETHUSDT", "orderId": oid})
    assert wrong_symbol.json()["code"] == -2013
    assert alice.ccxt("GET", ORDER, {"symbol": "BTCUSDT", "orderId": oid}).json()[
        "status"] == "NEW"


def test_order_test_validates_without_placing(gw: Gateway, alice: Signer) -> None:
    r = alice.pb("POST", "/api/v3/order/test", limit("BUY", "90.00", "0.1"))
    assert r.status_code == 200 and r.json() == {}
    bad = alice.pb("POST", "/api/v3/order/test", limit("BUY", "90.00", "0.01"))
    assert bad.json() == {"code": -1013, "msg": "Filter failure: NOTIONAL"}
    assert alice.ccxt("GET", "/api/v3/openOrders").json() == []
    assert gw.core.engine.next_order_id == 1


def test_my_trades_filters(gw: Gateway, alice: Signer, bob: Signer) -> None:
    for _ in range(3):
        alice.ccxt("POST", ORDER, limit("SELL", "100.00", "0.1"))
        gw.clock.advance(1000)
        bob.ccxt("POST", ORDER, limit("BUY", "100.00", "0.1"))
    ids = [t["id"] for t in alice.ccxt("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"}).json()]
    assert ids == [1, 2, 3]
    assert [t["id"] for t in alice.ccxt("GET", "/api/v3/myTrades", {
        "symbol": "BTCUSDT", "fromId": 2, "limit": 1}).json()] == [2]
    assert [t["id"] for t in alice.ccxt("GET", "/api/v3/myTrades", {
        "symbol": "BTCUSDT", "limit": 2}).json()] == [2, 3]
    t0 = gw.clock() - 500
    assert [t["id"] for t in alice.ccxt("GET", "/api/v3/myTrades", {
        "symbol": "BTCUSDT", "startTime": t0}).json()] == [3]


def test_order_test_refuses_what_the_core_would_by_the_symbols_state(
        gw: Gateway, alice: Signer, bob: Signer) -> None:
    """order/test answers as order would (minus balances): the price band around the
    last trade, a LIMIT_MAKER that would take, a symbol that is not trading."""
    from chainbook.domain.commands import AddSymbol, SetSymbolStatus
    from chainbook.domain.enums import SymbolStatus
    from chainbook.domain.instruments import SymbolSpec

    gw.core.apply(AddSymbol(SymbolSpec.from_decimal(
        "ETHBTC", "ETH", "BTC", base_decimals=8, quote_decimals=8, tick_size="0.0001",
        lot_size="0.01", band_bps=500)))
    sell = {"symbol": "ETHBTC", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
            "price": "0.0500", "quantity": "1.00"}
    assert alice.ccxt("POST", ORDER, sell).status_code == 200
    assert bob.ccxt("POST", ORDER, {**sell, "side": "BUY"}).json()["status"] == "FILLED"
    alice.ccxt("POST", ORDER, {**sell, "price": "0.0510"})  # rests: best ask 0.0510
    bad = [{**sell, "side": "BUY", "price": "0.0600"},  # 20% over the last trade
           {**sell, "side": "BUY", "type": "LIMIT_MAKER", "price": "0.0510"}]
    ok = {**sell, "side": "BUY", "price": "0.0490"}
    for params in bad:
        test = bob.ccxt("POST", ORDER + "/test", params)
        real = bob.ccxt("POST", ORDER, params)
        assert test.status_code == real.status_code == 400, params
        assert test.json() == real.json(), params
    assert bob.ccxt("POST", ORDER + "/test", ok).json() == {}
    gw.core.apply(SetSymbolStatus("ETHBTC", SymbolStatus.HALTED))
    test = bob.ccxt("POST", ORDER + "/test", ok)
    real = bob.ccxt("POST", ORDER, ok)
    assert test.status_code == real.status_code == 400
    assert test.json() == real.json()


def test_a_zero_quote_amount_is_a_notional_failure(gw: Gateway, bob: Signer) -> None:
    r = bob.ccxt("POST", ORDER, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                 "quoteOrderQty": "0"})
    assert r.status_code == 400
    assert r.json() == {"code": -1013, "msg": "Filter failure: NOTIONAL"}
    finer = bob.ccxt("POST", ORDER, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                     "quoteOrderQty": "0.000000001"})
    assert finer.json()["code"] == -1111  # too many decimals stays a precision error
