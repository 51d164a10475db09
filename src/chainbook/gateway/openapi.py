"""OpenAPI 3.0 description of the REST API, served at ``GET /openapi.json``.

Written by hand from specs/binance-compat.md: parameters per endpoint, the security
schemes (API key header, HMAC signature) and the Binance error body.  ``rest.py`` passes
its route table in, so a route without a description here still appears (and the unit
tests check that every route has one).
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

_S, _I, _B = "string", "integer", "boolean"

# (name, type, required, description)
Param = tuple[str, str, bool, str]
_SYMBOL: Param = ("symbol", _S, True, "Upper-case symbol id, e.g. BTCUSDT")
_SIGNED: list[Param] = [
    ("timestamp", _I, True, "Client time in ms; accepted within recvWindow of server time"),
    ("recvWindow", _I, False, "ms, default 5000, at most 60000"),
    ("signature", _S, True, "hex HMAC-SHA256 of the raw query string + raw body"),
]
_ORDER_REF: list[Param] = [
    _SYMBOL, ("orderId", _I, False, "order id (or origClientOrderId)"),
    ("origClientOrderId", _S, False, "client order id (or orderId)"),
]
_LIMIT: Param = ("limit", _I, False, "number of rows, 1..1000 (default 500)")
_TIMES: list[Param] = [("startTime", _I, False, "ms"), ("endTime", _I, False, "ms")]
_NEW_ORDER: list[Param] = [
    _SYMBOL, ("side", _S, True, "BUY or SELL"),
    ("type", _S, True, "LIMIT, LIMIT_MAKER or MARKET"),
    ("timeInForce", _S, False, "GTC, IOC or FOK; LIMIT only (mandatory there)"),
    ("quantity", _S, False, "base quantity, a multiple of LOT_SIZE.stepSize"),
    ("quoteOrderQty", _S, False, "MARKET only: quote amount to spend or receive"),
    ("price", _S, False, "LIMIT and LIMIT_MAKER: a multiple of PRICE_FILTER.tickSize"),
    ("newClientOrderId", _S, False, "up to 36 of [.A-Za-z0-9:/_-]"),
    ("newOrderRespType", _S, False, "ACK, RESULT or FULL (default FULL, ACK for LIMIT_MAKER)"),
    ("selfTradePreventionMode", _S, False, "NONE, EXPIRE_TAKER, EXPIRE_MAKER, EXPIRE_BOTH"),
]
_SYMBOLS: list[Param] = [
    ("symbol", _S, False, "one symbol: the reply is an object"),
    ("symbols", _S, False, 'JSON array, e.g. ["BTCUSDT","ETHUSDT"]: the reply is an array'),
]

DOCS: dict[tuple[str, str], tuple[str, list[Param]]] = {
    ("GET", "/api/v3/ping"): ("Test connectivity", []),
    ("GET", "/api/v3/time"): ("Server time", []),
    ("GET", "/api/v3/exchangeInfo"): ("Symbols, filters and rate limits", _SYMBOLS),
    ("GET", "/api/v3/depth"): ("Order book snapshot", [
        _SYMBOL, ("limit", _I, False, "levels, 1..5000 (default 100)")]),
    ("GET", "/api/v3/trades"): ("Recent trades", [_SYMBOL, _LIMIT]),
    ("GET", "/api/v3/aggTrades"): ("Aggregate trades", [
        _SYMBOL, _LIMIT, *_TIMES, ("fromId", _I, False, "first aggregate trade id")]),
    ("GET", "/api/v3/klines"): ("Candles", [
        _SYMBOL, ("interval", _S, True, "1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M"),
        _LIMIT, *_TIMES]),
    ("GET", "/api/v3/ticker/24hr"): ("24 h rolling statistics", _SYMBOLS),
    ("GET", "/api/v3/ticker/price"): ("Last price", _SYMBOLS),
    ("GET", "/api/v3/ticker/bookTicker"): ("Best bid and ask", _SYMBOLS),
    ("GET", "/api/v3/account"): ("Balances and permissions", [
        ("omitZeroBalances", _B, False, "leave out zero balances")]),
    ("POST", "/api/v3/order"): ("Place an order", _NEW_ORDER),
    ("POST", "/api/v3/order/test"): ("Validate an order without placing it", _NEW_ORDER),
    ("GET", "/api/v3/order"): ("Query one of your orders", _ORDER_REF),
    ("DELETE", "/api/v3/order"): ("Cancel one of your open orders", [
        *_ORDER_REF, ("newClientOrderId", _S, False, "id of the cancel")]),
    ("GET", "/api/v3/openOrders"): ("Your open orders", [
        ("symbol", _S, False, "one symbol, or all when absent")]),
    ("DELETE", "/api/v3/openOrders"): ("Cancel all your open orders on a symbol", [_SYMBOL]),
    ("GET", "/api/v3/allOrders"): ("Your orders, open and closed", [
        _SYMBOL, ("orderId", _I, False, "from this order id up"), *_TIMES, _LIMIT]),
    ("GET", "/api/v3/myTrades"): ("Your trades", [
        _SYMBOL, ("orderId", _I, False, "trades of this order only"), *_TIMES,
        ("fromId", _I, False, "from this trade id up"), _LIMIT]),
    ("POST", "/api/v3/userDataStream"): ("Create (or return) your listenKey", []),
    ("PUT", "/api/v3/userDataStream"): ("Keep a listenKey alive for 60 min", [
        ("listenKey", _S, True, "the key")]),
    ("DELETE", "/api/v3/userDataStream"): ("Close a listenKey", [
        ("listenKey", _S, True, "the key")]),
}

_ERROR_SCHEMA: Json = {
    "type": "object", "required": ["code", "msg"],
    "properties": {"code": {"type": "integer", "example": -1121},
                   "msg": {"type": "string", "example": "Invalid symbol."}},
}


def _operation(method: str, path: str, security: str) -> Json:
    summary, params = DOCS.get((method, path), (f"{method} {path}", []))
    if security == "SIGNED":
        params = [*params, *_SIGNED]
    error = {"description": "Binance error",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    op: Json = {
        "summary": summary,
        "parameters": [
            {"name": n, "in": "query", "required": req, "description": desc,
             "schema": {"type": t}} for n, t, req, desc in params
        ],
        "responses": {"200": {"description": "OK", "content": {"application/json": {}}},
                      "400": error, "401": error, "418": error, "429": error, "500": error},
    }
    if security == "SIGNED":
        op["security"] = [{"ApiKey": [], "Signature": []}]
    elif security == "KEY":
        op["security"] = [{"ApiKey": []}]
    return op


def openapi_document(routes: list[tuple[str, str, str]]) -> Json:
    """The OpenAPI 3.0 document for ``routes`` = [(method, path, security)]."""
    paths: dict[str, Json] = {}
    for method, path, security in routes:
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, security)
    return {
        "openapi": "3.0.3",
        "info": {"title": "chainbook Binance Spot v3 compatible API", "version": "1",
                 "description": "Parameters go in the query string or in a form body "
                                "(application/x-www-form-urlencoded), for every method."},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR_SCHEMA},
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-MBX-APIKEY"},
                "Signature": {"type": "apiKey", "in": "query", "name": "signature"},
            },
        },
    }
