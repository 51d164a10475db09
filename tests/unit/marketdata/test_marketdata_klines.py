"""Klines: UTC buckets for every interval (1w from Monday, 1M calendar months), REST rows
and the kline streams."""

from __future__ import annotations

import pytest
from mdfeed import T0_MS, Feed

from chainbook.domain.enums import Side
from chainbook.marketdata.klines import INTERVALS, bucket
from chainbook.marketdata.market import KLINE_CLOSE_GRACE_MS, MarketData

MON_2024_01_01 = 1_704_067_200_000  # Monday 2024-01-01T00:00:00Z
DAY = 86_400_000


def test_every_binance_interval_is_served() -> None:
    assert INTERVALS == ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h",
                         "12h", "1d", "3d", "1w", "1M")


@pytest.mark.parametrize(("interval", "ts", "start", "end"), [
    ("1s", MON_2024_01_01 + 1_234, MON_2024_01_01 + 1_000, MON_2024_01_01 + 1_999),
    ("1m", MON_2024_01_01 + 61_000, MON_2024_01_01 + 60_000, MON_2024_01_01 + 119_999),
    ("15m", MON_2024_01_01 + 29 * 60_000, MON_2024_01_01 + 15 * 60_000,
     MON_2024_01_01 + 30 * 60_000 - 1),
    ("4h", MON_2024_01_01 + 5 * 3_600_000, MON_2024_01_01 + 4 * 3_600_000,
     MON_2024_01_01 + 8 * 3_600_000 - 1),
    ("1d", MON_2024_01_01 - 1, MON_2024_01_01 - DAY, MON_2024_01_01 - 1),
    # 3d buckets count from the epoch: 2024-01-01 is day 19723 = 3 * 6574 + 1
    ("3d", MON_2024_01_01, MON_2024_01_01 - DAY, MON_2024_01_01 + 2 * DAY - 1),
    # weeks start on Monday 00:00 UTC
    ("1w", MON_2024_01_01, MON_2024_01_01, MON_2024_01_01 + 7 * DAY - 1),
    ("1w", MON_2024_01_01 + 3 * DAY + 5, MON_2024_01_01, MON_2024_01_01 + 7 * DAY - 1),
    ("1w", MON_2024_01_01 + 7 * DAY - 1, MON_2024_01_01, MON_2024_01_01 + 7 * DAY - 1),
    ("1w", MON_2024_01_01 - 1, MON_2024_01_01 - 7 * DAY, MON_2024_01_01 - 1),
    ("1w", 0, -3 * DAY, 4 * DAY - 1),  # 1970-01-01 was a Thursday
    # calendar months, leap February included
    ("1M", 1_708_041_600_000, 1_706_745_600_000, 1_709_251_199_999),  # 2024-02-16
    ("1M", 1_709_251_199_999, 1_706_745_600_000, 1_709_251_199_999),  # 2024-02-29 23:59:59.999
    ("1M", 1_709_251_200_000, 1_709_251_200_000, 1_711_929_599_999),  # 2024-03-01
    ("1M", MON_2024_01_01 - 1, 1_701_388_800_000, MON_2024_01_01 - 1),  # December 2023
])
def test_bucket_boundaries(interval: str, ts: int, start: int, end: int) -> None:
    assert bucket(interval, ts) == (start, end)


def test_unknown_interval() -> None:
    with pytest.raises(KeyError):
        bucket("2w", 0)


def test_kline_rows(feed: Feed) -> None:
    base = T0_MS - T0_MS % 60_000  # a minute boundary
    feed.trade(10000, 2, Side.BUY, at_ms=base + 1_000)
    feed.trade(10300, 1, Side.SELL, at_ms=base + 2_000)
    feed.trade(9900, 3, Side.BUY, at_ms=base + 59_999)
    feed.trade(10100, 1, Side.SELL, at_ms=base + 60_000)
    rows = feed.md.klines("BTCUSDT", "1m", 500, None, None)
    assert rows == [
        [base, "100.00000000", "103.00000000", "99.00000000", "99.00000000", "0.00600000",
         base + 59_999, "0.60000000", 3, "0.00500000", "0.49700000", "0"],
        [base + 60_000, "101.00000000", "101.00000000", "101.00000000", "101.00000000",
         "0.00100000", base + 119_999, "0.10100000", 1, "0.00000000", "0.00000000", "0"],
    ]
    assert len(feed.md.klines("BTCUSDT", "1s", 500, None, None)) == 4
    [day] = feed.md.klines("BTCUSDT", "1d", 500, None, None)
    assert day[8] == 4 and day[5] == "0.00700000"
    q = feed.md.klines
    assert q("BTCUSDT", "1m", 1, None, None) == rows[1:]
    assert q("BTCUSDT", "1m", 500, base + 1, None) == rows[1:]
    assert q("BTCUSDT", "1m", 500, None, base + 59_999) == rows[:1]
    assert q("BTCUSDT", "1m", 1, base, base + 60_000) == rows[:1]
    assert q("BTCUSDT", "1s", 2, None, base + 60_000) == q("BTCUSDT", "1s", 500, None,
                                                           None)[2:]
    with pytest.raises(ValueError):
        q("BTCUSDT", "7m", 10, None, None)


