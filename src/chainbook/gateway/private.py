"""Account and order endpoints (specs/binance-compat.md section 3, rows 10-19).

Handlers read: parse -> submit -> render.  Order entry returns after the command is
durable and every listener (the account views included) has seen it, so the response
is rendered from the views.  Orders are looked up in the caller's own views first: an
id of another account's order is -2011 (cancel) or -2013 (query), never that order.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

from chainbook.domain.commands import CancelAll, CancelOrder
from chainbook.domain.enums import OrderType, Reject, Side, SymbolStatus
from chainbook.domain.events import OrderAccepted, OrderCanceled, Trade
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine.symbol_state import outside_band, would_take
from chainbook.gateway import errors, render, schema
from chainbook.gateway.context import GatewayContext, symbol_status
from chainbook.gateway.endpoint import Call, submit
from chainbook.gateway.views import OrderView
from chainbook.gateway.ws_api import key_reads_for

LIST_MAX = 1000
ID_BYTES = 16  # random bytes per generated client order id (what token_urlsafe(16) used)
ID_BATCH = 256  # ids per os.urandom call


def _client_ids() -> Iterator[str]:
    """``cb-`` + 16 random bytes in url-safe base64, as ``secrets.token_urlsafe(16)``,
    from one ``os.urandom`` call per 256 ids: each call releases the GIL, and getting it
    back cost ~90 us per request under load (docs/gateway-performance.md, Session 3)."""
    while True:
        block = os.urandom(ID_BYTES * ID_BATCH)
        for i in range(0, len(block), ID_BYTES):
            yield "cb-" + base64.urlsafe_b64encode(block[i:i + ID_BYTES]).rstrip(b"=").decode()


_IDS = _client_ids()


def new_client_id() -> str:
    """A client order id for requests that sent none (Binance generates one too).
    Only the event loop calls it (the generator is not shared between threads)."""
    return next(_IDS)


def _find(ctx: GatewayContext, call: Call, spec: SymbolSpec, ref: schema.OrderRef
          ) -> OrderView | None:
    view = ctx.views.order(call.account, spec.name, ref.order_id, ref.client_id)
    if view is not None and ref.order_id is not None and ref.client_id is not None \
            and view.client_id != ref.client_id:
        return None
    return view


def _query(ctx: GatewayContext, view: OrderView) -> dict[str, Any]:
    spec = ctx.core.specs[view.symbol]
    return render.order_query(view, spec, ctx.views.settlement_status(view))


async def account(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/account."""
    omit = schema.bool_param(call.params, "omitZeroBalances")
    key = call.key
    if key is None:  # the route is SIGNED: cannot happen
        raise errors.rejected_api_key()
    return render.account(ctx.core, key, ctx.views.account(key.account), omit)


async def new_order(ctx: GatewayContext, call: Call) -> Any:
    """POST /api/v3/order."""
    spec = schema.symbol(ctx.core, call.params)
    order = schema.new_order(call.params, call.account, spec, new_client_id())
    applied = await submit(ctx, order.cmd)
    accepted = next((e for e in applied.events if isinstance(e, OrderAccepted)), None)
    if accepted is None:
        raise errors.unknown()
    view = ctx.views.order(call.account, spec.name, accepted.order_id)
    if view is None:
        raise errors.unknown()
    fills = [e for e in applied.events
             if isinstance(e, Trade) and e.taker_order_id == accepted.order_id]
    return render.order_result(view, spec, order.resp_type, applied.ts, fills,
                               ctx.views.settlement_status(view))


async def test_order(ctx: GatewayContext, call: Call) -> Any:
    """POST /api/v3/order/test: validate everything, submit nothing.  Besides the static
    filters, what the core would refuse by the symbol's state: not trading, outside the
    price band, a LIMIT_MAKER that would take (against market data, which follows the
    core batch by batch).  Balances are not checked (nor are they by Binance)."""
    spec = schema.symbol(ctx.core, call.params)
    order = schema.new_order(call.params, call.account, spec, None)
    cmd = order.cmd
    schema.check_filters(cmd, spec)
    if symbol_status(ctx.core, spec.name, ctx.clock_ms()) != SymbolStatus.TRADING:
        raise errors.reject_error(Reject.SYMBOL_NOT_TRADING)
    if cmd.price is not None and outside_band(
            cmd.price, ctx.market.reference_price(spec.name), spec.band_bps):
        raise errors.reject_error(Reject.PRICE_OUT_OF_BAND)
    if cmd.type == OrderType.LIMIT_MAKER and cmd.price is not None:
        bid, _, ask, _ = ctx.market.top(spec.name)
        if would_take(cmd.side, cmd.price, ask if cmd.side == Side.BUY else bid):
            raise errors.reject_error(Reject.WOULD_TAKE)
    return {}


