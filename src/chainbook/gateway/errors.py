"""Binance error codes and messages (specs/binance-compat.md section 5).

Every failure a REST or WebSocket client can see is an ``ApiError(http_status, code, msg)``;
the constructors below carry the exact Binance texts, because ccxt classifies errors by
message before code (``Account has insufficient balance ...`` is InsufficientFunds only
with that exact text).  ``reject_error`` maps the core's ``Reject`` reasons, which know
nothing about HTTP, to these errors.
"""

from __future__ import annotations

from chainbook.domain.enums import Reject

JsonError = dict[str, object]


class ApiError(Exception):
    """A Binance-style error: HTTP status plus body ``{"code": code, "msg": msg}``."""

    def __init__(self, http_status: int, code: int, msg: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{http_status} {code} {msg}")
        self.http_status = http_status
        self.code = code
        self.msg = msg
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> JsonError:
        """The JSON body Binance sends."""
        return {"code": self.code, "msg": self.msg}


def _bad(code: int, msg: str) -> ApiError:
    return ApiError(400, code, msg)


# --- generic (10xx) --------------------------------------------------------------------

def unknown() -> ApiError:
    """-1000: an internal failure we did not foresee (HTTP 500)."""
    return ApiError(500, -1000, "An unknown error occured while processing the request.")


def unknown_path(path: str) -> ApiError:
    """-1000 with HTTP 404: a path outside the supported subset."""
    return ApiError(404, -1000, f"Unknown path {path}.")


def method_not_allowed(method: str, path: str) -> ApiError:
    """-1000 with HTTP 405: a known path called with the wrong method."""
    return ApiError(405, -1000, f"Method {method} is not allowed on {path}.")


def disconnected() -> ApiError:
    """-1001: the core is stopped or failed (HTTP 503)."""
    return ApiError(503, -1001, "Internal error; unable to process your request. "
                                "Please try again.")


def status_unknown() -> ApiError:
    """-1006 (HTTP 503): the core failed while making the command durable, which it may
    have done; the client must query before sending it again (docs/serve.md)."""
    return ApiError(503, -1006, "An unexpected response was received from the message "
                                "bus. Execution status unknown.")


def too_many_requests(ip: str, limit: int) -> ApiError:
    """-1003 with HTTP 429: request weight over the per-minute limit."""
    return ApiError(429, -1003, f"Too many requests; current limit of IP({ip}) request weight "
                                f"per 1 MINUTE is {limit}. Please use WebSocket Streams for "
                                "live updates to avoid polling the API.")


def ip_banned(until_ms: int) -> ApiError:
    """-1003 with HTTP 418: the IP kept sending after 429s and is banned."""
    return ApiError(418, -1003, f"Way too many requests; IP banned until {until_ms}.")


def too_many_orders(limit: int, interval: str) -> ApiError:
    """-1015 with HTTP 429: order rate over the limit (interval TEN_SECONDS or DAY)."""
    return ApiError(429, -1015, f"Too many new orders; current limit is {limit} orders per "
                                f"{interval}.")


def outside_recv_window() -> ApiError:
    """-1021: the timestamp is too old or too far in the future."""
    return _bad(-1021, "Timestamp for this request is outside of the recvWindow.")


def bad_signature() -> ApiError:
    """-1022: the HMAC does not match."""
    return _bad(-1022, "Signature for this request is not valid.")


# --- request issues (11xx) -------------------------------------------------------------

def illegal_chars(param: str, legal: str) -> ApiError:
    """-1100: a parameter has characters outside its legal range."""
    return _bad(-1100, f"Illegal characters found in parameter '{param}'; "
                       f"legal range is '{legal}'.")


def illegal_chars_anywhere() -> ApiError:
    """-1100: the query or body cannot be decoded at all."""
    return _bad(-1100, "Illegal characters found in a parameter.")


def malformed_pair() -> ApiError:
    """-1100: a query or body component that is not ``key=value``."""
    return _bad(-1100, "Illegal characters found in a parameter: every parameter must be "
                       "key=value.")


def duplicate_param() -> ApiError:
    """-1101: the same parameter was sent twice."""
    return _bad(-1101, "Duplicate values for a parameter detected.")


def too_many_params() -> ApiError:
    """-1101: far more parameters (or bytes) than any endpoint reads."""
    return _bad(-1101, "Too many parameters sent for this endpoint.")


def mandatory(param: str) -> ApiError:
    """-1102: a required parameter is missing, empty or malformed."""
    return _bad(-1102, f"Mandatory parameter '{param}' was not sent, was empty/null, "
                       "or malformed.")


def one_of(a: str, b: str) -> ApiError:
    """-1102: neither of two alternative parameters was sent."""
    return _bad(-1102, f"Param '{a}' or '{b}' must be sent, but both were empty/null!")


def param_empty(param: str) -> ApiError:
    """-1105: an optional parameter sent with an empty value."""
    return _bad(-1105, f"Parameter '{param}' was empty.")


def not_required(param: str) -> ApiError:
    """-1106: a parameter that this kind of request does not take."""
    return _bad(-1106, f"Parameter '{param}' sent when not required.")


def too_much_precision(param: str) -> ApiError:
    """-1111: more decimals than the asset allows."""
    return _bad(-1111, f"Parameter '{param}' has too much precision.")


def bad_tif() -> ApiError:
    """-1115."""
    return _bad(-1115, "Invalid timeInForce.")


def bad_order_type() -> ApiError:
    """-1116."""
    return _bad(-1116, "Invalid orderType.")


def bad_side() -> ApiError:
    """-1117."""
    return _bad(-1117, "Invalid side.")


def bad_interval() -> ApiError:
    """-1120: a kline interval we do not know."""
    return _bad(-1120, "Invalid interval.")


def bad_symbol() -> ApiError:
    """-1121: a well-formed symbol that is not listed."""
    return _bad(-1121, "Invalid symbol.")


def bad_listen_key() -> ApiError:
    """-1125: keepalive or close of a listenKey that does not exist."""
    return _bad(-1125, "This listenKey does not exist.")


def bad_combination() -> ApiError:
    """-1128: optional parameters that cannot be used together."""
    return _bad(-1128, "Combination of optional parameters invalid.")


def invalid_value(param: str) -> ApiError:
    """-1130: a parameter with a value outside what it accepts."""
    return _bad(-1130, f"Data sent for parameter '{param}' is not valid.")


def bad_recv_window() -> ApiError:
    """-1131."""
    return _bad(-1131, "recvWindow must be less than 60000")


def filter_failure(name: str) -> ApiError:
    """-1013: an exchange filter (LOT_SIZE, PRICE_FILTER, NOTIONAL, ...) refused it."""
    return _bad(-1013, f"Filter failure: {name}")


# --- order and key issues (20xx) -------------------------------------------------------

def order_rejected(msg: str) -> ApiError:
    """-2010: a new order was refused; ``msg`` decides how ccxt classifies it."""
    return _bad(-2010, msg)


INSUFFICIENT = "Account has insufficient balance for requested action."
WOULD_TAKE = "Order would immediately match and take."
DUPLICATE = "Duplicate order sent."
MARKET_CLOSED = "Market is closed."
BLOCKED = "This account may not place or cancel orders."
UNSUPPORTED = "Unsupported order combination."


def cancel_rejected() -> ApiError:
    """-2011: cancel of an unknown, foreign or closed order."""
    return _bad(-2011, "Unknown order sent.")


def no_such_order() -> ApiError:
    """-2013: query of an order this account does not have."""
    return _bad(-2013, "Order does not exist.")


def bad_api_key_format() -> ApiError:
    """-2014 (HTTP 401): the X-MBX-APIKEY header is missing or malformed."""
    return ApiError(401, -2014, "API-key format invalid.")


def rejected_api_key() -> ApiError:
    """-2015 (HTTP 401): unknown key, or the key lacks the permission."""
    return ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")


# --- core rejects ----------------------------------------------------------------------

_FILTERS: dict[Reject, str] = {
    Reject.QTY_OUT_OF_RANGE: "LOT_SIZE",
    Reject.INVALID_QUANTITY: "LOT_SIZE",
    Reject.INVALID_PRICE: "PRICE_FILTER",
    Reject.PRICE_OUT_OF_BAND: "PERCENT_PRICE_BY_SIDE",
    Reject.NOTIONAL_OUT_OF_RANGE: "NOTIONAL",
    Reject.TOO_MANY_OPEN_ORDERS: "MAX_NUM_ORDERS",
}

_NEW_ORDER: dict[Reject, str] = {
    Reject.INSUFFICIENT_BALANCE: INSUFFICIENT,
    Reject.WOULD_TAKE: WOULD_TAKE,
    Reject.DUPLICATE_CLIENT_ORDER_ID: DUPLICATE,
    Reject.SYMBOL_NOT_TRADING: MARKET_CLOSED,
    Reject.ACCOUNT_BLOCKED: BLOCKED,
    Reject.INVALID_ORDER_PARAMS: UNSUPPORTED,
    Reject.AMEND_INVALID: UNSUPPORTED,
}


def reject_error(reason: Reject, *, query: bool = False) -> ApiError:
    """The Binance error for a core reject. UNKNOWN_ORDER is -2011 for a cancel (default)
    and -2013 when ``query`` is set."""
    if reason == Reject.UNKNOWN_ORDER:
        return no_such_order() if query else cancel_rejected()
    if reason == Reject.UNKNOWN_SYMBOL:
        return bad_symbol()
    name = _FILTERS.get(reason)
    if name is not None:
        return filter_failure(name)
    msg = _NEW_ORDER.get(reason)
    if msg is not None:
        return order_rejected(msg)
    if reason == Reject.INVALID_AMOUNT:
        return invalid_value("amount")
    # admin and balance-command rejects never come from the trading API
    return _bad(-1000, f"Request rejected: {reason.name}.")
