"""``MarketData``: public market data projected from the core's events.

``on_batch`` folds each committed ``Applied`` into per-symbol state (L2 depth with update
ids, trade tape, klines, 24 h window) and, when live, publishes the event-driven streams:
``@trade``, ``@aggTrade``, ``@kline_<i>`` (once per command and interval, plus a final
``x=true`` message when a candle closes) and ``@bookTicker`` (when the best bid/ask
changes). ``flush(now_ms)`` publishes the timed streams: depth diffs every 100 ms and
1000 ms, partial depth, and the tickers every 1000 ms. ``run()`` calls ``flush`` on every
100 ms boundary. During the start-up replay (``live=False``) nothing is published.

Symbols come from ``SymbolAdded`` events or ``core.specs``. Queries raise KeyError for
an unknown symbol and ValueError for a bad limit or interval (limits above the maximum
are capped, as Binance caps depth).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from chainbook.domain.events import BookLevelChanged, SymbolAdded, Trade
from chainbook.domain.instruments import SymbolSpec
from chainbook.domain.units import price_str
from chainbook.engine.symbol_state import band_reference
from chainbook.gateway.context import Core, Json, Publisher
from chainbook.marketdata import render
from chainbook.marketdata.depth import DepthBook
from chainbook.marketdata.klines import INTERVALS, Kline, KlineSet
from chainbook.marketdata.streams import (
    ALL_MINI_TICKERS,
    ALL_MINI_TICKERS_1S,
    ALL_TICKERS,
    ALL_TICKERS_1S,
    StreamKey,
    parse_stream,
    partial_streams,
)
from chainbook.marketdata.tickers import Rolling24h
from chainbook.marketdata.trades import AggRec, TradeRec, TradeTape
from chainbook.service.applied import Applied

log = logging.getLogger(__name__)

BUY = 0
DEPTH_MAX = 5000
TRADES_DEFAULT = 500
TRADES_MAX = 1000
KLINES_MAX = 1000
NS_PER_MS = 1_000_000
# A candle of a quiet symbol is closed by the timer this long after its end: a trade is
# stamped when the core applies it and reaches market data only after its commit (fsync),
# so one stamped just before the end can arrive just after it.  The timer runs each
# second, so a quiet candle's final message comes 1-2 s after its end (Binance's also lag);
# a busy symbol's candle closes at once, on the first trade of the next one.
KLINE_CLOSE_GRACE_MS = 250


class SymbolData:
    """Everything market data keeps for one symbol, and its stream names."""

    def __init__(self, spec: SymbolSpec) -> None:
        self.spec = spec
        s = spec.name.lower()
        self.depth = DepthBook()
        self.tape = TradeTape()
        self.klines = KlineSet()
        self.rolling = Rolling24h()
        self.s_trade = f"{s}@trade"
        self.s_agg = f"{s}@aggTrade"
        self.s_book = f"{s}@bookTicker"
        self.s_ticker = f"{s}@ticker"
        self.s_mini = f"{s}@miniTicker"
        self.s_kline = {i: f"{s}@kline_{i}" for i in INTERVALS}
        self.s_diff = {"100ms": (f"{s}@depth@100ms",),
                       "1000ms": (f"{s}@depth", f"{s}@depth@1000ms")}
        self.s_partial = partial_streams(s)


def _limit(limit: int, most: int) -> int:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return min(limit, most)


class MarketData:
    """The ``Market`` of gateway/context.py; see the module docstring."""

    def __init__(self, core: Core, publisher: Publisher, clock_ms: Callable[[], int]) -> None:
        self.core = core
        self.publisher = publisher
        self.clock_ms = clock_ms
        self.symbols: dict[str, SymbolData] = {}
        self._specs: dict[str, SymbolSpec] = {}
        self._last_tick: int | None = None  # last 100 ms slot flushed
        # when this process went live (``run`` starts the timers after the replay):
        # candles that closed before were closed while no one here could be told
        self.live_since_ms: int | None = None
        self._last_sec: int | None = None  # last 1000 ms slot flushed
        self._stopping = False
        self._wake: asyncio.Event | None = None

    # --- state -----------------------------------------------------------------------

    def _sym(self, name: str) -> SymbolData:
        """The data of ``name``, created on first use; KeyError if the symbol is unknown."""
        sd = self.symbols.get(name)
        if sd is None:
            spec = self._specs.get(name) or self.core.specs.get(name)
            if spec is None:
                raise KeyError(name)
            sd = self.symbols[name] = SymbolData(spec)
        return sd

    def on_batch(self, batch: list[Applied], live: bool) -> None:
        """Fold committed commands into the state; publish event-driven streams if live."""
        for ap in batch:
            try:
                self._apply(ap, live)
            except Exception:  # a listener must not raise into the core service
                log.exception("market data could not apply seq %d", ap.seq)

    def _apply(self, ap: Applied, live: bool) -> None:
        ts_ms = ap.ts // NS_PER_MS
        tops: dict[str, tuple[int, int, int, int]] = {}  # symbol -> top before, if live
        traded: dict[str, SymbolData] = {}
        aggs: dict[int, tuple[SymbolData, AggRec]] = {}
        for ev in ap.events:
            if type(ev) is BookLevelChanged:
                sd = self._sym(ev.symbol)
                if live and ev.symbol not in tops:
                    tops[ev.symbol] = sd.depth.top()
                sd.depth.apply(ev.side, ev.price, ev.qty, live)
            elif type(ev) is Trade:
                sd = self._sym(ev.symbol)
                agg = self._trade(sd, ev, ap.seq, ts_ms, live)
                if live:
                    traded[ev.symbol] = sd
                    aggs[id(agg)] = (sd, agg)
            elif type(ev) is SymbolAdded:
                self._specs[ev.spec.name] = ev.spec
                self._sym(ev.spec.name)
        if not live:
            return
        pub = self.publisher
        now = self.clock_ms()
        for sd, agg in aggs.values():
            if pub.wants(sd.s_agg):
                pub.publish(sd.s_agg, render.agg_trade_event(sd.spec, agg, now))
        for sd in traded.values():
            for interval, stream in sd.s_kline.items():
                if pub.wants(stream):
                    k = sd.klines.series[interval][-1]
                    # a trade later than the grace into a closed candle: the final
                    # message again, corrected (never x=false after x=true)
                    pub.publish(stream, render.kline_event(sd.spec, interval, k, now,
                                                           k.closed_sent))
        for name, before in tops.items():
            sd = self.symbols[name]
            top = sd.depth.top()
            if top != before and pub.wants(sd.s_book):
                pub.publish(sd.s_book, render.book_ticker_event(sd.spec, top, sd.depth.last_id))

    def _trade(self, sd: SymbolData, ev: Trade, seq: int, ts_ms: int, live: bool) -> AggRec:
        rec = TradeRec(ev.trade_id, ev.price, ev.qty, ev.quote_amount, ts_ms, ev.taker_side)
        agg, _ = sd.tape.add(rec, ev.taker_order_id, seq)
        taker_buy = ev.taker_side == BUY
        for interval, closed, _k in sd.klines.add(ts_ms, ev.trade_id, ev.price, ev.qty,
                                                  ev.quote_amount, taker_buy):
            if closed is not None and not closed.closed_sent:
                self._close_kline(sd, interval, closed, live)
        sd.rolling.add(ts_ms, ev.trade_id, ev.price, ev.qty, ev.quote_amount)
        if live and self.publisher.wants(sd.s_trade):
            self.publisher.publish(sd.s_trade, render.trade_event(sd.spec, rec, self.clock_ms()))
        return agg

    def _close_kline(self, sd: SymbolData, interval: str, k: Kline, live: bool) -> None:
        """Send the final ``x=true`` message of candle ``k`` (once, if live and wanted)."""
        k.closed_sent = True
        stream = sd.s_kline[interval]
        if live and self.publisher.wants(stream):
            self.publisher.publish(
                stream, render.kline_event(sd.spec, interval, k, self.clock_ms(), True))

    # --- REST queries ----------------------------------------------------------------

    def depth(self, symbol: str, limit: int = 100) -> Json:
        """Order book snapshot: ``lastUpdateId`` and the best ``limit`` (1..5000) levels."""
        sd = self._sym(symbol)
        bids, asks = sd.depth.levels(_limit(limit, DEPTH_MAX))
        return render.depth_snapshot(sd.spec, sd.depth.last_id, bids, asks)

    def trades(self, symbol: str, limit: int = TRADES_DEFAULT) -> list[Json]:
        """The last ``limit`` (max 1000) trades, oldest first."""
        sd = self._sym(symbol)
        return [render.trade(sd.spec, t) for t in sd.tape.recent(_limit(limit, TRADES_MAX))]

    def agg_trades(self, symbol: str, limit: int = TRADES_DEFAULT, start_ms: int | None = None,
                   end_ms: int | None = None, from_id: int | None = None) -> list[Json]:
        """Aggregate trades (max 1000) by fromId or time range, oldest first."""
        sd = self._sym(symbol)
        rows = sd.tape.agg_query(_limit(limit, TRADES_MAX), start_ms, end_ms, from_id)
        return [render.agg_trade(sd.spec, a) for a in rows]

    def klines(self, symbol: str, interval: str, limit: int = 500, start_ms: int | None = None,
               end_ms: int | None = None) -> list[list[Any]]:
        """Candles of ``interval`` (max 1000), oldest first; ValueError for a bad interval."""
        sd = self._sym(symbol)
        if interval not in INTERVALS:
            raise ValueError(f"invalid interval {interval!r}")
        rows = sd.klines.query(interval, _limit(limit, KLINES_MAX), start_ms, end_ms)
        return [render.kline_row(sd.spec, k) for k in rows]

    def ticker_24h(self, symbol: str) -> Json:
        """24 h rolling statistics (minute-bucket approximation, see tickers.py)."""
        return self._ticker(self._sym(symbol), self.clock_ms())

    def _ticker(self, sd: SymbolData, now: int) -> Json:
        return render.ticker(sd.spec, sd.rolling.stats(now), sd.depth.top(), now)

    def price(self, symbol: str) -> Json:
        """Last trade price (0 before the first trade)."""
        sd = self._sym(symbol)
        return {"symbol": symbol, "price": price_str(sd.spec, sd.rolling.last_price)}

    def top(self, symbol: str) -> tuple[int, int, int, int]:
        """``(bid, bid qty, ask, ask qty)`` in ticks and lots; zeros for an empty side."""
        return self._sym(symbol).depth.top()

    def reference_price(self, symbol: str) -> int:
        """The core's reference for the price band (``SymbolState.reference_price``):
        last trade price, else the mid of best bid and ask, else 0."""
        sd = self._sym(symbol)
        bid, _, ask, _ = sd.depth.top()
        return band_reference(sd.rolling.last_price, bid, ask)

    def book_ticker(self, symbol: str) -> Json:
        """Best bid and ask with their quantities."""
        sd = self._sym(symbol)
        return render.book_ticker(sd.spec, sd.depth.top())

    # --- streams ---------------------------------------------------------------------

    def known_stream(self, stream: str) -> bool:
        """True if ``stream`` is a market stream name of a listed symbol (or an array)."""
        key = parse_stream(stream)
        if key is None:
            return False
        return not key.symbol or key.symbol in self.symbols or key.symbol in self.core.specs

    def stream_snapshot(self, stream: str) -> Json | list[Json] | None:
        """Payload to send right after subscribing to a partial-depth, ticker or book
        ticker stream; None for event streams, unknown names and unknown symbols."""
        key = parse_stream(stream)
        if key is None:
            return None
        now = self.clock_ms()
        if key.kind == "allTickers":
            return [render.ticker_event(self._ticker(sd, now), now)
                    for sd in self.symbols.values()]
        if key.kind == "allMiniTickers":
            return [render.mini_ticker_event(self._ticker(sd, now), now)
                    for sd in self.symbols.values()]
        try:
            sd = self._sym(key.symbol)
        except KeyError:
            return None
        return self._snapshot(sd, key, now)

    def _snapshot(self, sd: SymbolData, key: StreamKey, now: int) -> Json | None:
        if key.kind == "partial":
            bids, asks = sd.depth.levels(int(key.arg.split("@")[0]))
            return render.depth_snapshot(sd.spec, sd.depth.last_id, bids, asks)
        if key.kind == "ticker":
            return render.ticker_event(self._ticker(sd, now), now)
        if key.kind == "miniTicker":
            return render.mini_ticker_event(self._ticker(sd, now), now)
        if key.kind == "bookTicker":
            return render.book_ticker_event(sd.spec, sd.depth.top(), sd.depth.last_id)
        return None

    def flush(self, now_ms: int) -> None:
        """Publish what is due at ``now_ms``: 100 ms streams once per 100 ms slot, 1000 ms
        streams once per second. A second call in the same slot does nothing; skipped
        slots (a slow tick) are merged into the next one."""
        tick = now_ms // 100
        if tick == self._last_tick:
            return
        self._last_tick = tick
        sec = now_ms // 1000
        whole = sec != self._last_sec
        self._last_sec = sec
        pub = self.publisher
        for sd in self.symbols.values():
            self._flush_diff(sd, "100ms", now_ms)
            if whole:
                self._flush_diff(sd, "1000ms", now_ms)
            for stream, n, cadence in sd.s_partial:
                if (whole or cadence == "100ms") and pub.wants(stream):
                    bids, asks = sd.depth.levels(n)
                    pub.publish(stream, render.depth_snapshot(sd.spec, sd.depth.last_id,
                                                              bids, asks))
            if whole:
                self._flush_second(sd, now_ms)
        if whole:
            for names, event in (((ALL_TICKERS, ALL_TICKERS_1S), render.ticker_event),
                                 ((ALL_MINI_TICKERS, ALL_MINI_TICKERS_1S),
                                  render.mini_ticker_event)):
                wanted = [n for n in names if pub.wants(n)]
                if wanted and self.symbols:
                    rows = [event(self._ticker(sd, now_ms), now_ms)
                            for sd in self.symbols.values()]
                    for stream in wanted:
                        pub.publish(stream, cast(Json, rows))  # the arrays: JSON lists

    def _flush_diff(self, sd: SymbolData, kind: str, now_ms: int) -> None:
        """Take the ``kind`` window (always, so ids stay contiguous) and publish it."""
        taken = sd.depth.windows[kind].take()
        if taken is None:
            return
        payload: Json | None = None
        for stream in sd.s_diff[kind]:
            if self.publisher.wants(stream):
                payload = payload or render.depth_diff(sd.spec, now_ms, *taken)
                self.publisher.publish(stream, payload)

    def _flush_second(self, sd: SymbolData, now_ms: int) -> None:
        """Tickers and closed candles, once per second."""
        pub = self.publisher
        want_t, want_m = pub.wants(sd.s_ticker), pub.wants(sd.s_mini)
        if want_t or want_m:
            t = self._ticker(sd, now_ms)
            if want_t:
                pub.publish(sd.s_ticker, render.ticker_event(t, now_ms))
            if want_m:
                pub.publish(sd.s_mini, render.mini_ticker_event(t, now_ms))
        since = self.live_since_ms
        for interval, series in sd.klines.series.items():
            if series and not series[-1].closed_sent and \
                    series[-1].close_ms + KLINE_CLOSE_GRACE_MS < now_ms:
                # a candle rebuilt from the journal that closed before this process
                # went live had its final message sent (or due) then: not again now
                k = series[-1]
                self._close_kline(sd, interval, k, since is None
                                  or k.close_ms + KLINE_CLOSE_GRACE_MS >= since)

    # --- timers ----------------------------------------------------------------------

    async def run(self) -> None:
        """Call ``flush`` on every 100 ms boundary of ``clock_ms`` until ``stop()``."""
        self._stopping = False
        self._wake = asyncio.Event()
        if self.live_since_ms is None:
            self.live_since_ms = self.clock_ms()
        while not self._stopping:
            now = self.clock_ms()
            delay = ((now // 100 + 1) * 100 - now) / 1000
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            if self._stopping:
                break
            try:
                self.flush(self.clock_ms())
            except Exception:  # a bug in one flush must not stop the streams
                log.exception("market data flush failed")

    def stop(self) -> None:
        """Make ``run()`` return (call on the event loop's thread)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