def test_kline_stream_updates_and_closes(feed: Feed) -> None:
    base = T0_MS - T0_MS % 60_000
    feed.pub.want = {"btcusdt@kline_1m"}
    feed.trade(10000, 1, at_ms=base + 10)
    feed.trade(10200, 1, at_ms=base + 20)
    events = feed.pub.on("btcusdt@kline_1m")
    assert len(events) == 2  # one per command that traded
    k = events[-1]["k"]
    assert events[-1]["e"] == "kline" and events[-1]["s"] == "BTCUSDT"
    assert (k["t"], k["T"], k["i"], k["f"], k["L"], k["o"], k["c"], k["h"], k["l"], k["n"],
            k["x"], k["B"]) == (base, base + 59_999, "1m", 1, 2, "100.00000000",
                                "102.00000000", "102.00000000", "100.00000000", 2, False, "0")
    feed.md.flush(base + 30_000)
    assert len(feed.pub.on("btcusdt@kline_1m")) == 2  # still open: nothing on the timer
    feed.md.flush(base + 60_000 + KLINE_CLOSE_GRACE_MS - 1)
    assert len(feed.pub.on("btcusdt@kline_1m")) == 2  # a late-committed trade may come
    feed.md.flush(base + 61_000)
    closed = feed.pub.on("btcusdt@kline_1m")[-1]["k"]
    assert closed["x"] is True and closed["t"] == base and closed["n"] == 2
    feed.md.flush(base + 62_000)
    assert len(feed.pub.on("btcusdt@kline_1m")) == 3  # the final message goes out once
    # a trade that opens the next candle: the previous one is closed first (already sent)
    feed.trade(10100, 1, at_ms=base + 125_000)
    last = feed.pub.on("btcusdt@kline_1m")[-1]["k"]
    assert (last["t"], last["x"], last["n"]) == (base + 120_000, False, 1)


def test_a_trade_committed_after_its_candle_closed_corrects_the_final_message(
        feed: Feed) -> None:
    """Stamped before the candle's end but delivered after the timer closed it (later
    than the grace): the candle is sent again as final (x=true) with the trade in it,
    never as an open candle after its final message."""
    base = T0_MS - T0_MS % 60_000
    feed.pub.want = {"btcusdt@kline_1m"}
    feed.trade(10000, 1, at_ms=base + 10)
    feed.md.flush(base + 61_000)
    assert feed.pub.on("btcusdt@kline_1m")[-1]["k"]["x"] is True
    feed.trade(10100, 1, at_ms=base + 59_999)  # stamped inside, delivered after
    late = feed.pub.on("btcusdt@kline_1m")[-1]["k"]
    assert (late["t"], late["x"], late["n"], late["c"]) == (base, True, 2, "101.00000000")


def test_a_candle_closed_before_a_restart_is_not_sent_final_again(feed: Feed) -> None:
    """Rebuilt from the journal at start, the last candle of an interval that closed
    while the server was down (or before it) had its final message due then: the new
    process does not send it with x=true to its new subscribers; a candle that closes
    after it went live is sent as usual."""
    base = T0_MS - T0_MS % 60_000
    feed.trade(10000, 1, at_ms=base + 10)
    md = MarketData(feed.core, feed.pub, lambda: feed.now_ms)
    md.on_batch(feed.history, False)  # the restart's replay
    md.live_since_ms = base + 300_000  # went live (run() started the timers) 4 min later
    feed.pub.want = {"btcusdt@kline_1m"}
    feed.pub.sent.clear()  # what the first process sent
    md.flush(base + 301_000)
    assert feed.pub.on("btcusdt@kline_1m") == []
    feed.md = md
    feed.trade(10100, 1, at_ms=base + 301_500)  # a new candle, live
    md.flush(base + 361_000 + KLINE_CLOSE_GRACE_MS)
    final = feed.pub.on("btcusdt@kline_1m")[-1]["k"]
    assert (final["t"], final["x"]) == (base + 300_000, True)
