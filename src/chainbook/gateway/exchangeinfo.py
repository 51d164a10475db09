"""GET /api/v3/exchangeInfo (specs/binance-compat.md section 4.2).

Filters come from the symbol specs so that what ccxt rounds to (``tickSize``,
``stepSize``) is exactly what the core accepts.  Spot only: never ``contractType``,
``deliveryDate``, ``underlying`` or ``tradability`` (ccxt would take the market for a
contract or a tokenised stock).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from chainbook.domain.enums import SymbolStatus
from chainbook.domain.instruments import BPS, SymbolSpec
from chainbook.domain.units import fmt, price_str, qty_str, quote_str

Json = dict[str, Any]
_UNLIMITED = 2**53  # steps shown as the maximum when a limit is off (0)
_STATUS = {SymbolStatus.TRADING: "TRADING", SymbolStatus.CANCEL_ONLY: "BREAK",
           SymbolStatus.HALTED: "HALT"}
_STP_MODES = ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]
ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET"]


def _filters(spec: SymbolSpec) -> list[Json]:
    max_qty = qty_str(spec, spec.max_qty or _UNLIMITED)
    out: list[Json] = [
        {"filterType": "PRICE_FILTER", "minPrice": price_str(spec, spec.min_price),
         "maxPrice": price_str(spec, spec.max_price or _UNLIMITED),
         "tickSize": price_str(spec, 1)},
        {"filterType": "LOT_SIZE", "minQty": qty_str(spec, spec.min_qty), "maxQty": max_qty,
         "stepSize": qty_str(spec, 1)},
        {"filterType": "MARKET_LOT_SIZE", "minQty": qty_str(spec, spec.min_qty),
         "maxQty": max_qty, "stepSize": qty_str(spec, 1)},
        {"filterType": "NOTIONAL", "minNotional": quote_str(spec, spec.min_notional),
         # the core checks a MARKET order's notional when it is given as quoteOrderQty
         # (docs/core.md, Risk controls), so the flags say the filter applies to MARKET
         # orders: a client that checks before sending then never meets a refusal it
         # did not expect (one by quantity, not checked, has no price until it fills)
         "applyMinToMarket": True,
         "maxNotional": quote_str(spec, spec.max_notional or _UNLIMITED),
         "applyMaxToMarket": True, "avgPriceMins": 5},
    ]
    if spec.band_bps:
        up = fmt(1 + Decimal(spec.band_bps) / BPS)
        down = fmt(1 - Decimal(min(spec.band_bps, BPS)) / BPS)
        out.append({"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": up,
                    "bidMultiplierDown": down, "askMultiplierUp": up,
                    "askMultiplierDown": down, "avgPriceMins": 0})
    if spec.max_open_orders:
        out.append({"filterType": "MAX_NUM_ORDERS", "maxNumOrders": spec.max_open_orders})
    return out


def symbol_info(spec: SymbolSpec, status: SymbolStatus) -> Json:
    """One element of ``symbols``."""
    return {
        "symbol": spec.name,
        "status": _STATUS.get(status, "HALT"),
        "baseAsset": spec.base,
        "baseAssetPrecision": spec.base_decimals,
        "quoteAsset": spec.quote,
        "quotePrecision": spec.quote_decimals,
        "quoteAssetPrecision": spec.quote_decimals,
        "baseCommissionPrecision": spec.base_decimals,
        "quoteCommissionPrecision": spec.quote_decimals,
        "orderTypes": list(ORDER_TYPES),
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": _filters(spec),
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": spec.default_stp.name,
        "allowedSelfTradePreventionModes": list(_STP_MODES),
    }


def exchange_info(specs: list[SymbolSpec], status: dict[str, SymbolStatus], now_ms: int,
                  rate_limits: list[Json]) -> Json:
    """The whole exchangeInfo document for ``specs``."""
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": rate_limits,
        "exchangeFilters": [],
        "symbols": [symbol_info(s, status.get(s.name, SymbolStatus.TRADING)) for s in specs],
    }
