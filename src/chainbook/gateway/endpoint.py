"""One REST call, start to end: parameters, rate limit, authentication, handler, JSON.

``endpoint(ctx, handler, ...)`` wraps a handler ``async (ctx, call) -> JSON`` into a
Starlette endpoint.  The wrapper merges query and form-body parameters, charges the
request weight to the client IP (``X-MBX-USED-WEIGHT-1M`` on every response, errors
included), authenticates KEY or SIGNED calls, counts new orders, and turns ``ApiError``
into Binance's ``{"code", "msg"}`` body.  Any other exception is logged and answered with
HTTP 500 / -1000: a client never sees a traceback or a non-JSON error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from chainbook.domain.commands import Command
from chainbook.domain.events import OrderRejected
from chainbook.gateway import auth, errors
from chainbook.gateway.auth import Params
from chainbook.gateway.context import ApiKeyInfo, GatewayContext
from chainbook.service.applied import Applied
from chainbook.service.core import CoreUnavailable

log = logging.getLogger("chainbook.gateway")

NONE, KEY, SIGNED = "NONE", "KEY", "SIGNED"
USED_WEIGHT = "X-MBX-USED-WEIGHT-1M"
ORDERS_10S = "X-MBX-ORDER-COUNT-10S"
ORDERS_1D = "X-MBX-ORDER-COUNT-1D"
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class Call:
    """What a handler gets: the client's address, the merged parameters and the key."""

    ip: str
    params: Params
    key: ApiKeyInfo | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def account(self) -> int:
        if self.key is None:
            raise RuntimeError("account of an unauthenticated call")
        return self.key.account


Handler = Callable[[GatewayContext, Call], Awaitable[Any]]
Weight = int | Callable[[Params], int]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    """A JSON response encoded with msgspec."""
    return Response(_encode(body), status, headers, media_type="application/json")


def error_response(exc: errors.ApiError, headers: dict[str, str] | None = None) -> Response:
    """The Binance error body of ``exc`` with its headers (Retry-After ...)."""
    merged = dict(headers or {})
    merged.update(exc.headers)
    return json_response(exc.body(), exc.http_status, merged)


def request_path(request: Request) -> str:
    """The request path (``request.url`` would fail on a non-UTF-8 query string)."""
    path: str = request.scope.get("path", "")
    return path[:200]


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def read_body(request: Request) -> bytes:
    """The request body, refused (-1101) beyond auth.MAX_BYTES without reading it all."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > auth.MAX_BYTES:
                raise errors.too_many_params()
            chunks.append(chunk)
    except ClientDisconnect:
        raise errors.illegal_chars_anywhere() from None
    return b"".join(chunks)


async def submit(ctx: GatewayContext, cmd: Command, *, query: bool = False) -> Applied:
    """Submit ``cmd`` to the core; raise the Binance error of a reject (-1001 if the core
    is down, -1006 if it failed while making ``cmd`` durable: status unknown).
    ``query`` maps UNKNOWN_ORDER to -2013 instead of -2011."""
    try:
        applied = await ctx.core.submit(cmd)
    except CoreUnavailable as exc:
        raise (errors.status_unknown() if exc.unknown else errors.disconnected()) from None
    for ev in applied.events:
        if isinstance(ev, OrderRejected):
            raise errors.reject_error(ev.reason, query=query)
    return applied


Reply = tuple[int, bytes, dict[str, str]]  # HTTP status, JSON body, headers


class Endpoint:
    """One REST call's handling, independent of the HTTP server that carries it.

    ``handle`` takes what it needs of the request (client address, query string, body,
    API-key header) and returns the status, the JSON body and the headers; calling the
    object with a Starlette ``Request`` does the same for Starlette's router.  The
    gateway's own HTTP protocol (``gateway/fasthttp.py``) calls ``handle`` directly."""

    __slots__ = ("ctx", "handler", "weight", "security", "perm", "order")

    def __init__(self, ctx: GatewayContext, handler: Handler, weight: Weight,
                 security: str, perm: str, order: bool) -> None:
        self.ctx = ctx
        self.handler = handler
        self.weight = weight
        self.security = security
        self.perm = perm
        self.order = order

    async def handle(self, ip: str, method: str, path: str, query: bytes,
                     body: bytes | errors.ApiError, api_key: str | None) -> Reply:
        """Parameters, limits, auth, the handler and the error rendering of one call;
        ``body`` is the request body, or the error reading it met (too long, cut off)."""
        ctx = self.ctx
        headers: dict[str, str] = {}
        try:
            try:
                if isinstance(body, errors.ApiError):
                    raise body
                params = auth.parse_params(query, body)
                weight = self.weight
                cost = weight(params) if callable(weight) else weight
            except errors.ApiError:
                headers[USED_WEIGHT] = str(ctx.limits.request(ip, 1))
                raise
            headers[USED_WEIGHT] = str(ctx.limits.request(ip, cost))
            key = None
            if self.security == SIGNED:
                key = auth.verify(ctx.keys, api_key, query, body, params, self.perm,
                                  ctx.clock_ms)
            elif self.security == KEY:
                key = auth.api_key(ctx.keys, api_key, self.perm)
            counted = key.account if self.order and key is not None else None
            if counted is not None:
                n10, nday = ctx.limits.order_check(counted)
                headers[ORDERS_10S] = str(n10)
                headers[ORDERS_1D] = str(nday)
            out = await self.handler(ctx, Call(ip, params, key, headers))
            if counted is not None:  # accepted by the core: it counts (refused: raised)
                n10, nday = ctx.limits.order_placed(counted)
                headers[ORDERS_10S] = str(n10)
                headers[ORDERS_1D] = str(nday)
            return 200, _encode(out), headers
        except errors.ApiError as exc:
            err = exc
        except Exception:
            log.exception("unhandled error on %s %s", method, path[:200])
            err = errors.unknown()
        headers.update(err.headers)
        return err.http_status, _encode(err.body()), headers

    async def __call__(self, request: Request) -> Response:
        try:
            body: bytes | errors.ApiError = await read_body(request)
        except errors.ApiError as exc:
            body = exc
        status, data, headers = await self.handle(
            client_ip(request), request.method, request_path(request),
            request.scope.get("query_string", b""), body, request.headers.get("x-mbx-apikey"))
        return Response(data, status, headers, media_type="application/json")


def endpoint(ctx: GatewayContext, handler: Handler, *, weight: Weight = 1,
             security: str = NONE, perm: str = "read", order: bool = False) -> Endpoint:
    """Wrap ``handler`` with parameters, limits, auth and error rendering."""
    return Endpoint(ctx, handler, weight, security, perm, order)
