"""User-data stream payloads (specs/binance-compat.md section 7.3).

``executionReport`` per order change, ``outboundAccountPosition`` after a command that
changed an account's balances, ``balanceUpdate`` for deposits and withdrawals.  Pure
functions of the views' integers; ``AccountViews`` calls them for live batches only.

Execution types: NEW, TRADE, CANCELED, EXPIRED, TRADE_PREVENTION (self-trade prevention
expiry, status EXPIRED_IN_MATCH) and REPLACED for an amend (Binance's keep-priority amend
reports REPLACED; spot has no other amend-in-place).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chainbook.domain.enums import OrderType
from chainbook.domain.instruments import SymbolSpec
from chainbook.gateway.context import Core
from chainbook.gateway.numfmt import price_str, qty_str, quote_str
from chainbook.gateway.render import asset_amount, ms

if TYPE_CHECKING:
    from chainbook.gateway.views import AccountState, OrderView, TradeRow

Json = dict[str, Any]
_ZERO = "0.00000000"


def execution_report(core: Core, view: OrderView, execution: str, ts_ns: int,
                     trade: TradeRow | None = None, cancel_id: str | None = None) -> Json:
    """The ``executionReport`` of ``view`` after a change of kind ``execution``; on a
    cancel, ``c`` is the cancel request's id (``cancel_id``, when it had one) and ``C``
    the order's own."""
    spec: SymbolSpec = core.specs[view.symbol]
    now = ms(ts_ns)
    client_id = view.client_id or ""
    cancel = execution == "CANCELED"
    working = view.type != OrderType.MARKET and view.status in ("NEW", "PARTIALLY_FILLED")
    return {
        "e": "executionReport",
        "E": now,
        "s": view.symbol,
        "c": cancel_id if cancel and cancel_id else client_id,
        "S": view.side.name,
        "o": view.type.name,
        "f": "GTC" if view.type == OrderType.MARKET else view.tif.name,
        "q": qty_str(spec, view.executed if view.quote_qty else view.qty),
        "p": price_str(spec, view.price),
        "P": _ZERO,
        "F": _ZERO,
        "g": -1,
        "C": client_id if cancel else "",
        "x": execution,
        "X": view.status,
        "r": "NONE",
        "i": view.order_id,
        "l": qty_str(spec, trade.qty) if trade else _ZERO,
        "z": qty_str(spec, view.executed),
        "L": price_str(spec, trade.price) if trade else _ZERO,
        "n": quote_str(spec, trade.fee) if trade else "0",
        "N": spec.quote if trade else None,
        "T": now,
        "t": trade.trade_id if trade else -1,
        "I": 0,
        "w": working,
        "m": trade.is_maker if trade else False,
        "M": False,
        "O": ms(view.time_ns),
        "Z": quote_str(spec, view.cum_quote),
        "Y": quote_str(spec, trade.quote) if trade else _ZERO,
        "Q": quote_str(spec, view.quote_qty),
        "W": ms(view.time_ns),
        "V": view.stp.name,
    }


def account_position(core: Core, state: AccountState, assets: list[str], ts_ns: int) -> Json:
    """``outboundAccountPosition`` with the balances of ``assets`` (changed ones)."""
    now = ms(ts_ns)
    rows = []
    for asset in dict.fromkeys(assets):
        avail, frozen = state.balances.get(asset, (0, 0))
        rows.append({"a": asset, "f": asset_amount(core, asset, avail),
                     "l": asset_amount(core, asset, frozen)})
    return {"e": "outboundAccountPosition", "E": now, "u": now, "B": rows}


def balance_update(core: Core, asset: str, delta: int, ts_ns: int) -> Json:
    """``balanceUpdate``: ``delta`` base units of ``asset`` (negative for a withdrawal)."""
    now = ms(ts_ns)
    return {"e": "balanceUpdate", "E": now, "a": asset,
            "d": asset_amount(core, asset, delta), "T": now}
