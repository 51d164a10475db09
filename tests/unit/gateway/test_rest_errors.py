"""Binance error codes and exact messages (spec section 5); a rejected order changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from restfixtures import UNIT, Gateway, Signer

from chainbook.domain.commands import SetKillSwitch, SetSymbolStatus
from chainbook.domain.enums import Reject, SymbolStatus
from chainbook.gateway.errors import reject_error

ORDER = "/api/v3/order"
BASE = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.1", "price": "100.00"}


def _with(**changes: Any) -> dict[str, Any]:
    out = {**BASE, **changes}
    return {k: v for k, v in out.items() if v is not None}


INSUFFICIENT = "Account has insufficient balance for requested action."


@pytest.mark.parametrize("params, code, msg", [
    (_with(symbol="NOPEUSDT"), -1121, "Invalid symbol."),
    (_with(symbol="btc usdt"), -1100, None),
    (_with(quantity="0.000001"), -1013, "Filter failure: LOT_SIZE"),
    (_with(price="100.001"), -1013, "Filter failure: PRICE_FILTER"),
    (_with(quantity="0.01"), -1013, "Filter failure: NOTIONAL"),
    (_with(quantity="1000"), -2010, INSUFFICIENT),
    (_with(side="HOLD"), -1117, "Invalid side."),
    (_with(type="STOP_LOSS"), -1116, "Invalid orderType."),
    (_with(timeInForce="GTX"), -1115, "Invalid timeInForce."),
    (_with(timeInForce=None), -1102, None),
    (_with(price=None), -1102, "Mandatory parameter 'price' was not sent, was empty/null, "
                              "or malformed."),
    (_with(quantity="1e3"), -1100, None),
    (_with(quantity="-1"), -1100, None),
    (_with(type="MARKET", price=None, timeInForce=None, quantity=None), -1102,
     "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"),
    (_with(type="MARKET", timeInForce=None), -1106,
     "Parameter 'price' sent when not required."),
    (_with(type="LIMIT_MAKER"), -1106, "Parameter 'timeInForce' sent when not required."),
    (_with(type="MARKET", price=None, timeInForce=None, quantity=None,
           quoteOrderQty="1.000000001"), -1111, None),
    (_with(newClientOrderId="x" * 37), -1100, None),
    (_with(newClientOrderId="bad id"), -1100, None),
    (_with(stopPrice="1"), -1106, None),
    (_with(newOrderRespType="ALL"), -1100, None),
    (_with(selfTradePreventionMode="SOMETIMES"), -1130, None),
    (_with(newClientOrderId=""), -1105, None),
    # a mandatory parameter sent empty is -1102 (optional ones: -1105, above)
    (_with(price=""), -1102, "Mandatory parameter 'price' was not sent, was empty/null, "
                             "or malformed."),
    (_with(timeInForce=""), -1102, None), (_with(quantity=""), -1102, None),
    (_with(type="LIMIT_MAKER", timeInForce=None, quantity=""), -1102, None),
    # beyond Binance's number format (20 decimals), and a near-multiple of the tick
    (_with(price="100.009999999999999999999999999"), -1100, None),
    (_with(price="100.00999999999999999999"), -1013, "Filter failure: PRICE_FILTER"),
])
def test_new_order_errors_change_nothing(gw: Gateway, alice: Signer, params: dict[str, Any],
                                         code: int, msg: str | None) -> None:
    before = (gw.balance(gw.alice, "USDT"), gw.market.depth("BTCUSDT", 100),
              gw.core.engine.next_order_id)
    r = alice.ccxt("POST", ORDER, params)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code
    if msg is not None:
        assert r.json()["msg"] == msg
    assert set(r.json()) == {"code", "msg"}
    after = (gw.balance(gw.alice, "USDT"), gw.market.depth("BTCUSDT", 100),
             gw.core.engine.next_order_id)
    assert after == before
    assert alice.ccxt("GET", "/api/v3/openOrders").json() == []


def test_core_rejects_map_to_binance_errors(gw: Gateway, alice: Signer, bob: Signer) -> None:
    alice.ccxt("POST", ORDER, _with(newClientOrderId="dup"))
    dup = alice.ccxt("POST", ORDER, _with(newClientOrderId="dup"))
    assert dup.json() == {"code": -2010, "msg": "Duplicate order sent."}
    gw.core.apply(SetSymbolStatus("ETHUSDT", SymbolStatus.HALTED))
    closed = alice.ccxt("POST", ORDER, _with(symbol="ETHUSDT", quantity="1", price="10.00"))
    assert closed.json() == {"code": -2010, "msg": "Market is closed."}
    gw.core.apply(SetKillSwitch(gw.bob.account, True))
    blocked = bob.ccxt("POST", ORDER, BASE)
    assert blocked.json() == {"code": -2010,
                              "msg": "This account may not place or cancel orders."}
    depth_before = gw.market.depth("BTCUSDT", 100)
    # a rejected order leaves balances and the book as they were
    usdt = gw.balance(gw.bob, "USDT")
    assert bob.ccxt("POST", ORDER, BASE).status_code == 400
    assert gw.balance(gw.bob, "USDT") == usdt == (100_000 * UNIT, 0)
    assert gw.market.depth("BTCUSDT", 100) == depth_before


@pytest.mark.parametrize("reason, code, msg", [
    (Reject.INSUFFICIENT_BALANCE, -2010, INSUFFICIENT),
    (Reject.WOULD_TAKE, -2010, "Order would immediately match and take."),
    (Reject.QTY_OUT_OF_RANGE, -1013, "Filter failure: LOT_SIZE"),
    (Reject.INVALID_QUANTITY, -1013, "Filter failure: LOT_SIZE"),
    (Reject.INVALID_PRICE, -1013, "Filter failure: PRICE_FILTER"),
    (Reject.PRICE_OUT_OF_BAND, -1013, "Filter failure: PERCENT_PRICE_BY_SIDE"),
    (Reject.NOTIONAL_OUT_OF_RANGE, -1013, "Filter failure: NOTIONAL"),
    (Reject.TOO_MANY_OPEN_ORDERS, -1013, "Filter failure: MAX_NUM_ORDERS"),
    (Reject.DUPLICATE_CLIENT_ORDER_ID, -2010, "Duplicate order sent."),
    (Reject.SYMBOL_NOT_TRADING, -2010, "Market is closed."),
    (Reject.ACCOUNT_BLOCKED, -2010, "This account may not place or cancel orders."),
    (Reject.UNKNOWN_SYMBOL, -1121, "Invalid symbol."),
    (Reject.UNKNOWN_ORDER, -2011, "Unknown order sent."),
])
def test_reject_error_table(reason: Reject, code: int, msg: str) -> None:
    err = reject_error(reason)
    assert (err.http_status, err.code, err.msg) == (400, code, msg)


def test_every_reject_maps_to_a_4xx() -> None:
    for reason in Reject:
        err = reject_error(reason)
        assert 400 <= err.http_status < 500 and err.code < 0 and err.msg
    assert reject_error(Reject.UNKNOWN_ORDER, query=True).code == -2013


def test_unknown_path_and_method(client) -> None:
    r = client.get("/sapi/v1/asset/tradeFee")
    assert r.status_code == 404
    assert r.json() == {"code": -1000, "msg": "Unknown path /sapi/v1/asset/tradeFee."}
    r = client.patch("/api/v3/order")
    assert r.status_code == 405 and r.json()["code"] == -1000


def test_core_down_is_1001(gw: Gateway, alice: Signer) -> None:
    gw.core.stopped = True
    r = alice.ccxt("POST", ORDER, BASE)
    assert r.status_code == 503 and r.json()["code"] == -1001


def test_a_command_whose_commit_failed_is_status_unknown(gw: Gateway, alice: Signer) -> None:
    """Not "try again" (-1001): the order may be durable, and a retry would place it
    twice.  -1006 says its status is unknown (ccxt: OperationFailed, as for -1001)."""
    gw.core.failing = True
    r = alice.ccxt("POST", ORDER, BASE)
    assert r.status_code == 503
    assert r.json() == {"code": -1006, "msg": "An unexpected response was received from "
                                              "the message bus. Execution status unknown."}


def test_query_param_errors(gw: Gateway, alice: Signer) -> None:
    none = alice.ccxt("GET", ORDER, {"symbol": "BTCUSDT"})
    assert none.json() == {"code": -1102, "msg": "Param 'origClientOrderId' or 'orderId' must "
                                                 "be sent, but both were empty/null!"}
    bad_id = alice.ccxt("GET", ORDER, {"symbol": "BTCUSDT", "orderId": "12x"})
    assert bad_id.json()["code"] == -1100
    big = alice.ccxt("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT", "limit": 5000})
    assert big.json()["code"] == -1130
    no_symbol = alice.ccxt("GET", "/api/v3/allOrders")
    assert no_symbol.json()["code"] == -1102


class _Broken:
    def depth(self, symbol: str, limit: int) -> dict[str, object]:
        raise ZeroDivisionError("a bug")


def test_an_unexpected_exception_is_a_json_500(gw: Gateway, client) -> None:
    gw.ctx.market = _Broken()  # type: ignore[assignment]
    r = client.get("/api/v3/depth", params={"symbol": "BTCUSDT"})
    assert r.status_code == 500
    assert r.json() == {"code": -1000,
                        "msg": "An unknown error occured while processing the request."}
