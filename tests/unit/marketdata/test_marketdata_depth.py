"""Depth: update ids, diff windows and snapshots agree (spec section 6.4)."""

from __future__ import annotations

import random

import pytest
from mdfeed import SPEC, Feed, Recorder

from chainbook.domain import commands as C
from chainbook.domain.enums import Side
from chainbook.domain.events import BookLevelChanged
from chainbook.domain.units import price_ticks, qty_lots
from chainbook.marketdata import MarketData
from chainbook.service.applied import Applied

DIFFS = {"btcusdt@depth@100ms": "100ms", "btcusdt@depth": "1000ms",
         "btcusdt@depth@1000ms": "1000ms"}


def _book(snapshot: dict) -> dict[str, dict[str, str]]:
    return {"b": dict(map(tuple, snapshot["bids"])), "a": dict(map(tuple, snapshot["asks"]))}


def _apply(book: dict[str, dict[str, str]], diff: dict) -> None:
    for side in ("b", "a"):
        for p, q in diff[side]:
            if q == "0.00000000":
                book[side].pop(p, None)
            else:
                book[side][p] = q


def _random_session(feed: Feed, rng: random.Random, steps: int) -> list[int]:
    """Random orders, cancels and market orders with flushes in between; the flush
    times used."""
    flushes = []
    for _ in range(steps):
        r = rng.random()
        side = rng.choice([Side.BUY, Side.SELL])
        if r < 0.55:
            price = rng.randint(95, 105) if side == Side.BUY else rng.randint(100, 110)
            feed.limit(rng.randint(1, 3), side, price * 100, rng.randint(1, 5))
        elif r < 0.75:
            feed.market(rng.randint(1, 3), side, rng.randint(1, 4))
        else:
            sym = feed.engine.symbols["BTCUSDT"]
            if sym.orders:
                order = sym.orders[rng.choice(sorted(sym.orders))]
                feed.run(C.CancelOrder(order.account, "BTCUSDT", order.id))
        feed.now_ms += rng.choice([0, 7, 40, 130, 650])
        if rng.random() < 0.4:
            feed.md.flush(feed.now_ms)
            flushes.append(feed.now_ms)
    return flushes


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_diff_ids_are_contiguous_and_rebuild_the_snapshot(seed: int) -> None:
    rng = random.Random(seed)
    feed = Feed()
    _random_session(feed, rng, 60)
    snapshot = feed.md.depth("BTCUSDT", 5000)  # a client joins here
    local = {kind: _book(snapshot) for kind in ("100ms", "1000ms")}
    last_u = {kind: snapshot["lastUpdateId"] for kind in local}
    mark = len(feed.pub.sent)
    _random_session(feed, rng, 300)
    feed.md.flush(feed.now_ms + 1000)  # close both windows
    prev_u: dict[str, int] = {}
    seen = 0
    for stream, payload in feed.pub.sent:
        kind = DIFFS.get(stream)
        if kind is None:
            continue
        assert payload["e"] == "depthUpdate" and payload["s"] == "BTCUSDT"
        assert "pu" not in payload
        assert payload["U"] <= payload["u"]
        if stream in prev_u:
            assert payload["U"] == prev_u[stream] + 1
        prev_u[stream] = payload["u"]
        seen += 1
    assert seen > 20
    applied: set[str] = set()
    for stream, payload in feed.pub.sent[mark:]:
        kind = DIFFS.get(stream)
        if kind is None or stream == "btcusdt@depth@1000ms" or payload["u"] <= last_u[kind]:
            continue  # the ccxt rule: drop what the snapshot already has
        if kind in applied:
            assert payload["U"] == last_u[kind] + 1
        else:  # the first diff applied straddles the snapshot
            assert payload["U"] - 1 <= last_u[kind] <= payload["u"] - 1
            applied.add(kind)
        _apply(local[kind], payload)
        last_u[kind] = payload["u"]
    assert applied == {"100ms", "1000ms"}
    final = feed.md.depth("BTCUSDT", 5000)
    for kind in local:
        assert last_u[kind] == final["lastUpdateId"]
        assert local[kind] == _book(final)
    # the projection matches the engine's own book
    book = feed.engine.symbols["BTCUSDT"].book
    for side, key in ((Side.BUY, "bids"), (Side.SELL, "asks")):
        want = book.depth(side, 5000)
        got = [(price_ticks(SPEC, p), qty_lots(SPEC, q)) for p, q in final[key]]
        assert got == [tuple(x) for x in want]
    feed.md.symbols["BTCUSDT"].depth.check()


def test_update_id_counts_every_level_change(feed: Feed) -> None:
    n = 0
    for ap in (feed.limit(1, Side.BUY, 10000, 2), feed.limit(1, Side.BUY, 9900, 1),
               feed.limit(2, Side.SELL, 10000, 3)):
        n += sum(1 for e in ap.events if isinstance(e, BookLevelChanged))
    snap = feed.md.depth("BTCUSDT", 100)
    assert snap["lastUpdateId"] == n == 4  # 2 bids, then bid 100 gone + ask 100 rests
    assert snap["bids"] == [["99.00000000", "0.00100000"]]
    assert snap["asks"] == [["100.00000000", "0.00100000"]]
    assert feed.md.depth("BTCUSDT", 1)["lastUpdateId"] == 4


