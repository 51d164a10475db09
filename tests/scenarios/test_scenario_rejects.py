"""Every reject reason, each from a command that must change nothing at all."""

from __future__ import annotations

import msgspec
import pytest

from chainbook.domain import commands as C
from chainbook.domain.enums import OrderType, Reject, Side, SymbolStatus, TimeInForce
from chainbook.domain.events import OrderRejected

BUY, SELL = Side.BUY, Side.SELL


def _with_symbol(ex, **fields):
    """List a BTC-quoted-in-USDT clone named LIMUSDT with ``fields`` changed."""
    spec = msgspec.structs.replace(ex.spec, name="LIMUSDT", **fields)
    ex.apply(C.AddSymbol(spec))
    return "LIMUSDT"


def _order(ex, **kw):
    return ex.order_cmd(1, BUY, kw.pop("price", 1000), kw.pop("qty", 1), **kw)


def insufficient_balance(ex):
    return _order(ex, qty=100_000)


def account_blocked(ex):
    ex.apply(C.SetKillSwitch(1, True))
    return _order(ex)


def too_many_open_orders(ex):
    sym = _with_symbol(ex, max_open_orders=1)
    ex.rest(1, BUY, 900, 1, symbol=sym)
    return _order(ex, symbol=sym)


def unknown_symbol(ex):
    return _order(ex, symbol="NOPE")


def symbol_not_trading(ex):
    ex.apply(C.SetSymbolStatus("BTCUSDT", SymbolStatus.CANCEL_ONLY))
    return _order(ex)


def invalid_quantity(ex):
    return _order(ex, qty=0)


def invalid_price(ex):
    return _order(ex, price=0)


def qty_out_of_range(ex):
    return _order(ex, qty=6, symbol=_with_symbol(ex, max_qty=5))


def notional_out_of_range(ex):
    return _order(ex, price=99, symbol=_with_symbol(ex, min_notional=100))


def price_out_of_band(ex):
    sym = _with_symbol(ex, band_bps=100)
    ex.rest(2, SELL, 1000, 1, symbol=sym)
    ex.buy(3, 1000, 1, symbol=sym)
    return _order(ex, price=1011, symbol=sym)


def would_take(ex):
    ex.rest(2, SELL, 1000, 1)
    return _order(ex, type=OrderType.LIMIT_MAKER)


def unknown_order(ex):
    return C.CancelOrder(1, "BTCUSDT", 424242, None)


def duplicate_client_order_id(ex):
    ex.rest(1, BUY, 900, 1, client_id="dup")
    return _order(ex, client_id="dup")


def invalid_order_params(ex):
    return _order(ex, type=OrderType.MARKET, tif=TimeInForce.FOK)


def amend_invalid(ex):
    oid = ex.rest(1, BUY, 900, 1)
    return C.AmendOrder(1, "BTCUSDT", oid, None, 900, 1)


def symbol_exists(ex):
    return C.AddSymbol(ex.spec)


def invalid_symbol_spec(ex):
    return C.AddSymbol(msgspec.structs.replace(ex.spec, name="BADUSDT", lot_units=0))


def duplicate_external_id(ex):
    ex.apply(C.Deposit(1, "USDT", 1, "once"))
    return C.Deposit(1, "USDT", 1, "once")


def unknown_withdrawal(ex):
    return C.WithdrawComplete("never-held")


def withdrawal_not_pending(ex):
    ex.apply(C.WithdrawHold(1, "USDT", 1, "w"))
    ex.apply(C.WithdrawRefund("w"))
    return C.WithdrawRefund("w")


def invalid_amount(ex):
    return C.Deposit(1, "USDT", 0, "zero")


CASES = {
    Reject.INSUFFICIENT_BALANCE: insufficient_balance,
    Reject.ACCOUNT_BLOCKED: account_blocked,
    Reject.TOO_MANY_OPEN_ORDERS: too_many_open_orders,
    Reject.UNKNOWN_SYMBOL: unknown_symbol,
    Reject.SYMBOL_NOT_TRADING: symbol_not_trading,
    Reject.INVALID_QUANTITY: invalid_quantity,
    Reject.INVALID_PRICE: invalid_price,
    Reject.QTY_OUT_OF_RANGE: qty_out_of_range,
    Reject.NOTIONAL_OUT_OF_RANGE: notional_out_of_range,
    Reject.PRICE_OUT_OF_BAND: price_out_of_band,
    Reject.WOULD_TAKE: would_take,
    Reject.UNKNOWN_ORDER: unknown_order,
    Reject.DUPLICATE_CLIENT_ORDER_ID: duplicate_client_order_id,
    Reject.INVALID_ORDER_PARAMS: invalid_order_params,
    Reject.AMEND_INVALID: amend_invalid,
    Reject.SYMBOL_EXISTS: symbol_exists,
    Reject.INVALID_SYMBOL_SPEC: invalid_symbol_spec,
    Reject.DUPLICATE_EXTERNAL_ID: duplicate_external_id,
    Reject.UNKNOWN_WITHDRAWAL: unknown_withdrawal,
    Reject.WITHDRAWAL_NOT_PENDING: withdrawal_not_pending,
    Reject.INVALID_AMOUNT: invalid_amount,
}


def test_every_reason_has_a_case():
    assert set(CASES) == set(Reject)


@pytest.mark.parametrize("reason", list(CASES), ids=lambda r: r.name)
def test_reject_changes_nothing(ex, reason):
    cmd = CASES[reason](ex)
    ex.rejected(cmd, reason)


def test_rejected_place_reports_account_client_id_and_kind(ex):
    r = ex.rejected(ex.order_cmd(1, BUY, 1000, 100_000, client_id="big"),
                    Reject.INSUFFICIENT_BALANCE)
    assert r == OrderRejected(1, Reject.INSUFFICIENT_BALANCE, "big", 1)
    r = ex.rejected(C.AmendOrder(2, "BTCUSDT", 77, "cid", 5, None), Reject.UNKNOWN_ORDER)
    assert (r.account, r.client_id, r.command_kind) == (2, "cid", 4)
    r = ex.rejected(C.WithdrawComplete("x"), Reject.UNKNOWN_WITHDRAWAL)
    assert (r.account, r.command_kind) == (-1, 7)


def test_reject_from_an_account_without_balance_changes_nothing(ex):
    """An account never seen before sends a buy: rejected, and the state (including its
    hash) is exactly as before -- no empty balance rows appear."""
    ex.rejected(ex.order_cmd(42, BUY, 1000, 1), Reject.INSUFFICIENT_BALANCE)
    ex.rejected(ex.order_cmd(42, SELL, None, 1, type=OrderType.MARKET, tif=TimeInForce.IOC),
                Reject.INSUFFICIENT_BALANCE)
