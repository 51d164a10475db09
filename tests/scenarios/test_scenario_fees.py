"""Fees: maker/taker bps in quote on both sides, rounded down per trade, into account 0."""

from __future__ import annotations

from chainbook.accounts import FEE_ACCOUNT
from chainbook.domain.enums import Side
from chainbook.domain.events import BalanceChanged, Trade

BUY, SELL = Side.BUY, Side.SELL
START_USDT, START_BTC = 10_000_000, 1_000_000


def test_exact_fees_taker_buys(ex):
    ex.rest(2, SELL, 1000, 10)
    t = ex.one(ex.buy(1, 1000, 10), Trade)
    assert (t.quote_amount, t.maker_fee, t.taker_fee) == (10_000, 10, 20)
    assert ex.total(1, "USDT") == START_USDT - 10_000 - 20
    assert ex.total(1, "BTC") == START_BTC + 1_000
    assert ex.total(2, "USDT") == START_USDT + 10_000 - 10
    assert ex.total(2, "BTC") == START_BTC - 1_000
    assert ex.total(FEE_ACCOUNT, "USDT") == 30
    assert ex.total(FEE_ACCOUNT, "BTC") == 0


def test_exact_fees_taker_sells(ex):
    ex.rest(1, BUY, 1000, 10)
    t = ex.one(ex.sell(2, 1000, 10), Trade)
    assert (t.maker_fee, t.taker_fee, t.taker_side) == (10, 20, SELL)
    assert ex.total(1, "USDT") == START_USDT - 10_000 - 10  # buyer is the maker
    assert ex.total(2, "USDT") == START_USDT + 10_000 - 20
    assert ex.frozen(1, "USDT") == 0  # the reserve held 20 bps; 10 came back


def test_fees_round_down_per_trade(ex):
    ex.rest(2, SELL, 4999, 1)
    t = ex.one(ex.buy(1, 4999, 1), Trade)
    assert (t.maker_fee, t.taker_fee) == (4, 9)  # 4.999 and 9.998
    ex.rest(2, SELL, 499, 1)
    t = ex.one(ex.buy(1, 499, 1), Trade)
    assert (t.maker_fee, t.taker_fee) == (0, 0)  # 0.499 and 0.998
    assert ex.total(FEE_ACCOUNT, "USDT") == 13


def test_fees_are_per_trade_not_per_order(ex):
    for _ in range(3):
        ex.rest(2, SELL, 499, 1)
    ev = ex.buy(1, 499, 3)
    trades = ex.of(ev, Trade)
    assert len(trades) == 3 and all(t.taker_fee == 0 for t in trades)
    # floor(1497 * 20 / 10000) would be 2; three floors of 0.998 are 0
    assert ex.total(1, "USDT") == START_USDT - 1_497
    assert ex.total(FEE_ACCOUNT, "USDT") == 0


def test_zero_fee_trade_does_not_touch_fee_account(ex):
    ex.rest(2, SELL, 1, 1)
    ev = ex.buy(1, 1, 1)
    assert not [b for b in ex.of(ev, BalanceChanged) if b.account == FEE_ACCOUNT]


def test_price_improvement_leaves_no_frozen_dust(ex):
    ex.rest(2, SELL, 990, 4)
    ex.rest(3, SELL, 995, 6)
    ev = ex.buy(1, 1000, 10)
    trades = ex.of(ev, Trade)
    assert [(t.price, t.qty) for t in trades] == [(990, 4), (995, 6)]
    paid = sum(t.quote_amount + t.taker_fee for t in trades)
    assert paid == 3960 + 7 + 5970 + 11
    assert ex.frozen(1, "USDT") == 0
    assert ex.avail(1, "USDT") == START_USDT - paid


def test_price_improvement_then_resting_fill_leaves_no_dust(ex):
    ex.rest(2, SELL, 990, 4)
    bid = ex.buy(1, 1000, 10)[0].order_id  # 4 fill at 990, 6 rest at 1000
    assert ex.frozen(1, "USDT") > 0
    ev = ex.sell(3, 1000, 6)
    assert ex.one(ev, Trade).maker_order_id == bid
    assert ex.frozen(1, "USDT") == 0
    assert ex.total(1, "USDT") == START_USDT - (3960 + 7) - (6000 + 6)


def test_maker_fee_higher_than_taker_is_still_covered(make_exchange):
    ex = make_exchange(maker_bps=30, taker_bps=5)
    ex.rest(1, BUY, 1000, 10)
    assert ex.frozen(1, "USDT") == 10_000 + 30  # reserve at max(maker, taker)
    t = ex.one(ex.sell(2, 1000, 10), Trade)
    assert (t.maker_fee, t.taker_fee) == (30, 5)
    assert ex.frozen(1, "USDT") == 0
    assert ex.total(1, "USDT") == START_USDT - 10_030


def test_fees_from_several_symbols_accumulate_in_quote(ex):
    ex.rest(2, SELL, 1000, 10)
    ex.buy(1, 1000, 10)
    ex.rest(2, SELL, 1000, 10, symbol="ETHUSDT")
    ex.buy(1, 1000, 10, symbol="ETHUSDT")
    assert ex.total(FEE_ACCOUNT, "USDT") == 60
