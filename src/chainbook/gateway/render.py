"""Order, trade and account objects in Binance's REST shapes (specs/binance-compat.md 4.8-4.10).

Pure functions from the views (integers) to JSON-ready dicts (decimal strings, ms
timestamps).  Field names are Binance's, including the misspelt ``cummulativeQuoteQty``;
futures-only keys (``avgPrice``, ``m``/``isBuyerMaker``/``side`` in myTrades, ...) are
never sent because they change how ccxt parses the objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chainbook.domain.enums import OrderType
from chainbook.domain.events import Trade
from chainbook.domain.instruments import BPS, SymbolSpec
from chainbook.domain.units import PLACES, fmt
from chainbook.gateway.context import ApiKeyInfo, Core
from chainbook.gateway.numfmt import amount_str, price_str, qty_str, quote_str

if TYPE_CHECKING:
    from chainbook.gateway.views import AccountState, OrderView, TradeRow

Json = dict[str, Any]
NS_PER_MS = 1_000_000


def asset_decimals(core: Core, asset: str) -> int:
    """Decimals of ``asset``: from the config, else from a symbol that trades it, else 8."""
    decimals = core.assets.get(asset)
    if decimals is not None:
        return decimals
    for spec in core.specs.values():
        if spec.base == asset:
            return spec.base_decimals
        if spec.quote == asset:
            return spec.quote_decimals
    return PLACES


def asset_amount(core: Core, asset: str, units: int) -> str:
    """``units`` base units of ``asset`` as a decimal string (sign kept)."""
    text = amount_str(abs(units), asset_decimals(core, asset))
    return "-" + text if units < 0 else text


def rate(bps: int) -> str:
    """Basis points as a fraction string (10 -> "0.00100000")."""
    return fmt(Decimal(bps) / BPS)


def ms(ns: int) -> int:
    return ns // NS_PER_MS


def _tif(view: OrderView) -> str:
    return "GTC" if view.type == OrderType.MARKET else view.tif.name


def _orig_qty(view: OrderView) -> int:
    # a quoteOrderQty market order reports origQty = executedQty (Binance)
    return view.executed if view.quote_qty else view.qty


def _core_fields(view: OrderView, spec: SymbolSpec) -> Json:
    return {
        "symbol": view.symbol,
        "orderId": view.order_id,
        "orderListId": -1,
        "clientOrderId": view.client_id or "",
        "price": price_str(spec, view.price),
        "origQty": qty_str(spec, _orig_qty(view)),
        "executedQty": qty_str(spec, view.executed),
        "origQuoteOrderQty": quote_str(spec, view.quote_qty),
        "cummulativeQuoteQty": quote_str(spec, view.cum_quote),
        "status": view.status,
        "timeInForce": _tif(view),
        "type": view.type.name,
        "side": view.side.name,
    }


def order_query(view: OrderView, spec: SymbolSpec, settlement: str) -> Json:
    """GET order / openOrders / allOrders element, plus ``settlementStatus``."""
    out = _core_fields(view, spec)
    out.update({
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": ms(view.time_ns),
        "updateTime": ms(view.update_ns),
        "isWorking": view.type != OrderType.MARKET,
        "workingTime": ms(view.time_ns),
        "selfTradePreventionMode": view.stp.name,
        "settlementStatus": settlement,
    })
    return out


def fill(trade: Trade, spec: SymbolSpec) -> Json:
    """One ``fills`` element of a FULL response (the taker's side of ``trade``)."""
    return {"price": price_str(spec, trade.price), "qty": qty_str(spec, trade.qty),
            "commission": quote_str(spec, trade.taker_fee), "commissionAsset": spec.quote,
            "tradeId": trade.trade_id}


def order_result(view: OrderView, spec: SymbolSpec, resp_type: str, transact_ns: int,
                 fills: Iterable[Trade], settlement: str) -> Json:
    """POST order response as ACK, RESULT or FULL (RESULT plus ``fills``)."""
    ack = {"symbol": view.symbol, "orderId": view.order_id, "orderListId": -1,
           "clientOrderId": view.client_id or "", "transactTime": ms(transact_ns)}
    if resp_type == "ACK":
        return ack
    out = _core_fields(view, spec)
    out["transactTime"] = ack["transactTime"]
    # a MARKET order works from the moment it is placed (ccxt reads workingTime first)
    out["workingTime"] = (ms(view.time_ns) if view.type != OrderType.MARKET
                          else ack["transactTime"])
    out["selfTradePreventionMode"] = view.stp.name
    out["settlementStatus"] = settlement
    if resp_type == "FULL":
        out["fills"] = [fill(t, spec) for t in fills]
    return out


def order_cancel(view: OrderView, spec: SymbolSpec, new_client_id: str,
                 transact_ns: int) -> Json:
    """DELETE order response (and each element of DELETE openOrders)."""
    out = _core_fields(view, spec)
    out["origClientOrderId"] = view.client_id or ""
    out["clientOrderId"] = new_client_id
    out["transactTime"] = ms(transact_ns)
    out["selfTradePreventionMode"] = view.stp.name
    return out


def my_trade(row: TradeRow, spec: SymbolSpec) -> Json:
    """One myTrades row (no ``m``/``isBuyerMaker``/``side``: ccxt must use isBuyer)."""
    return {
        "symbol": row.symbol,
        "id": row.trade_id,
        "orderId": row.order_id,
        "orderListId": -1,
        "price": price_str(spec, row.price),
        "qty": qty_str(spec, row.qty),
        "quoteQty": quote_str(spec, row.quote),
        "commission": quote_str(spec, row.fee),
        "commissionAsset": spec.quote,
        "time": ms(row.ts_ns),
        "isBuyer": row.is_buyer,
        "isMaker": row.is_maker,
        "isBestMatch": True,
    }


def account(core: Core, key: ApiKeyInfo, state: AccountState, omit_zero: bool) -> Json:
    """GET account: fees, permissions and balances of the key's account."""
    first = next(iter(core.specs.values()), None)
    maker = first.maker_bps if first is not None else 0
    taker = first.taker_bps if first is not None else 0
    balances = []
    for asset in sorted(set(core.assets) | set(state.balances)):
        avail, frozen = state.balances.get(asset, (0, 0))
        if omit_zero and not avail and not frozen:
            continue
        balances.append({"asset": asset, "free": asset_amount(core, asset, avail),
                         "locked": asset_amount(core, asset, frozen)})
    return {
        "makerCommission": maker,
        "takerCommission": taker,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": rate(maker), "taker": rate(taker),
                            "buyer": rate(0), "seller": rate(0)},
        "canTrade": "trade" in key.perms and not state.blocked,
        "canWithdraw": "withdraw" in key.perms,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": ms(state.update_ns),
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
        "uid": key.account,
    }
