"""Request parameters -> commands and typed values, with Binance's validation errors.

Pure: every function takes the merged parameter dict (auth.parse_params) and returns a
value or raises ``ApiError`` with the code and message Binance uses (-1100 illegal
characters, -1102 mandatory parameter, -1105 empty, -1106 not required, -1111 precision,
-1115/-1116/-1117 bad enum, -1121 bad symbol, -1013 filter failure).  Decimal strings
become ticks/lots/units through ``chainbook.domain.units``; a value that is not a whole
number of steps is refused (never rounded).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from chainbook.domain.commands import PlaceOrder
from chainbook.domain.enums import OrderType, Side, Stp, TimeInForce
from chainbook.domain.instruments import SymbolSpec
from chainbook.domain.units import UnitError, price_ticks, qty_lots, quote_units
from chainbook.gateway import errors
from chainbook.gateway.auth import Params
from chainbook.gateway.context import Core

SYMBOL_LEGAL = "^[A-Z0-9-_.]{1,20}$"
SYMBOLS_LEGAL = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
CLIENT_ID_LEGAL = "^[\\.A-Z\\:/a-z0-9_-]{1,36}$"
DECIMAL_LEGAL = "^([0-9]{1,20})(\\.[0-9]{1,20})?$"
INT_LEGAL = "^[0-9]{1,20}$"
_SYMBOL_RE = re.compile(r"[A-Z0-9\-_.]{1,20}")
_CLIENT_ID_RE = re.compile(r"[.A-Za-z0-9:/_\-]{1,36}")
_INT_RE = re.compile(r"[0-9]{1,19}")
_UNSUPPORTED = ("stopPrice", "icebergQty", "trailingDelta")
RESP_TYPES = ("ACK", "RESULT", "FULL")


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A parsed POST /api/v3/order: the command and the response type asked for."""

    cmd: PlaceOrder
    resp_type: str


@dataclass(frozen=True, slots=True)
class OrderRef:
    """Which order a query or cancel names, and the cancel's own client id if given."""

    order_id: int | None
    client_id: str | None
    new_client_id: str | None = None


# --- plain values ----------------------------------------------------------------------

def optional(params: Params, name: str) -> str | None:
    """The value of ``name``, None if absent; -1105 if sent empty."""
    value = params.get(name)
    if value is not None and value == "":
        raise errors.param_empty(name)
    return value


def required(params: Params, name: str) -> str:
    """The value of ``name``; -1102 if absent or empty."""
    value = params.get(name)
    if not value:
        raise errors.mandatory(name)
    return value


def int_param(params: Params, name: str, lo: int = 0, hi: int = 2**63 - 1) -> int | None:
    """An optional non-negative integer; -1100 if malformed, -1130 outside [lo, hi]."""
    text = optional(params, name)
    if text is None:
        return None
    if not _INT_RE.fullmatch(text):
        raise errors.illegal_chars(name, INT_LEGAL)
    value = int(text)
    if not lo <= value <= hi:
        raise errors.invalid_value(name)
    return value


def limit_param(params: Params, default: int, hi: int, name: str = "limit") -> int:
    """``limit`` in 1..hi (default ``default``)."""
    value = int_param(params, name, 1, hi)
    return default if value is None else value


def bool_param(params: Params, name: str) -> bool:
    """An optional ``true``/``false`` flag (case-insensitive), default false."""
    text = optional(params, name)
    if text is None:
        return False
    low = text.lower()
    if low not in ("true", "false"):
        raise errors.illegal_chars(name, "^(true|false)$")
    return low == "true"


def client_id(params: Params, name: str) -> str | None:
    """An optional client order id of up to 36 of ``[.A-Za-z0-9:/_-]``."""
    value = optional(params, name)
    if value is None:
        return None
    if not _CLIENT_ID_RE.fullmatch(value):
        raise errors.illegal_chars(name, CLIENT_ID_LEGAL)
    return value


def symbol_name(text: str, name: str = "symbol") -> str:
    """A well-formed symbol name (-1100 otherwise)."""
    if not _SYMBOL_RE.fullmatch(text):
        raise errors.illegal_chars(name, SYMBOL_LEGAL)
    return text


def spec_of(core: Core, text: str) -> SymbolSpec:
    """The listed symbol ``text``; -1100 if malformed, -1121 if not listed."""
    spec = core.specs.get(symbol_name(text))
    if spec is None:
        raise errors.bad_symbol()
    return spec


def symbol(core: Core, params: Params) -> SymbolSpec:
    """The mandatory ``symbol`` parameter as a listed spec."""
    return spec_of(core, required(params, "symbol"))


def symbols(core: Core, params: Params) -> list[SymbolSpec] | None:
    """``symbol`` -> [spec]; ``symbols`` (a JSON array) -> specs; neither -> None."""
    one = optional(params, "symbol")
    many = optional(params, "symbols")
    if one is not None and many is not None:
        raise errors.bad_combination()
    if one is not None:
        return [spec_of(core, one)]
    if many is None:
        return None
    try:
        names = json.loads(many)
    except ValueError:
        raise errors.illegal_chars("symbols", SYMBOLS_LEGAL) from None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise errors.illegal_chars("symbols", SYMBOLS_LEGAL)
    return [spec_of(core, n) for n in dict.fromkeys(names)]


def _enum(params: Params, name: str, allowed: tuple[str, ...],
          bad: Callable[[], errors.ApiError]) -> str:
    value = required(params, name)
    if value not in allowed:
        raise bad()
    return value


