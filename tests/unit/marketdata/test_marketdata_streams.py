"""Stream names and the asyncio timer that drives ``flush``."""

from __future__ import annotations

import asyncio
import time

import pytest
from mdfeed import Feed

from chainbook.domain.enums import Side
from chainbook.marketdata.streams import StreamKey, parse_stream


@pytest.mark.parametrize(("name", "key"), [
    ("btcusdt@trade", StreamKey("trade", "BTCUSDT")),
    ("btcusdt@aggTrade", StreamKey("aggTrade", "BTCUSDT")),
    ("btcusdt@depth", StreamKey("depth", "BTCUSDT", "1000ms")),
    ("btcusdt@depth@1000ms", StreamKey("depth", "BTCUSDT", "1000ms")),
    ("btcusdt@depth@100ms", StreamKey("depth", "BTCUSDT", "100ms")),
    ("btcusdt@depth5", StreamKey("partial", "BTCUSDT", "5@1000ms")),
    ("btcusdt@depth20@100ms", StreamKey("partial", "BTCUSDT", "20@100ms")),
    ("btcusdt@kline_1M", StreamKey("kline", "BTCUSDT", "1M")),
    ("btcusdt@kline_1m", StreamKey("kline", "BTCUSDT", "1m")),
    ("btcusdt@miniTicker", StreamKey("miniTicker", "BTCUSDT")),
    ("btcusdt@ticker", StreamKey("ticker", "BTCUSDT")),
    ("btcusdt@bookTicker", StreamKey("bookTicker", "BTCUSDT")),
    ("!ticker@arr", StreamKey("allTickers", "")),
    ("!miniTicker@arr", StreamKey("allMiniTickers", "")),
    ("BTCUSDT@trade", None), ("btcusdt@depth7", None), ("btcusdt@depth@500ms", None),
    ("btcusdt@kline_2w", None), ("btcusdt", None), ("@trade", None), ("btcusdt@aggtrade", None),
    ("btcusdt@depth\u00b2", None), ("btcusdt@depth\u0665", None),  # Unicode digits: not 2, 5
])
def test_parse_stream(name: str, key: StreamKey | None) -> None:
    assert parse_stream(name) == key


def test_known_stream(feed: Feed) -> None:
    assert feed.md.known_stream("btcusdt@depth@100ms")
    assert feed.md.known_stream("!ticker@arr")
    assert not feed.md.known_stream("ethusdt@trade")
    assert not feed.md.known_stream("btcusdt@nothing")


def test_run_flushes_on_100ms_boundaries_until_stopped() -> None:
    feed = Feed()
    feed.md.clock_ms = lambda: time.time_ns() // 1_000_000
    feed.pub.want = {"btcusdt@depth@100ms"}

    async def scenario() -> None:
        task = asyncio.create_task(feed.md.run())
        for i in range(3):
            feed.limit(1, Side.BUY, 9000 + i, 1)
            for _ in range(40):  # wait (at most 2 s) for the next flush to carry it
                await asyncio.sleep(0.05)
                if len(feed.pub.on("btcusdt@depth@100ms")) > i:
                    break
        feed.md.stop()
        await asyncio.wait_for(task, 2)  # stop() ends run() without waiting for a tick

    asyncio.run(scenario())
    diffs = feed.pub.on("btcusdt@depth@100ms")
    assert [(d["U"], d["u"]) for d in diffs] == [(1, 1), (2, 2), (3, 3)]
