"""Public market endpoints (specs/binance-compat.md section 3, rows 1-9): no key needed.

Each handler parses, reads ``ctx.market`` (or the core's symbol list) and returns JSON;
the request weights are Binance's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chainbook.domain.instruments import SymbolSpec
from chainbook.gateway import errors, ratelimit, schema
from chainbook.gateway.auth import Params
from chainbook.gateway.context import GatewayContext, symbol_status
from chainbook.gateway.endpoint import Call
from chainbook.gateway.exchangeinfo import exchange_info

KLINE_INTERVALS = frozenset({"1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h",
                             "8h", "12h", "1d", "3d", "1w", "1M"})
DEPTH_MAX = 5000
LIST_MAX = 1000


def _market(fn: Callable[[], Any]) -> Any:
    """Call a market query; an unknown symbol (KeyError) is -1121."""
    try:
        return fn()
    except KeyError:
        raise errors.bad_symbol() from None


async def ping(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/ping."""
    return {}


async def server_time(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/time."""
    return {"serverTime": ctx.clock_ms()}


async def exchange_info_(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/exchangeInfo (all symbols, ``symbol`` or ``symbols``)."""
    specs = schema.symbols(ctx.core, call.params)
    if specs is None:
        specs = list(ctx.core.specs.values())
    now = ctx.clock_ms()
    status = {s.name: symbol_status(ctx.core, s.name, now) for s in specs}
    return exchange_info(specs, status, now, ctx.limits.rate_limits())


def depth_limit(params: Params) -> int:
    return schema.limit_param(params, 100, DEPTH_MAX)


async def depth(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/depth."""
    spec = schema.symbol(ctx.core, call.params)
    limit = depth_limit(call.params)
    return _market(lambda: ctx.market.depth(spec.name, limit))


def depth_weight(params: Params) -> int:
    return ratelimit.depth_weight(depth_limit(params))


async def trades(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/trades."""
    spec = schema.symbol(ctx.core, call.params)
    limit = schema.limit_param(call.params, 500, LIST_MAX)
    return _market(lambda: ctx.market.trades(spec.name, limit))


async def agg_trades(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/aggTrades."""
    spec = schema.symbol(ctx.core, call.params)
    limit = schema.limit_param(call.params, 500, LIST_MAX)
    start, end = schema.time_range(call.params)
    from_id = schema.int_param(call.params, "fromId")
    return _market(lambda: ctx.market.agg_trades(spec.name, limit, start, end, from_id))


async def klines(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/klines."""
    spec = schema.symbol(ctx.core, call.params)
    interval = schema.required(call.params, "interval")
    if interval not in KLINE_INTERVALS:
        raise errors.bad_interval()
    limit = schema.limit_param(call.params, 500, LIST_MAX)
    start, end = schema.time_range(call.params)
    try:
        return _market(lambda: ctx.market.klines(spec.name, interval, limit, start, end))
    except ValueError:
        raise errors.bad_interval() from None


def _per_symbol(ctx: GatewayContext, call: Call,
                query: Callable[[str], Any]) -> Any:
    """One object for ``symbol``, an array for ``symbols`` or for every symbol."""
    specs = schema.symbols(ctx.core, call.params)
    if specs is not None and "symbol" in call.params:
        return _market(lambda: query(specs[0].name))
    chosen: list[SymbolSpec] = specs if specs is not None else list(ctx.core.specs.values())
    try:
        return [query(s.name) for s in chosen]
    except KeyError:
        raise errors.bad_symbol() from None


def list_weight(one: int, many: int) -> Callable[[Params], int]:
    """Weight ``one`` with ``symbol``, ``many`` otherwise."""
    return lambda params: one if "symbol" in params else many


def ticker_weight(params: Params) -> int:
    if "symbol" in params:
        return 2
    raw = params.get("symbols")
    return ratelimit.ticker_weight(None if raw is None else raw.count(",") + 1)


async def ticker_24h(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/ticker/24hr."""
    return _per_symbol(ctx, call, ctx.market.ticker_24h)


async def ticker_price(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/ticker/price."""
    return _per_symbol(ctx, call, ctx.market.price)


async def book_ticker(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/ticker/bookTicker."""
    return _per_symbol(ctx, call, ctx.market.book_ticker)