def _amount(param: str, text: str, convert: Callable[[str], int], filter_name: str) -> int:
    try:
        return convert(text)
    except UnitError as exc:
        if exc.kind == "format":
            raise errors.illegal_chars(param, DECIMAL_LEGAL) from None
        if filter_name == "" and exc.kind == "range" and param == "quoteOrderQty":
            raise errors.filter_failure("NOTIONAL") from None  # zero or out of range
        if filter_name == "":
            raise errors.too_much_precision(param) from None
        raise errors.filter_failure(filter_name) from None


# --- orders ----------------------------------------------------------------------------

# the order parameters each type requires (MARKET: quantity or quoteOrderQty, one_of)
_NEEDED = {OrderType.LIMIT: ("timeInForce", "quantity", "price"),
           OrderType.LIMIT_MAKER: ("quantity", "price"), OrderType.MARKET: ()}


def new_order(params: Params, account: int, spec: SymbolSpec, client: str | None) -> NewOrder:
    """POST /api/v3/order -> PlaceOrder; ``client`` is the id to use when none is sent."""
    side = Side[_enum(params, "side", ("BUY", "SELL"), errors.bad_side)]
    kind = OrderType[_enum(params, "type", ("LIMIT", "MARKET", "LIMIT_MAKER"),
                           errors.bad_order_type)]
    for name in _UNSUPPORTED:
        if name in params:
            raise errors.not_required(name)
    for name in _NEEDED[kind]:  # a mandatory one sent empty: -1102, as if not sent
        if params.get(name) == "":
            raise errors.mandatory(name)
    tif_text = optional(params, "timeInForce")
    qty_text = optional(params, "quantity")
    quote_text = optional(params, "quoteOrderQty")
    price_text = optional(params, "price")
    qty = price = quote = None
    if kind == OrderType.MARKET:
        if tif_text is not None:
            raise errors.not_required("timeInForce")
        if price_text is not None:
            raise errors.not_required("price")
        if qty_text is None and quote_text is None:
            raise errors.one_of("quantity", "quoteOrderQty")
        if qty_text is not None and quote_text is not None:
            raise errors.not_required("quoteOrderQty")
        tif = TimeInForce.IOC
    else:
        if kind == OrderType.LIMIT:
            if tif_text is None:
                raise errors.mandatory("timeInForce")
            if tif_text not in ("GTC", "IOC", "FOK"):
                raise errors.bad_tif()
            tif = TimeInForce[tif_text]
        else:
            if tif_text is not None:
                raise errors.not_required("timeInForce")
            tif = TimeInForce.GTC
        if quote_text is not None:
            raise errors.not_required("quoteOrderQty")
        if qty_text is None:
            raise errors.mandatory("quantity")
        if price_text is None:
            raise errors.mandatory("price")
        price = _amount("price", price_text, lambda t: price_ticks(spec, t), "PRICE_FILTER")
    if qty_text is not None:
        qty = _amount("quantity", qty_text, lambda t: qty_lots(spec, t), "LOT_SIZE")
    if quote_text is not None:
        quote = _amount("quoteOrderQty", quote_text, lambda t: quote_units(spec, t), "")
    stp_text = optional(params, "selfTradePreventionMode")
    stp = Stp.DEFAULT
    if stp_text is not None:
        if stp_text not in ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"):
            raise errors.invalid_value("selfTradePreventionMode")
        stp = Stp[stp_text]
    resp = optional(params, "newOrderRespType")
    if resp is None:
        resp = "ACK" if kind == OrderType.LIMIT_MAKER else "FULL"
    elif resp not in RESP_TYPES:
        raise errors.illegal_chars("newOrderRespType", "^(ACK|RESULT|FULL)$")
    cid = client_id(params, "newClientOrderId") or client
    cmd = PlaceOrder(account, spec.name, side, kind, qty, price, tif, cid, quote, stp)
    return NewOrder(cmd, resp)


def check_filters(cmd: PlaceOrder, spec: SymbolSpec) -> None:
    """The static filters of ``spec`` (what order/test checks without the book)."""
    if cmd.qty is not None and (cmd.qty < spec.min_qty or (spec.max_qty
                                                          and cmd.qty > spec.max_qty)):
        raise errors.filter_failure("LOT_SIZE")
    if cmd.price is not None:
        if cmd.price < spec.min_price or (spec.max_price and cmd.price > spec.max_price):
            raise errors.filter_failure("PRICE_FILTER")
    notional = None
    if cmd.price is not None and cmd.qty is not None:
        notional = cmd.price * cmd.qty * spec.quote_per_tick_lot
    elif cmd.quote_qty is not None:
        notional = cmd.quote_qty
    if notional is not None and (notional < spec.min_notional or (
            spec.max_notional and notional > spec.max_notional)):
        raise errors.filter_failure("NOTIONAL")


def order_ref(params: Params, cancel: bool = False) -> OrderRef:
    """``orderId`` or ``origClientOrderId`` (-1102 if neither), plus newClientOrderId for
    a cancel."""
    oid = int_param(params, "orderId")
    orig = client_id(params, "origClientOrderId")
    if oid is None and orig is None:
        raise errors.one_of("origClientOrderId", "orderId")
    new = client_id(params, "newClientOrderId") if cancel else None
    return OrderRef(oid, orig, new)


def time_range(params: Params) -> tuple[int | None, int | None]:
    """Optional ``startTime``/``endTime`` (ms); -1128 if start is after end."""
    start = int_param(params, "startTime")
    end = int_param(params, "endTime")
    if start is not None and end is not None and start > end:
        raise errors.bad_combination()
    return start, end
