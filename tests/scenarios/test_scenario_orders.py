"""Order types and time in force: LIMIT GTC/IOC/FOK, MARKET by qty and quote, LIMIT_MAKER."""

from __future__ import annotations

from chainbook.domain.commands import Deposit
from chainbook.domain.enums import (
    ExpireReason,
    OrderType,
    Reject,
    Side,
    TimeInForce,
)
from chainbook.domain.events import (
    BookLevelChanged,
    OrderAccepted,
    OrderExpired,
    Trade,
)

BUY, SELL = Side.BUY, Side.SELL
IOC, FOK = TimeInForce.IOC, TimeInForce.FOK
START_USDT, START_BTC = 10_000_000, 1_000_000


# --- LIMIT GTC ---------------------------------------------------------------------------


def test_gtc_buy_rests_and_freezes_notional_plus_max_fee(ex):
    ev = ex.buy(1, 1000, 10)
    acc = ex.one(ev, OrderAccepted)
    assert (acc.side, acc.type, acc.tif, acc.price, acc.qty) == (BUY, OrderType.LIMIT,
                                                                 TimeInForce.GTC, 1000, 10)
    # 10 lots x 1000 ticks x 1 = 10_000 notional; max(maker 10, taker 20) bps = 20
    assert ex.frozen(1, "USDT") == 10_020
    assert ex.avail(1, "USDT") == START_USDT - 10_020
    assert ex.depth(BUY) == [(1000, 10)]
    assert ex.one(ev, BookLevelChanged) == BookLevelChanged("BTCUSDT", BUY, 1000, 10)


def test_gtc_sell_rests_and_freezes_base(ex):
    ex.sell(2, 1000, 7)
    assert ex.frozen(2, "BTC") == 700  # 7 lots x 100 base units
    assert ex.frozen(2, "USDT") == 0
    assert ex.depth(SELL) == [(1000, 7)]


def test_gtc_crossing_trades_at_maker_price_and_rests_remainder(ex):
    ask = ex.rest(2, SELL, 990, 4)
    ev = ex.buy(1, 1000, 10)
    t = ex.one(ev, Trade)
    assert (t.price, t.qty, t.maker_order_id, t.maker_left, t.taker_left) == (990, 4, ask, 0, 6)
    assert t.quote_amount == 3960
    assert ex.depth(SELL) == []
    assert ex.depth(BUY) == [(1000, 6)]
    assert not ex.of(ev, OrderExpired)


def test_price_then_time_priority(ex):
    a1 = ex.rest(2, SELL, 1001, 1)
    a2 = ex.rest(3, SELL, 1000, 1)
    a3 = ex.rest(2, SELL, 1000, 1)
    a4 = ex.rest(3, SELL, 999, 1)
    ev = ex.buy(1, 1001, 4)
    assert [t.maker_order_id for t in ex.of(ev, Trade)] == [a4, a2, a3, a1]
    assert [t.price for t in ex.of(ev, Trade)] == [999, 1000, 1000, 1001]


def test_buy_walks_levels_and_stops_at_limit(ex):
    ex.rest(2, SELL, 1000, 2)
    ex.rest(2, SELL, 1001, 2)
    ex.rest(2, SELL, 1003, 2)
    ev = ex.buy(1, 1002, 5)
    assert [(t.price, t.qty) for t in ex.of(ev, Trade)] == [(1000, 2), (1001, 2)]
    assert ex.depth(SELL) == [(1003, 2)]
    assert ex.depth(BUY) == [(1002, 1)]


def test_sell_walks_bids_best_first(ex):
    ex.rest(1, BUY, 1000, 2)
    ex.rest(1, BUY, 1002, 2)
    ev = ex.sell(2, 999, 3)
    assert [(t.price, t.qty) for t in ex.of(ev, Trade)] == [(1002, 2), (1000, 1)]
    assert ex.depth(BUY) == [(1000, 1)]


# --- IOC / FOK ---------------------------------------------------------------------------


def test_ioc_partial_fill_expires_remainder_and_releases(ex):
    ex.rest(2, SELL, 1000, 4)
    ev = ex.buy(1, 1000, 10, tif=IOC)
    assert ex.kinds(ev)[:3] == ["OrderAccepted", "Trade", "OrderExpired"]
    exp = ex.one(ev, OrderExpired)
    assert (exp.expired_qty, exp.filled_qty, exp.reason) == (6, 4, ExpireReason.IOC)
    assert ex.frozen(1, "USDT") == 0
    assert ex.avail(1, "USDT") == START_USDT - 4000 - 8  # notional + 20 bps taker fee
    assert ex.depth(BUY) == [] and ex.depth(SELL) == []


def test_ioc_without_liquidity_expires_untouched(ex):
    before = ex.total(1, "USDT")
    ev = ex.buy(1, 1000, 3, tif=IOC)
    exp = ex.one(ev, OrderExpired)
    assert (exp.expired_qty, exp.filled_qty, exp.reason) == (3, 0, ExpireReason.IOC)
    assert ex.total(1, "USDT") == before and ex.frozen(1, "USDT") == 0
    assert ex.depth(BUY) == []


