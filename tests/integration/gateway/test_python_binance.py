"""python-binance against a real server: the sync Client, errors, and the socket manager's
trade, depth and user (WS-API) sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from binance.exceptions import BinanceAPIException
from gwclient import Server, fee, own_event_loop, pb_async_client, pb_client, pb_socket_manager

SYM = "BTCUSDT"
TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def _loop() -> Iterator[None]:
    """python-binance's sync Client grabs the current event loop: give it one we close."""
    with own_event_loop():
        yield


def _balances(account: dict[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
    return {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in account["balances"]}


def test_exchange_info_and_order_book(server: Server) -> None:
    client = pb_client(server)
    info = client.get_exchange_info()
    symbols = {s["symbol"]: s for s in info["symbols"]}
    assert {"BTCUSDT", "ETHUSDT", "ETHBTC"} <= set(symbols)
    filters = {f["filterType"]: f for f in symbols[SYM]["filters"]}
    assert Decimal(filters["PRICE_FILTER"]["tickSize"]) == Decimal("0.01")
    assert Decimal(filters["LOT_SIZE"]["stepSize"]) == Decimal("0.00001")
    assert client.get_symbol_info(SYM)["baseAsset"] == "BTC"
    book = client.get_order_book(symbol=SYM)
    assert isinstance(book["lastUpdateId"], int) and "bids" in book and "asks" in book


def test_order_lifecycle_and_trades(clean: Server) -> None:
    a, b = pb_client(clean, "demo1"), pb_client(clean, "demo2")
    a0, b0 = _balances(a.get_account()), _balances(b.get_account())
    order = a.create_order(symbol=SYM, side="SELL", type="LIMIT", timeInForce="GTC",
                           quantity="0.00250", price="30002.50")
    assert order["status"] == "NEW" and order["symbol"] == SYM
    oid = order["orderId"]
    assert a.get_order(symbol=SYM, orderId=oid)["status"] == "NEW"
    assert [o["orderId"] for o in a.get_open_orders(symbol=SYM)] == [oid]
    assert _balances(a.get_account())["BTC"][1] == a0["BTC"][1] + Decimal("0.0025")

    taker = b.create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                           quantity="0.00100", price="30002.50")
    assert taker["status"] == "FILLED" and len(taker["fills"]) == 1
    fill = taker["fills"][0]
    price, qty = Decimal("30002.50"), Decimal("0.001")
    assert (Decimal(fill["price"]), Decimal(fill["qty"])) == (price, qty)
    assert Decimal(fill["commission"]) == fee(price, qty) and fill["commissionAsset"] == "USDT"

    canceled = a.cancel_order(symbol=SYM, orderId=oid)  # parameters in the DELETE body
    assert canceled["status"] == "CANCELED" and Decimal(canceled["executedQty"]) == qty
    assert a.get_open_orders(symbol=SYM) == []
    mine = [o for o in a.get_all_orders(symbol=SYM) if o["orderId"] == oid]
    assert len(mine) == 1 and mine[0]["status"] == "CANCELED"

    trades = a.get_my_trades(symbol=SYM)
    assert trades[-1]["id"] == fill["tradeId"] and trades[-1]["orderId"] == oid
    assert trades[-1]["isMaker"] is True and trades[-1]["isBuyer"] is False
    assert b.get_my_trades(symbol=SYM)[-1]["id"] == fill["tradeId"]

    a1, b1 = _balances(a.get_account()), _balances(b.get_account())
    assert a1["BTC"] == (a0["BTC"][0] - qty, a0["BTC"][1])
    assert a1["USDT"][0] == a0["USDT"][0] + price * qty - fee(price, qty)
    assert b1["USDT"][0] == b0["USDT"][0] - price * qty - fee(price, qty)


@pytest.mark.parametrize(("params", "code"), [
    ({"symbol": "NOPE", "quantity": "0.001", "price": "30000"}, -1121),
    ({"symbol": SYM, "quantity": "0.001", "price": "30000.001"}, -1013),
    ({"symbol": SYM, "quantity": "100", "price": "30000"}, -2010),
])
def test_order_errors_have_binance_codes(server: Server, params: dict[str, str],
                                         code: int) -> None:
    client = pb_client(server)
    with pytest.raises(BinanceAPIException) as err:
        client.create_order(side="BUY", type="LIMIT", timeInForce="GTC", **params)
    assert err.value.code == code and err.value.status_code == 400


def test_query_errors_have_binance_codes(server: Server) -> None:
    client = pb_client(server)
    with pytest.raises(BinanceAPIException) as err:
        client.get_order(symbol=SYM, orderId=987654321)
    assert err.value.code == -2013
    with pytest.raises(BinanceAPIException) as err:
        client.cancel_order(symbol=SYM, orderId=987654321)
    assert err.value.code == -2011
    bad = pb_client(server)
    bad.API_SECRET = "z" * 64
    with pytest.raises(BinanceAPIException) as err:
        bad.get_account()
    assert err.value.code == -1022


async def _recv(socket: Any) -> dict[str, Any]:
    msg = await asyncio.wait_for(socket.recv(), TIMEOUT)
    assert msg.get("e") != "error", msg
    return msg


async def _sockets(srv: Server) -> None:
    a = await pb_async_client(srv, "demo1")
    b = await pb_async_client(srv, "demo2")
    try:
        bm = pb_socket_manager(srv, a)
        trade_socket, depth_socket = bm.trade_socket(SYM), bm.depth_socket(SYM)
        for socket in (trade_socket, depth_socket, a.ws_api):
            socket.TIMEOUT = 0.5  # the read timeout bounds how long leaving the block takes
        async with trade_socket as trades, depth_socket as depth:
            async with bm.user_socket() as user:  # WS-API userDataStream.subscribe.signature
                await asyncio.sleep(0.2)  # the market sockets connect in the background
                rest = await a.create_order(symbol=SYM, side="SELL", type="LIMIT",
                                            timeInForce="GTC", quantity="0.00111",
                                            price="30003.00", newClientOrderId="pb-user-1")
                report = await _recv(user)
                while report.get("e") != "executionReport":
                    report = await _recv(user)
                assert (report["i"], report["c"], report["x"], report["X"]) == (
                    rest["orderId"], "pb-user-1", "NEW", "NEW")
                taker = await b.create_order(symbol=SYM, side="BUY", type="LIMIT",
                                             timeInForce="GTC", quantity="0.00111",
                                             price="30003.00")
                seen = []
                while not (seen and seen[-1].get("X") == "FILLED"):
                    seen.append(await _recv(user))
                fill = seen[-1]
                assert fill["x"] == "TRADE" and fill["t"] == taker["fills"][0]["tradeId"]
                assert fill["m"] is True and Decimal(fill["l"]) == Decimal("0.00111")
            trade = await _recv(trades)
            while trade["t"] != taker["fills"][0]["tradeId"]:
                trade = await _recv(trades)
            assert trade["e"] == "trade" and Decimal(trade["p"]) == Decimal("30003")
            diff = await _recv(depth)
            assert diff["e"] == "depthUpdate" and diff["s"] == SYM and diff["U"] <= diff["u"]
    finally:
        await a.close_connection()
        await b.close_connection()


def test_trade_depth_and_user_sockets(clean: Server) -> None:
    asyncio.run(_sockets(clean))
