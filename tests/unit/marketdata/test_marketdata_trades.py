"""Trades, aggregate trades, their streams, and the start-up replay."""

from __future__ import annotations

from mdfeed import T0_MS, Feed, Recorder

from chainbook.domain.enums import Side
from chainbook.marketdata import MarketData


def _three_fills(feed: Feed, at_ms: int) -> None:
    """Asks 100 x1, 100 x2, 101 x1 then a market buy of 4 lots: trades 1..3."""
    feed.limit(2, Side.SELL, 10000, 1, at_ms)
    feed.limit(3, Side.SELL, 10000, 2, at_ms)
    feed.limit(2, Side.SELL, 10100, 1, at_ms)
    feed.market(1, Side.BUY, 4, at_ms)


def test_recent_trades_shape(feed: Feed) -> None:
    _three_fills(feed, T0_MS + 5)
    feed.trade(9900, 2, taker=Side.SELL, at_ms=T0_MS + 9)
    rows = feed.md.trades("BTCUSDT", 500)
    assert [r["id"] for r in rows] == [1, 2, 3, 4]
    assert rows[0] == {"id": 1, "price": "100.00000000", "qty": "0.00100000",
                       "quoteQty": "0.10000000", "time": T0_MS + 5, "isBuyerMaker": False,
                       "isBestMatch": True}
    assert rows[3]["isBuyerMaker"] is True and rows[3]["quoteQty"] == "0.19800000"
    assert [r["id"] for r in feed.md.trades("BTCUSDT", 2)] == [3, 4]


def test_agg_trades_group_one_taker_at_one_price(feed: Feed) -> None:
    _three_fills(feed, T0_MS + 5)
    feed.trade(10100, 1, at_ms=T0_MS + 8)  # same price, another taker order: new agg
    feed.trade(9900, 2, taker=Side.SELL, at_ms=T0_MS + 9)
    rows = feed.md.agg_trades("BTCUSDT", 500, None, None, None)
    assert rows == [
        {"a": 1, "p": "100.00000000", "q": "0.00300000", "f": 1, "l": 2, "T": T0_MS + 5,
         "m": False, "M": True},
        {"a": 2, "p": "101.00000000", "q": "0.00100000", "f": 3, "l": 3, "T": T0_MS + 5,
         "m": False, "M": True},
        {"a": 3, "p": "101.00000000", "q": "0.00100000", "f": 4, "l": 4, "T": T0_MS + 8,
         "m": False, "M": True},
        {"a": 4, "p": "99.00000000", "q": "0.00200000", "f": 5, "l": 5, "T": T0_MS + 9,
         "m": True, "M": True},
    ]
    ids = lambda **kw: [r["a"] for r in feed.md.agg_trades("BTCUSDT", **kw)]  # noqa: E731
    assert ids(limit=2) == [3, 4]
    assert ids(limit=2, from_id=2) == [2, 3]
    assert ids(limit=500, start_ms=T0_MS + 6) == [3, 4]
    assert ids(limit=1, start_ms=T0_MS + 5, end_ms=T0_MS + 8) == [1]
    assert ids(limit=500, start_ms=T0_MS + 5, end_ms=T0_MS + 8) == [1, 2, 3]
    assert ids(limit=1, end_ms=T0_MS + 8) == [3]
    assert ids(limit=500, from_id=99) == []


def test_trade_and_agg_trade_streams(feed: Feed) -> None:
    feed.now_ms = T0_MS + 5
    _three_fills(feed, None)
    trades = feed.pub.on("btcusdt@trade")
    assert [t["t"] for t in trades] == [1, 2, 3]
    assert trades[0] == {"e": "trade", "E": T0_MS + 5, "s": "BTCUSDT", "t": 1,
                         "p": "100.00000000", "q": "0.00100000", "T": T0_MS + 5, "m": False,
                         "M": True}
    aggs = feed.pub.on("btcusdt@aggTrade")
    assert [(a["e"], a["a"], a["f"], a["l"], a["q"]) for a in aggs] == [
        ("aggTrade", 1, 1, 2, "0.00300000"), ("aggTrade", 2, 3, 3, "0.00100000")]


def test_replay_publishes_nothing_and_rebuilds_the_same_state() -> None:
    live = Feed()
    for i in range(30):
        live.trade(10000 + (i % 7) * 10, 1 + i % 3, Side.BUY if i % 2 else Side.SELL,
                   at_ms=T0_MS + i * 45_000)
    live.limit(1, Side.BUY, 9000, 5)
    live.limit(2, Side.SELL, 12000, 5)
    pub = Recorder()
    md = MarketData(live.core, pub, lambda: live.now_ms)
    md.on_batch(live.history, False)
    assert pub.sent == []
    md.flush(live.now_ms)  # replayed changes are not in the diff windows either
    assert [p for s, p in pub.sent if s.startswith("btcusdt@depth@")] == []
    assert pub.on("btcusdt@depth5")[0] == live.md.depth("BTCUSDT", 5)  # partial: a snapshot
    for name in ("depth", "trades"):
        assert getattr(md, name)("BTCUSDT", 1000) == getattr(live.md, name)("BTCUSDT", 1000)
    assert md.agg_trades("BTCUSDT", 1000, None, None, None) == live.md.agg_trades(
        "BTCUSDT", 1000, None, None, None)
    for interval in ("1s", "1m", "5m", "1h", "1w", "1M"):
        assert md.klines("BTCUSDT", interval, 1000, None, None) == live.md.klines(
            "BTCUSDT", interval, 1000, None, None)
    assert md.ticker_24h("BTCUSDT") == live.md.ticker_24h("BTCUSDT")
    # the first live change after the replay continues the id counter
    live_feed_next = md.depth("BTCUSDT", 5)["lastUpdateId"] + 1
    live.md = md
    live.limit(1, Side.BUY, 9100, 1)
    md.flush(live.now_ms + 100)
    [d] = pub.on("btcusdt@depth@100ms")
    assert d["U"] == d["u"] == live_feed_next