def test_fok_that_cannot_fill_fully_does_not_trade(ex):
    ex.rest(2, SELL, 1000, 3)
    ex.rest(2, SELL, 1005, 3)
    book = ex.depth(SELL)
    ev = ex.buy(1, 1000, 5, tif=FOK)
    assert not ex.of(ev, Trade)
    exp = ex.one(ev, OrderExpired)
    assert (exp.expired_qty, exp.filled_qty, exp.reason) == (5, 0, ExpireReason.FOK)
    assert ex.depth(SELL) == book
    assert ex.frozen(1, "USDT") == 0 and ex.avail(1, "USDT") == START_USDT


def test_fok_fills_completely_across_levels(ex):
    ex.rest(2, SELL, 1000, 3)
    ex.rest(3, SELL, 1001, 3)
    ev = ex.buy(1, 1001, 5, tif=FOK)
    assert [(t.price, t.qty) for t in ex.of(ev, Trade)] == [(1000, 3), (1001, 2)]
    assert not ex.of(ev, OrderExpired)
    assert ex.depth(SELL) == [(1001, 1)]
    assert ex.frozen(1, "USDT") == 0


def test_fok_sell_exact_fill(ex):
    ex.rest(1, BUY, 1000, 5)
    ev = ex.sell(2, 1000, 5, tif=FOK)
    assert sum(t.qty for t in ex.of(ev, Trade)) == 5
    assert ex.depth(BUY) == []


# --- MARKET ------------------------------------------------------------------------------


def test_market_buy_by_qty_walks_book_and_pays_exactly(ex):
    ex.rest(2, SELL, 1000, 2)
    ex.rest(3, SELL, 1010, 5)
    ev = ex.market(1, BUY, qty=4)
    acc = ex.one(ev, OrderAccepted)
    assert (acc.type, acc.price, acc.qty, acc.quote_qty) == (OrderType.MARKET, 0, 4, 0)
    assert [(t.price, t.qty) for t in ex.of(ev, Trade)] == [(1000, 2), (1010, 2)]
    assert not ex.of(ev, OrderExpired)
    cost = 2000 + 2020
    fees = 2000 * 20 // 10_000 + 2020 * 20 // 10_000
    assert ex.avail(1, "USDT") == START_USDT - cost - fees
    assert ex.frozen(1, "USDT") == 0
    assert ex.avail(1, "BTC") == START_BTC + 400


def test_market_buy_larger_than_book_expires_remainder(ex):
    ex.rest(2, SELL, 1000, 2)
    ev = ex.market(1, BUY, qty=5)
    assert sum(t.qty for t in ex.of(ev, Trade)) == 2
    exp = ex.one(ev, OrderExpired)
    assert (exp.expired_qty, exp.filled_qty, exp.reason) == (3, 2, ExpireReason.IOC)
    assert ex.frozen(1, "USDT") == 0


def test_market_on_empty_book_expires_and_changes_no_balance(ex):
    before = (ex.avail(1, "USDT"), ex.frozen(1, "USDT"))
    ev = ex.market(1, BUY, qty=5)
    exp = ex.one(ev, OrderExpired)
    assert (exp.expired_qty, exp.filled_qty) == (5, 0)
    assert (ex.avail(1, "USDT"), ex.frozen(1, "USDT")) == before


def test_market_sell_by_qty(ex):
    ex.rest(1, BUY, 1000, 3)
    ex.rest(3, BUY, 990, 3)
    ev = ex.market(2, SELL, qty=4)
    assert [(t.price, t.qty) for t in ex.of(ev, Trade)] == [(1000, 3), (990, 1)]
    assert ex.avail(2, "BTC") == START_BTC - 400 and ex.frozen(2, "BTC") == 0
    proceeds = 3000 - 3000 * 20 // 10_000 + 990 - 990 * 20 // 10_000
    assert ex.avail(2, "USDT") == START_USDT + proceeds


def test_market_buy_by_quote_qty_buys_what_the_amount_pays_for(ex):
    ex.rest(2, SELL, 1000, 2)
    ex.rest(3, SELL, 1010, 5)
    ev = ex.market(1, BUY, quote_qty=4100)
    acc = ex.one(ev, OrderAccepted)
    assert (acc.qty, acc.quote_qty) == (4, 4100)  # 2000 + 2 x 1010 = 4020 <= 4100 < 5030
    trades = ex.of(ev, Trade)
    assert [(t.price, t.qty) for t in trades] == [(1000, 2), (1010, 2)]
    assert sum(t.quote_amount for t in trades) == 4020
    assert ex.avail(1, "USDT") == START_USDT - 4020 - (4 + 4)  # fees on top, per trade
    assert ex.frozen(1, "USDT") == 0


