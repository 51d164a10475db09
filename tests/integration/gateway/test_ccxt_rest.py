"""ccxt (sync) against a real server: two demo accounts trade; every view agrees."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest
from gwclient import D, Server, ccxt_client, fee, totals

BTC = "BTC/USDT"
P = Decimal("30000.01")


def test_load_markets_precision(server: Server) -> None:
    ex = ccxt_client(server)
    markets = ex.load_markets()
    assert {"BTC/USDT", "ETH/USDT", "ETH/BTC"} <= set(markets)
    btc = markets[BTC]
    assert (btc["id"], btc["base"], btc["quote"]) == ("BTCUSDT", "BTC", "USDT")
    assert btc["spot"] and btc["active"] and not btc["contract"]
    assert D(btc["precision"]["price"]) == Decimal("0.01")
    assert D(btc["precision"]["amount"]) == Decimal("0.00001")
    assert ex.price_to_precision(BTC, 30000.014) == "30000.01"
    assert ex.amount_to_precision(BTC, 0.123456) == "0.12345"
    assert markets["ETH/BTC"]["base"] == "ETH" and markets["ETH/BTC"]["quote"] == "BTC"


def test_fetch_balance_shape(server: Server) -> None:
    ex = ccxt_client(server, "demo2")
    bal = ex.fetch_balance()
    for asset in ("BTC", "ETH", "USDT"):
        assert bal[asset]["total"] == pytest.approx(bal[asset]["free"] + bal[asset]["used"])
        assert bal[asset]["total"] > 0
    info = {b["asset"]: b for b in bal["info"]["balances"]}
    assert D(bal["USDT"]["free"]) == Decimal(info["USDT"]["free"])


def test_two_accounts_trade_and_every_view_agrees(clean: Server) -> None:
    a, b = ccxt_client(clean, "demo1"), ccxt_client(clean, "demo2")
    a.load_markets()
    b.load_markets()
    a0, b0 = totals(a), totals(b)
    q1, q2 = Decimal("0.00333"), Decimal("0.00667")

    ask = a.create_order(BTC, "limit", "sell", float(q1 + q2), float(P))
    assert ask["status"] == "open" and ask["filled"] == 0
    assert [o["id"] for o in a.fetch_open_orders(BTC)] == [ask["id"]]
    assert b.fetch_open_orders(BTC) == []
    # a taker buy above the ask trades at the resting order's price
    t1 = b.create_order(BTC, "limit", "buy", float(q1), 30010.0)
    assert t1["status"] == "closed" and D(t1["filled"]) == q1 and D(t1["average"]) == P
    assert D(t1["fee"]["cost"]) == fee(P, q1) and t1["fee"]["currency"] == "USDT"
    part = a.fetch_order(ask["id"], BTC)
    assert part["status"] == "open" and D(part["filled"]) == q1
    assert D(part["remaining"]) == q2
    t2 = b.create_order(BTC, "limit", "buy", float(q2), float(P))
    assert t2["status"] == "closed" and D(t2["filled"]) == q2

    done = a.fetch_order(ask["id"], BTC)
    assert done["status"] == "closed" and D(done["filled"]) == q1 + q2
    assert D(done["cost"]) == P * (q1 + q2)
    assert a.fetch_open_orders(BTC) == []
    assert ask["id"] in [o["id"] for o in a.fetch_closed_orders(BTC)]
    assert {ask["id"]} <= {o["id"] for o in a.fetch_orders(BTC)}
    assert {t1["id"], t2["id"]} <= {o["id"] for o in b.fetch_orders(BTC)}
    assert ask["id"] not in {o["id"] for o in b.fetch_orders(BTC)}

    mine = a.fetch_order_trades(ask["id"], BTC)
    assert [(D(t["amount"]), D(t["price"])) for t in mine] == [(q1, P), (q2, P)]
    assert all(t["side"] == "sell" and t["takerOrMaker"] == "maker" for t in mine)
    assert [D(t["fee"]["cost"]) for t in mine] == [fee(P, q1), fee(P, q2)]
    theirs = b.fetch_my_trades(BTC)[-2:]
    assert [t["id"] for t in theirs] == [t["id"] for t in mine]
    assert all(t["side"] == "buy" and t["takerOrMaker"] == "taker" for t in theirs)
    assert [t["order"] for t in theirs] == [t1["id"], t2["id"]]
    assert a.fetch_my_trades(BTC)[-2:] == mine

    fees = fee(P, q1) + fee(P, q2)
    notional = P * (q1 + q2)
    a1, b1 = totals(a), totals(b)
    assert a1["BTC"] == (a0["BTC"][0] - q1 - q2, a0["BTC"][1])
    assert a1["USDT"] == (a0["USDT"][0] + notional - fees, a0["USDT"][1])
    assert b1["BTC"] == (b0["BTC"][0] + q1 + q2, b0["BTC"][1])
    assert b1["USDT"] == (b0["USDT"][0] - notional - fees, b0["USDT"][1])
    assert a1["ETH"] == a0["ETH"] and b1["ETH"] == b0["ETH"]

    # public market data tells the same story
    pub = ccxt_client(clean, None)
    trades = pub.fetch_trades(BTC, limit=1000)
    assert [(D(t["amount"]), D(t["price"]), t["side"]) for t in trades[-2:]] == [
        (q1, P, "buy"), (q2, P, "buy")]
    ticker = pub.fetch_ticker(BTC)
    assert D(ticker["last"]) == P
    total_volume = sum((D(t["amount"]) for t in trades), Decimal(0))
    assert D(ticker["baseVolume"]) == total_volume
    assert D(ticker["high"]) >= P >= D(ticker["low"])
    daily = pub.fetch_ohlcv(BTC, "1d")
    minutes = pub.fetch_ohlcv(BTC, "1m", limit=1000)
    assert D(daily[-1][4]) == D(minutes[-1][4]) == P  # close
    assert sum((D(c[5]) for c in minutes), Decimal(0)) == total_volume
    assert sum((D(c[5]) for c in daily), Decimal(0)) == total_volume
    assert D(pub.fetch_tickers([BTC])[BTC]["last"]) == P
    assert D(pub.fetch_last_prices([BTC])[BTC]["price"]) == P


def test_order_book_and_bids_asks(clean: Server) -> None:
    a, b = ccxt_client(clean, "demo1"), ccxt_client(clean, "demo2")
    a.create_order(BTC, "limit", "buy", 0.001, 29990.0)
    b.create_order(BTC, "limit", "buy", 0.002, 29990.0)
    a.create_order(BTC, "limit", "buy", 0.003, 29980.5)
    b.create_order(BTC, "limit", "sell", 0.004, 30020.0)
    a.create_order(BTC, "limit", "sell", 0.005, 30025.25)
    book = ccxt_client(clean, None).fetch_order_book(BTC)
    assert [[D(p), D(q)] for p, q in book["bids"]] == [
        [Decimal("29990"), Decimal("0.003")], [Decimal("29980.5"), Decimal("0.003")]]
    assert [[D(p), D(q)] for p, q in book["asks"]] == [
        [Decimal("30020"), Decimal("0.004")], [Decimal("30025.25"), Decimal("0.005")]]
    assert isinstance(book["nonce"], int)
    ba = ccxt_client(clean, None).fetch_bids_asks([BTC])[BTC]
    assert (D(ba["bid"]), D(ba["bidVolume"])) == (Decimal("29990"), Decimal("0.003"))
    assert (D(ba["ask"]), D(ba["askVolume"])) == (Decimal("30020"), Decimal("0.004"))
    t = ccxt_client(clean, None).fetch_ticker(BTC)
    assert (D(t["bid"]), D(t["ask"])) == (Decimal("29990"), Decimal("30020"))


def test_market_orders_by_amount_and_by_cost(clean: Server) -> None:
    a, b = ccxt_client(clean, "demo1"), ccxt_client(clean, "demo2")
    a.load_markets()
    ask1, ask2 = Decimal("30000.00"), Decimal("30001.00")
    a.create_order(BTC, "limit", "sell", 0.002, float(ask1))
    a.create_order(BTC, "limit", "sell", 0.01, float(ask2))
    b0 = totals(b)

    # by amount: 0.002 @ 30000 then 0.001 @ 30001
    m1 = b.create_order(BTC, "market", "buy", 0.003)
    assert m1["type"] == "market" and m1["status"] == "closed"
    assert D(m1["filled"]) == Decimal("0.003")
    cost1 = ask1 * Decimal("0.002") + ask2 * Decimal("0.001")
    assert D(m1["cost"]) == cost1
    fee1 = fee(ask1, Decimal("0.002")) + fee(ask2, Decimal("0.001"))
    assert sum((D(f["cost"]) for f in m1["fees"]), Decimal(0)) == fee1

    # by cost (quoteOrderQty): 100 USDT at 30001 buys 0.00333 BTC (whole lots)
    m2 = b.create_market_buy_order_with_cost(BTC, 100)
    qty2 = Decimal("0.00333")
    assert D(m2["filled"]) == qty2 and D(m2["cost"]) == ask2 * qty2
    assert m2["status"] == "closed"  # origQty = executedQty (spec §4.9)
    b1 = totals(b)
    assert b1["BTC"][0] == b0["BTC"][0] + Decimal("0.003") + qty2
    assert b1["USDT"][0] == b0["USDT"][0] - cost1 - fee1 - ask2 * qty2 - fee(ask2, qty2)


def test_post_only_that_would_cross_is_refused(clean: Server) -> None:
    a, b = ccxt_client(clean, "demo1"), ccxt_client(clean, "demo2")
    a.create_order(BTC, "limit", "sell", 0.001, 30050.0)
    before = totals(b)
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        b.create_order(BTC, "limit", "buy", 0.001, 30050.0, {"postOnly": True})
    assert totals(b) == before and b.fetch_open_orders(BTC) == []
    ok = b.create_order(BTC, "limit", "buy", 0.001, 30040.0, {"postOnly": True})
    assert ok["status"] == "open" and ok["postOnly"] is True


def test_cancel_partially_filled_keeps_filled(clean: Server) -> None:
    a, b = ccxt_client(clean, "demo1"), ccxt_client(clean, "demo2")
    bid = a.create_order(BTC, "limit", "buy", 0.005, 29995.0)
    b.create_order(BTC, "limit", "sell", 0.002, 29995.0)
    canceled = a.cancel_order(bid["id"], BTC)
    assert canceled["status"] == "canceled" and D(canceled["filled"]) == Decimal("0.002")
    again = a.fetch_order(bid["id"], BTC)
    assert again["status"] == "canceled" and D(again["filled"]) == Decimal("0.002")
    assert bid["id"] in {o["id"] for o in a.fetch_canceled_orders(BTC)}
    with pytest.raises(ccxt.OrderNotFound):
        a.cancel_order(bid["id"], BTC)  # already closed: -2011
    assert totals(a)["USDT"][1] == 0


def test_cancel_all_orders(clean: Server) -> None:
    a = ccxt_client(clean, "demo1")
    b = ccxt_client(clean, "demo2")
    ids = {a.create_order(BTC, "limit", "buy", 0.001, 29900.0 + i)["id"] for i in range(3)}
    other = b.create_order(BTC, "limit", "buy", 0.001, 29900.0)
    eth = a.create_order("ETH/USDT", "limit", "buy", 0.01, 2000.0)
    result = a.cancel_all_orders(BTC)
    assert {o["id"] for o in result} == ids
    assert all(o["status"] == "canceled" for o in result)
    assert [o["id"] for o in a.fetch_open_orders()] == [eth["id"]]
    assert [o["id"] for o in b.fetch_open_orders(BTC)] == [other["id"]]
    # only the ETH bid still reserves quote: notional + the 10 bps fee
    assert totals(a)["USDT"][1] == Decimal("20") + fee(Decimal("2000"), Decimal("0.01"))
