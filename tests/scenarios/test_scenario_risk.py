"""Pre-trade filters: price band (PERCENT_PRICE), qty and notional limits, max open orders."""

from __future__ import annotations

from chainbook.domain import commands as C
from chainbook.domain.enums import OrderType, Reject, Side, TimeInForce
from chainbook.domain.events import OrderAccepted, OrderAmended, OrderExpired

BUY, SELL = Side.BUY, Side.SELL
MARKET, IOC = OrderType.MARKET, TimeInForce.IOC


def _trade(ex, price):
    ex.rest(2, SELL, price, 1)
    ex.buy(3, price, 1)


def test_band_around_last_trade(make_exchange):
    ex = make_exchange(band_bps=1000)  # 10%
    _trade(ex, 1000)
    band = Reject.PRICE_OUT_OF_BAND
    ex.rejected(ex.order_cmd(1, BUY, 1101, 1), band)
    ex.rejected(ex.order_cmd(1, BUY, 899, 1), band)
    ex.rejected(ex.order_cmd(2, SELL, 1101, 1), band)
    ex.rejected(ex.order_cmd(2, SELL, 899, 1, tif=IOC), band)
    ex.rest(1, BUY, 900, 1)  # exactly 10% is inside
    ex.rest(2, SELL, 1100, 1)


def test_band_follows_the_last_trade(make_exchange):
    ex = make_exchange(band_bps=1000)
    _trade(ex, 1000)
    _trade(ex, 1100)
    ex.rest(1, BUY, 1200, 1)  # 1200 is within 10% of 1100, not of 1000
    ex.rejected(ex.order_cmd(1, BUY, 989, 1), Reject.PRICE_OUT_OF_BAND)


def test_band_around_mid_without_trades(make_exchange):
    ex = make_exchange(band_bps=1000)
    ex.rest(1, BUY, 900, 1)
    ex.rest(2, SELL, 1100, 1)  # mid 1000
    ex.rejected(ex.order_cmd(2, SELL, 1101, 1), Reject.PRICE_OUT_OF_BAND)
    ex.rejected(ex.order_cmd(1, BUY, 899, 1), Reject.PRICE_OUT_OF_BAND)
    ex.rest(1, BUY, 901, 1)


def test_no_band_without_a_reference(make_exchange):
    ex = make_exchange(band_bps=1000)
    ex.rest(1, BUY, 10, 1)  # empty book: no reference
    ex.rest(1, BUY, 5000, 1)  # one-sided book: still none
    ex.rest(1, BUY, 1, 1)


def test_band_applies_to_amend(make_exchange):
    ex = make_exchange(band_bps=1000)
    _trade(ex, 1000)
    bid = ex.rest(1, BUY, 950, 1)
    ex.rejected(C.AmendOrder(1, "BTCUSDT", bid, None, 850, None), Reject.PRICE_OUT_OF_BAND)
    assert ex.one(ex.amend(1, bid, new_price=900), OrderAmended).price == 900


def test_qty_limits(make_exchange):
    ex = make_exchange(min_qty=2, max_qty=10)
    ex.rest(2, SELL, 1000, 10)
    q = Reject.QTY_OUT_OF_RANGE
    ex.rejected(ex.order_cmd(1, BUY, 900, 1), q)
    ex.rejected(ex.order_cmd(1, BUY, 900, 11), q)
    ex.rejected(ex.order_cmd(1, BUY, None, 11, type=MARKET, tif=IOC), q)
    ex.rejected(ex.order_cmd(1, BUY, None, 1, type=MARKET, tif=IOC), q)
    ex.rest(1, BUY, 900, 2)
    ex.rest(1, BUY, 900, 10)


def test_nonpositive_quantity_is_invalid_quantity(ex):
    """qty <= 0 is not a size at all (INVALID_QUANTITY), not a size outside the filter."""
    ex.rejected(ex.order_cmd(1, BUY, 1000, 0), Reject.INVALID_QUANTITY)
    ex.rejected(ex.order_cmd(1, BUY, 1000, -5), Reject.INVALID_QUANTITY)


def test_price_limits(make_exchange):
    ex = make_exchange(min_price=10, max_price=5000)
    p = Reject.INVALID_PRICE
    ex.rejected(ex.order_cmd(1, BUY, 9, 1), p)
    ex.rejected(ex.order_cmd(1, BUY, 0, 1), p)
    ex.rejected(ex.order_cmd(1, BUY, -1, 1), p)
    ex.rejected(ex.order_cmd(2, SELL, 5001, 1), p)
    ex.rest(1, BUY, 10, 1)
    ex.rest(2, SELL, 5000, 1)


def test_notional_limits(make_exchange):
    ex = make_exchange(min_notional=1000, max_notional=50_000)
    ex.rest(2, SELL, 1001, 49)
    n = Reject.NOTIONAL_OUT_OF_RANGE
    ex.rejected(ex.order_cmd(1, BUY, 999, 1), n)
    ex.rejected(ex.order_cmd(1, BUY, 1000, 51), n)
    ex.rejected(ex.order_cmd(1, BUY, None, None, type=MARKET, tif=IOC, quote_qty=999), n)
    ex.rejected(ex.order_cmd(1, BUY, None, None, type=MARKET, tif=IOC, quote_qty=50_001), n)
    ex.rejected(ex.order_cmd(1, BUY, None, None, type=MARKET, tif=IOC, quote_qty=0), n)
    ex.rest(1, BUY, 1000, 1)
    ex.rest(1, BUY, 1000, 50)
    assert ex.one(ex.market(1, BUY, quote_qty=50_000), OrderAccepted).qty == 49


def test_max_open_orders_per_account_and_symbol(make_exchange):
    ex = make_exchange(max_open_orders=2)
    a = ex.rest(1, BUY, 900, 1)
    ex.rest(1, BUY, 901, 1)
    ex.rejected(ex.order_cmd(1, BUY, 902, 1), Reject.TOO_MANY_OPEN_ORDERS)
    ex.rejected(ex.order_cmd(1, BUY, 902, 1, type=OrderType.LIMIT_MAKER),
                Reject.TOO_MANY_OPEN_ORDERS)
    # orders that can never rest are not limited
    assert ex.one(ex.buy(1, 902, 1, tif=IOC), OrderExpired).expired_qty == 1
    ex.rest(2, BUY, 903, 1)  # other accounts have their own count
    ex.cancel(1, a)
    ex.rest(1, BUY, 902, 1)


def test_a_quote_amount_market_order_keeps_to_the_market_lot_size(make_exchange):
    """MARKET_LOT_SIZE (minQty/maxQty) applies to a market order by quote amount too:
    the lots the amount buys now must be within it, or the order is refused."""
    ex = make_exchange(min_qty=2, max_qty=5)
    ex.rest(2, SELL, 1000, 5)
    ex.rest(3, SELL, 1001, 5)
    before = (ex.avail(1, "USDT"), ex.open_ids())
    q = Reject.QTY_OUT_OF_RANGE
    ex.rejected(ex.order_cmd(1, BUY, None, None, type=MARKET, tif=IOC, quote_qty=1500), q)
    ex.rejected(ex.order_cmd(1, BUY, None, None, type=MARKET, tif=IOC, quote_qty=7000), q)
    assert (ex.avail(1, "USDT"), ex.open_ids()) == before
    assert ex.one(ex.market(1, BUY, quote_qty=5100), OrderAccepted).qty == 5
    assert ex.one(ex.market(1, BUY, quote_qty=2100), OrderAccepted).qty == 2