def test_windows_skip_empty_and_cover_changes_since_the_last_flush(feed: Feed) -> None:
    md, pub = feed.md, feed.pub
    md.flush(feed.now_ms)
    assert pub.on("btcusdt@depth@100ms") == []  # nothing changed: nothing sent
    feed.limit(1, Side.BUY, 10000, 2)
    feed.limit(1, Side.BUY, 10000, 1)  # same level twice: one entry, the latest qty
    md.flush(feed.now_ms + 100)
    [d] = pub.on("btcusdt@depth@100ms")
    assert (d["U"], d["u"], d["b"], d["a"]) == (1, 2, [["100.00000000", "0.00300000"]], [])
    md.flush(feed.now_ms + 150)  # same 100 ms slot: nothing more
    assert len(pub.on("btcusdt@depth@100ms")) == 1
    feed.run(C.CancelAll(1, "BTCUSDT"))
    md.flush(feed.now_ms + 1000)
    d100 = pub.on("btcusdt@depth@100ms")[-1]
    assert (d100["U"], d100["u"], d100["b"]) == (3, 3, [["100.00000000", "0.00000000"]])
    # the 1000 ms window spans both 100 ms windows; its two names carry the same diff
    [d1] = pub.on("btcusdt@depth")
    assert (d1["U"], d1["u"], d1["b"]) == (1, 3, [["100.00000000", "0.00000000"]])
    assert pub.on("btcusdt@depth@1000ms") == [d1]


def test_windows_accumulate_without_subscribers() -> None:
    feed = Feed()
    feed.pub.want = set()
    feed.limit(1, Side.BUY, 10000, 1)
    feed.md.flush(feed.now_ms)
    feed.pub.want = {"btcusdt@depth@100ms"}
    feed.limit(1, Side.BUY, 9900, 1)
    feed.md.flush(feed.now_ms + 100)
    [d] = feed.pub.on("btcusdt@depth@100ms")
    assert (d["U"], d["u"]) == (2, 2)  # id 1 went out to nobody, the counter kept going


def test_partial_depth_streams_and_snapshot(feed: Feed) -> None:
    for i in range(25):
        feed.limit(1, Side.BUY, 9000 + i * 10, 1)
        feed.limit(2, Side.SELL, 11000 + i * 10, 1)
    pub = Recorder({"btcusdt@depth5", "btcusdt@depth20@100ms"})
    feed.md.publisher = pub
    feed.md.flush(T := feed.now_ms - feed.now_ms % 1000 + 1000)
    feed.md.flush(T + 100)
    five = pub.on("btcusdt@depth5")
    assert len(five) == 1 and len(pub.on("btcusdt@depth20@100ms")) == 2
    assert five[0]["lastUpdateId"] == 50 and "e" not in five[0]
    assert five[0]["bids"][0][0] == "92.40000000" and len(five[0]["bids"]) == 5
    assert five[0]["asks"][0][0] == "110.00000000" and len(five[0]["asks"]) == 5
    assert feed.md.stream_snapshot("btcusdt@depth10") == feed.md.depth("BTCUSDT", 10)
    assert feed.md.stream_snapshot("btcusdt@depth@100ms") is None
    assert feed.md.stream_snapshot("nosuch@depth5") is None


def test_book_ticker_on_each_change_of_the_top(feed: Feed) -> None:
    feed.limit(1, Side.BUY, 10000, 2)
    feed.limit(1, Side.BUY, 9900, 2)  # below the best bid: no bookTicker
    feed.limit(2, Side.SELL, 10100, 1)
    feed.market(2, Side.SELL, 1)  # best bid qty 2 -> 1
    events = feed.pub.on("btcusdt@bookTicker")
    assert [(e["b"], e["B"], e["a"], e["A"]) for e in events] == [
        ("100.00000000", "0.00200000", "0.00000000", "0.00000000"),
        ("100.00000000", "0.00200000", "101.00000000", "0.00100000"),
        ("100.00000000", "0.00100000", "101.00000000", "0.00100000"),
    ]
    assert [e["u"] for e in events] == [1, 3, 4]
    assert feed.md.book_ticker("BTCUSDT") == {
        "symbol": "BTCUSDT", "bidPrice": "100.00000000", "bidQty": "0.00100000",
        "askPrice": "101.00000000", "askQty": "0.00100000"}


def test_limits_and_unknown_symbols(feed: Feed) -> None:
    with pytest.raises(KeyError):
        feed.md.depth("NOPE", 10)
    with pytest.raises(ValueError):
        feed.md.depth("BTCUSDT", 0)
    assert feed.md.depth("BTCUSDT", 99999) == {"lastUpdateId": 0, "bids": [], "asks": []}


def test_a_bad_event_is_logged_not_raised(feed: Feed, caplog: pytest.LogCaptureFixture) -> None:
    bad = Applied(999, feed.now_ms * 1_000_000, None, [BookLevelChanged("NOPE", 0, 1, 1)])
    feed.md.on_batch([bad], True)
    assert "could not apply seq 999" in caplog.text
    assert feed.md.depth("BTCUSDT", 5)["lastUpdateId"] == 0


def test_a_symbol_listed_only_in_core_specs_is_served() -> None:
    feed = Feed()
    other = MarketData(feed.core, Recorder(), lambda: 0)
    feed.core.specs["BTCUSDT"] = SPEC
    assert other.depth("BTCUSDT", 5)["lastUpdateId"] == 0