async def get_order(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/order."""
    spec = schema.symbol(ctx.core, call.params)
    view = _find(ctx, call, spec, schema.order_ref(call.params))
    if view is None:
        raise errors.no_such_order()
    return _query(ctx, view)


async def cancel_order(ctx: GatewayContext, call: Call) -> Any:
    """DELETE /api/v3/order."""
    spec = schema.symbol(ctx.core, call.params)
    ref = schema.order_ref(call.params, cancel=True)
    view = _find(ctx, call, spec, ref)
    if view is None or not view.is_open:
        raise errors.cancel_rejected()
    cancel_id = ref.new_client_id or new_client_id()
    applied = await submit(ctx, CancelOrder(call.account, spec.name, view.order_id,
                                            cancel_client_id=cancel_id))
    return render.order_cancel(view, spec, cancel_id, applied.ts)


async def open_orders(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/openOrders (one symbol or all)."""
    name = schema.optional(call.params, "symbol")
    if name is not None:
        name = schema.spec_of(ctx.core, name).name
    return [_query(ctx, v) for v in ctx.views.open_orders(call.account, name)]


async def cancel_open_orders(ctx: GatewayContext, call: Call) -> Any:
    """DELETE /api/v3/openOrders: -2011 when there is nothing to cancel (Binance)."""
    spec = schema.symbol(ctx.core, call.params)
    if not ctx.views.open_orders(call.account, spec.name):
        raise errors.cancel_rejected()
    applied = await submit(ctx, CancelAll(call.account, spec.name))
    done = [e.order_id for e in applied.events if isinstance(e, OrderCanceled)]
    if not done:
        raise errors.cancel_rejected()
    out = []
    for oid in done:
        view = ctx.views.order(call.account, spec.name, oid)
        if view is not None:
            out.append(render.order_cancel(view, spec, new_client_id(), applied.ts))
    return out


def _window(items: list[Any], limit: int, from_start: bool) -> list[Any]:
    return items[:limit] if from_start else items[-limit:]


async def all_orders(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/allOrders: from ``orderId`` or ``startTime`` up, else the latest."""
    p = call.params
    spec = schema.symbol(ctx.core, p)
    oid = schema.int_param(p, "orderId")
    start, end = schema.time_range(p)
    limit = schema.limit_param(p, 500, LIST_MAX)
    views = [v for v in ctx.views.all_orders(call.account, spec.name)
             if (oid is None or v.order_id >= oid)
             and (start is None or render.ms(v.time_ns) >= start)
             and (end is None or render.ms(v.time_ns) <= end)]
    chosen = _window(views, limit, oid is not None or start is not None)
    return [_query(ctx, v) for v in chosen]


async def my_trades(ctx: GatewayContext, call: Call) -> Any:
    """GET /api/v3/myTrades: filters orderId, startTime, endTime, fromId, limit."""
    p = call.params
    spec = schema.symbol(ctx.core, p)
    oid = schema.int_param(p, "orderId")
    from_id = schema.int_param(p, "fromId")
    start, end = schema.time_range(p)
    limit = schema.limit_param(p, 500, LIST_MAX)
    rows = [r for r in ctx.views.trades(call.account, spec.name)
            if (oid is None or r.order_id == oid)
            and (from_id is None or r.trade_id >= from_id)
            and (start is None or render.ms(r.ts_ns) >= start)
            and (end is None or render.ms(r.ts_ns) <= end)]
    chosen = _window(rows, limit, from_id is not None or start is not None)
    return [render.my_trade(r, spec) for r in chosen]


async def new_listen_key(ctx: GatewayContext, call: Call) -> Any:
    """POST /api/v3/userDataStream: the account's listenKey (the same while valid)."""
    return {"listenKey": ctx.views.listen_keys.create(
        call.account, _api_key(call), key_reads_for(ctx.keys, call.account))}


async def keepalive_listen_key(ctx: GatewayContext, call: Call) -> Any:
    """PUT /api/v3/userDataStream."""
    key = schema.required(call.params, "listenKey")
    if not ctx.views.listen_keys.keepalive(key, call.account, _api_key(call),
                                           key_reads_for(ctx.keys, call.account)):
        raise errors.bad_listen_key()
    return {}


def _api_key(call: Call) -> str:
    return call.key.key if call.key is not None else ""


async def close_listen_key(ctx: GatewayContext, call: Call) -> Any:
    """DELETE /api/v3/userDataStream."""
    key = schema.required(call.params, "listenKey")
    if not ctx.views.listen_keys.close(key, call.account):
        raise errors.bad_listen_key()
    ctx.hub.end_revoked_users(ctx.clock_ms())  # its streams stop now, not in a second
    return {}
