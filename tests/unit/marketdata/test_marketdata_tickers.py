"""24 h tickers on a known trade list, price, and the ticker streams."""

from __future__ import annotations

from mdfeed import T0_MS, Feed

from chainbook.domain.enums import Side

HOUR = 3_600_000
NOW = T0_MS - T0_MS % 60_000 + 30_000  # mid-minute


def _session(feed: Feed) -> None:
    feed.trade(9000, 1, Side.BUY, at_ms=NOW - 25 * HOUR)  # before the window
    feed.trade(10000, 2, Side.BUY, at_ms=NOW - 23 * HOUR)
    feed.trade(11000, 1, Side.SELL, at_ms=NOW - HOUR)
    feed.trade(9500, 3, Side.BUY, at_ms=NOW - 60_000)
    feed.limit(1, Side.BUY, 9400, 4, at_ms=NOW)
    feed.limit(2, Side.SELL, 9600, 5, at_ms=NOW)


def test_ticker_24h_figures(feed: Feed) -> None:
    _session(feed)
    assert feed.md.ticker_24h("BTCUSDT") == {
        "symbol": "BTCUSDT", "priceChange": "-5.00000000", "priceChangePercent": "-5.000",
        "weightedAvgPrice": "99.16666667", "prevClosePrice": "90.00000000",
        "lastPrice": "95.00000000", "lastQty": "0.00300000", "bidPrice": "94.00000000",
        "bidQty": "0.00400000", "askPrice": "96.00000000", "askQty": "0.00500000",
        "openPrice": "100.00000000", "highPrice": "110.00000000", "lowPrice": "95.00000000",
        "volume": "0.00600000", "quoteVolume": "0.59500000", "openTime": NOW - 24 * HOUR,
        "closeTime": NOW, "firstId": 2, "lastId": 4, "count": 3,
    }
    assert feed.md.price("BTCUSDT") == {"symbol": "BTCUSDT", "price": "95.00000000"}


def test_window_rolls_by_whole_minutes(feed: Feed) -> None:
    _session(feed)
    start = NOW - 23 * HOUR - NOW % 60_000  # minute of the trade at -23 h
    feed.now_ms = start + 24 * HOUR + 59_999  # that minute still overlaps the window
    assert feed.md.ticker_24h("BTCUSDT")["count"] == 3
    feed.now_ms = start + 24 * HOUR + 60_000  # now it has left as a whole
    t = feed.md.ticker_24h("BTCUSDT")
    assert (t["count"], t["openPrice"], t["prevClosePrice"], t["firstId"]) == (
        2, "110.00000000", "100.00000000", 3)
    feed.now_ms = NOW + 48 * HOUR  # nothing left: empty window, last price kept
    t = feed.md.ticker_24h("BTCUSDT")
    assert (t["count"], t["firstId"], t["lastId"], t["volume"], t["openPrice"],
            t["lastPrice"], t["priceChange"]) == (0, -1, -1, "0.00000000", "95.00000000",
                                                  "95.00000000", "0.00000000")


def test_no_trades_yet(feed: Feed) -> None:
    t = feed.md.ticker_24h("BTCUSDT")
    assert (t["lastPrice"], t["count"], t["weightedAvgPrice"], t["priceChangePercent"]) == (
        "0.00000000", 0, "0.00000000", "0.000")


def test_ticker_streams_every_second(feed: Feed) -> None:
    _session(feed)
    feed.pub.want = {"btcusdt@ticker", "btcusdt@miniTicker", "!ticker@arr",
                     "!miniTicker@arr"}
    feed.pub.sent.clear()
    feed.md.flush(NOW - NOW % 1000)
    feed.md.flush(NOW - NOW % 1000 + 100)  # 100 ms slot: no tickers
    assert [s for s, _ in feed.pub.sent] == ["btcusdt@ticker", "btcusdt@miniTicker",
                                             "!ticker@arr", "!miniTicker@arr"]
    now = NOW - NOW % 1000
    mini = feed.pub.on("btcusdt@miniTicker")[0]
    assert mini == {"e": "24hrMiniTicker", "E": now, "s": "BTCUSDT", "c": "95.00000000",
                    "o": "100.00000000", "h": "110.00000000", "l": "95.00000000",
                    "v": "0.00600000", "q": "0.59500000"}
    full = feed.pub.on("btcusdt@ticker")[0]
    assert full["e"] == "24hrTicker" and (full["x"], full["b"], full["A"], full["n"],
                                          full["F"], full["L"], full["P"]) == (
        "90.00000000", "94.00000000", "0.00500000", 3, 2, 4, "-5.000")
    assert set(full) == set("eEspPwxcQbBaAohlvqOCFLn")
    assert feed.pub.on("!ticker@arr")[0] == [full]
    assert feed.pub.on("!miniTicker@arr")[0] == [mini]
    feed.now_ms = now
    assert feed.md.stream_snapshot("btcusdt@miniTicker") == mini
    assert feed.md.stream_snapshot("!ticker@arr") == [full]
    assert feed.md.stream_snapshot("btcusdt@trade") is None


def test_the_arrays_are_also_served_under_their_speed_suffixed_names(feed: Feed) -> None:
    """python-binance's miniticker_socket subscribes "!miniTicker@arr@1000ms" (Binance
    accepts the speed suffix); it gets the same array (found by review: 403)."""
    _session(feed)
    feed.pub.want = {"!miniTicker@arr", "!miniTicker@arr@1000ms", "!ticker@arr@1000ms"}
    feed.pub.sent.clear()
    feed.md.flush(NOW - NOW % 1000)
    assert [s for s, _ in feed.pub.sent] == ["!ticker@arr@1000ms", "!miniTicker@arr",
                                             "!miniTicker@arr@1000ms"]
    assert feed.pub.on("!miniTicker@arr@1000ms") == feed.pub.on("!miniTicker@arr")
    feed.now_ms = NOW - NOW % 1000
    assert feed.md.stream_snapshot("!miniTicker@arr@1000ms") == feed.pub.on(
        "!miniTicker@arr")[0]
    assert feed.md.stream_snapshot("btcusdt@bookTicker") == {
        "u": feed.md.depth("BTCUSDT", 1)["lastUpdateId"], "s": "BTCUSDT",
        "b": "94.00000000", "B": "0.00400000", "a": "96.00000000", "A": "0.00500000"}
