"""The REST routes of the Binance-compatible API (specs/binance-compat.md section 3).

``build_rest_routes(ctx)`` gives every endpoint of the subset plus ``GET /openapi.json``;
``fallback_routes()`` must come last in the application's routes: it answers any other
path with a Binance-style 404 (``{"code": -1000, "msg": "Unknown path <path>."}``) and
logs it, so an unsupported client call is visible instead of silently failing.
``exception_handlers()`` makes sure nothing escapes as a non-JSON error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from chainbook.gateway import errors, private, public
from chainbook.gateway.context import GatewayContext
from chainbook.gateway.endpoint import (
    KEY,
    NONE,
    SIGNED,
    USED_WEIGHT,
    Endpoint,
    Handler,
    Weight,
    endpoint,
    error_response,
    json_response,
    request_path,
)
from chainbook.gateway.openapi import openapi_document

log = logging.getLogger("chainbook.gateway")
API = "/api/v3"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
HOT_PATHS = frozenset({API + "/order"})  # matched first (the paths are all distinct)


@dataclass(frozen=True, slots=True)
class Spec:
    """One endpoint: method, path, handler, request weight, security, permission."""

    method: str
    path: str
    handler: Handler
    weight: Weight = 1
    security: str = NONE
    perm: str = "read"
    order: bool = False


def _trades_weight(params: dict[str, str]) -> int:
    return 5 if "orderId" in params else 20


ENDPOINTS: tuple[Spec, ...] = (
    Spec("GET", "/ping", public.ping),
    Spec("GET", "/time", public.server_time),
    Spec("GET", "/exchangeInfo", public.exchange_info_, 20),
    Spec("GET", "/depth", public.depth, public.depth_weight),
    Spec("GET", "/trades", public.trades, 25),
    Spec("GET", "/aggTrades", public.agg_trades, 4),
    Spec("GET", "/klines", public.klines, 2),
    Spec("GET", "/ticker/24hr", public.ticker_24h, public.ticker_weight),
    Spec("GET", "/ticker/price", public.ticker_price, public.list_weight(2, 4)),
    Spec("GET", "/ticker/bookTicker", public.book_ticker, public.list_weight(2, 4)),
    Spec("GET", "/account", private.account, 20, SIGNED),
    Spec("POST", "/order", private.new_order, 1, SIGNED, "trade", order=True),
    Spec("POST", "/order/test", private.test_order, 1, SIGNED, "trade"),
    Spec("GET", "/order", private.get_order, 4, SIGNED),
    Spec("DELETE", "/order", private.cancel_order, 1, SIGNED, "trade"),
    Spec("GET", "/openOrders", private.open_orders, public.list_weight(6, 80), SIGNED),
    Spec("DELETE", "/openOrders", private.cancel_open_orders, 1, SIGNED, "trade"),
    Spec("GET", "/allOrders", private.all_orders, 20, SIGNED),
    Spec("GET", "/myTrades", private.my_trades, _trades_weight, SIGNED),
    Spec("POST", "/userDataStream", private.new_listen_key, 2, KEY),
    Spec("PUT", "/userDataStream", private.keepalive_listen_key, 2, KEY),
    Spec("DELETE", "/userDataStream", private.close_listen_key, 2, KEY),
)


async def _dispatch(table: dict[str, Endpoint], request: Request) -> Response:
    """One endpoint per path that picks the handler by method (HEAD as GET); routed
    as ``partial(_dispatch, table)``, which ``fast_table`` reads back."""
    method = "GET" if request.method == "HEAD" else request.method
    fn = table.get(method)
    if fn is None:
        exc = errors.method_not_allowed(request.method, request_path(request))
        exc.headers["Allow"] = ", ".join(sorted(table))
        return error_response(exc)
    return await fn(request)


def build_rest_routes(ctx: GatewayContext) -> list[BaseRoute]:
    """Every REST endpoint of the subset, plus GET /openapi.json."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for spec in ENDPOINTS:
        fn = endpoint(ctx, spec.handler, weight=spec.weight, security=spec.security,
                      perm=spec.perm, order=spec.order)
        by_path.setdefault(API + spec.path, {})[spec.method] = fn
    # Starlette tries the routes in order (a regex match each): order entry first
    paths = sorted(by_path, key=lambda p: p not in HOT_PATHS)
    routes: list[BaseRoute] = [
        Route(path, partial(_dispatch, by_path[path]), methods=ALL_METHODS) for path in paths
    ]
    document = openapi_document([(s.method, API + s.path, s.security) for s in ENDPOINTS])

    async def openapi(request: Request) -> Response:
        return json_response(document)

    routes.append(Route("/openapi.json", openapi, methods=["GET"]))
    return routes


AsgiApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def direct_rest(app: AsgiApp, routes: Iterable[BaseRoute]) -> AsgiApp:
    """``app`` with the REST endpoints among ``routes`` called directly for their exact
    paths, past Starlette's two middlewares, router and per-route exception wrapper
    (~30-40 us a request; docs/gateway-performance.md, Session 3).  The endpoints answer
    every error themselves (``endpoint.endpoint``), so the response is the same; any other
    scope, path or a ``root_path`` goes to ``app`` (tests/unit/gateway/test_rest_hotpath.py
    compares the two)."""
    table = {r.path: (r.endpoint, frozenset(r.methods or ())) for r in routes
             if isinstance(r, Route) and r.path.startswith(API + "/")}

    async def rest_first(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            hit = table.get(scope["path"])
            if hit is not None and scope["method"] in hit[1]:  # else Starlette's 405
                response = await hit[0](Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    return rest_first


def fast_table(routes: Iterable[BaseRoute]) -> dict[tuple[bytes, bytes], Endpoint]:
    """(method, path) -> endpoint of every REST route, for ``gateway/fasthttp.py``."""
    out: dict[tuple[bytes, bytes], Endpoint] = {}
    for r in routes:
        fn = r.endpoint if isinstance(r, Route) else None
        if isinstance(fn, partial) and fn.func is _dispatch:
            for method, ep in fn.args[0].items():
                out[(method.encode(), r.path.encode())] = ep  # type: ignore[union-attr]
    return out


async def _unknown_path(request: Request) -> Response:
    log.warning("unsupported call %s %s", request.method, request_path(request))
    return error_response(errors.unknown_path(request_path(request)), {USED_WEIGHT: "0"})


def fallback_routes() -> list[BaseRoute]:
    """Catch-all for HTTP paths nothing else serves: Binance-style 404 (put it last)."""
    return [Route("/{path:path}", _unknown_path, methods=ALL_METHODS)]


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return error_response(errors.unknown_path(request_path(request)))
    if status == 405:
        return error_response(errors.method_not_allowed(request.method, request_path(request)))
    return error_response(errors.ApiError(status, -1000, "Request could not be processed."))


async def _api_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, errors.ApiError):
        return error_response(exc)
    return await _any_error(request, exc)


async def _any_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request_path(request), exc_info=exc)
    return error_response(errors.unknown())


def exception_handlers() -> dict[Any, Callable[..., Any]]:
    """Starlette exception handlers: ApiError -> its JSON, HTTPException -> -1000 JSON,
    anything else -> HTTP 500 -1000."""
    return {errors.ApiError: _api_error, HTTPException: _http_exception,
            Exception: _any_error}