def test_market_sell_by_quote_qty_sells_up_to_the_amount(ex):
    ex.rest(1, BUY, 1000, 3)
    ex.rest(3, BUY, 990, 5)
    ev = ex.market(2, SELL, quote_qty=4000)
    trades = ex.of(ev, Trade)
    assert [(t.price, t.qty) for t in trades] == [(1000, 3), (990, 1)]
    assert sum(t.quote_amount for t in trades) == 3990
    assert ex.avail(2, "BTC") == START_BTC - 400 and ex.frozen(2, "BTC") == 0


def test_market_sell_by_quote_qty_stops_inside_the_best_bid(ex):
    """The amount ends inside the best bid: the order is the lots it sells there, not
    more lots priced at the lower bids behind it (which the match would then take at
    the best bid, selling several times the amount asked)."""
    ex.rest(1, BUY, 1000, 10)
    ex.rest(3, BUY, 100, 10)
    ev = ex.market(2, SELL, quote_qty=1900)
    assert ex.one(ev, OrderAccepted).qty == 1  # 1900 // 1000
    trades = ex.of(ev, Trade)
    assert [(t.price, t.qty) for t in trades] == [(1000, 1)]
    assert sum(t.quote_amount for t in trades) <= 1900


def test_market_buy_with_exact_funds_never_overdraws(make_exchange):
    ex = make_exchange(accounts=(2,))
    # account 1 holds exactly the cost of 3 lots at 1000 plus the 20 bps taker fee
    ex.apply(Deposit(1, "USDT", 3006, "exact"))
    ex.rest(2, SELL, 1000, 3)
    ex.rest(2, SELL, 1000, 3)
    ev = ex.market(1, BUY, qty=3)
    assert sum(t.qty for t in ex.of(ev, Trade)) == 3
    assert ex.avail(1, "USDT") == 0 and ex.frozen(1, "USDT") == 0


def test_market_buy_short_of_funds_is_rejected(make_exchange):
    ex = make_exchange(accounts=(2,))
    ex.apply(Deposit(1, "USDT", 3005, "short"))
    ex.rest(2, SELL, 1000, 3)
    ex.rejected(ex.order_cmd(1, BUY, None, 3, type=OrderType.MARKET, tif=IOC),
                Reject.INSUFFICIENT_BALANCE)


def test_market_sell_short_of_base_is_rejected(make_exchange):
    ex = make_exchange(accounts=(1,))
    ex.apply(Deposit(2, "BTC", 250, "short"))  # 2.5 lots
    ex.rest(1, BUY, 1000, 5)
    ex.rejected(ex.order_cmd(2, SELL, None, 3, type=OrderType.MARKET, tif=IOC),
                Reject.INSUFFICIENT_BALANCE)
    ev = ex.market(2, SELL, qty=2)
    assert sum(t.qty for t in ex.of(ev, Trade)) == 2


def test_market_param_rules(ex):
    ex.rest(2, SELL, 1000, 3)
    m = OrderType.MARKET
    for cmd in (
        ex.order_cmd(1, BUY, 1000, 1, type=m, tif=IOC),  # a price
        ex.order_cmd(1, BUY, None, 1, type=m, tif=FOK),  # FOK
        ex.order_cmd(1, BUY, None, 1, type=m, tif=IOC, quote_qty=1000),  # both sizes
        ex.order_cmd(1, BUY, None, None, type=m, tif=IOC),  # no size
    ):
        ex.rejected(cmd, Reject.INVALID_ORDER_PARAMS)


# --- LIMIT_MAKER -------------------------------------------------------------------------


def test_limit_maker_rests_when_it_would_not_take(ex):
    ex.rest(2, SELL, 1000, 3)
    oid = ex.rest(1, BUY, 999, 2, type=OrderType.LIMIT_MAKER)
    assert oid in ex.open_ids()
    assert ex.depth(BUY) == [(999, 2)]


def test_limit_maker_that_would_take_is_rejected(ex):
    ex.rest(2, SELL, 1000, 3)
    ex.rest(1, BUY, 990, 3)
    ex.rejected(ex.order_cmd(1, BUY, 1000, 2, type=OrderType.LIMIT_MAKER), Reject.WOULD_TAKE)
    ex.rejected(ex.order_cmd(3, SELL, 990, 2, type=OrderType.LIMIT_MAKER), Reject.WOULD_TAKE)
    ex.rejected(ex.order_cmd(3, SELL, 900, 2, type=OrderType.LIMIT_MAKER), Reject.WOULD_TAKE)


def test_limit_maker_must_be_gtc(ex):
    ex.rejected(ex.order_cmd(1, BUY, 1000, 2, type=OrderType.LIMIT_MAKER, tif=IOC),
                Reject.INVALID_ORDER_PARAMS)


def test_limit_params(ex):
    ex.rejected(ex.order_cmd(1, BUY, None, 2), Reject.INVALID_ORDER_PARAMS)
    ex.rejected(ex.order_cmd(1, BUY, 1000, None), Reject.INVALID_ORDER_PARAMS)
    ex.rejected(ex.order_cmd(1, BUY, 1000, 2, quote_qty=2000), Reject.INVALID_ORDER_PARAMS)
