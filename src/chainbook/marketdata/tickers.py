"""The 24-hour rolling statistics of one symbol, kept in one-minute buckets.

Approximation: the window is made of whole UTC minutes. At time ``now`` it holds every
minute bucket that overlaps ``(now - 24h, now]``, so it covers between 24 h and
24 h + 1 min of trades; the oldest minute leaves as a whole. Binance's window is exact
to the millisecond; the figures differ only for trades in that oldest minute.
``prevClosePrice`` is the last trade before the window (the close of the newest bucket
that left it), 0 when there was none.

Pure: no clock, no I/O (``now`` is always passed in).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from chainbook.marketdata.klines import Kline

MINUTE = 60_000
WINDOW = 24 * 60 * MINUTE


@dataclass(frozen=True, slots=True)
class Stats:
    """The window's figures: prices in ticks, volumes in lots and quote units."""

    open: int  # first trade price in the window (last price when the window is empty)
    high: int
    low: int
    last: int  # last trade price ever (0 before the first trade)
    last_qty: int
    prev_close: int
    volume: int
    quote_volume: int
    count: int
    first_id: int  # -1 when the window is empty
    last_id: int


class Rolling24h:
    """Per-minute buckets of the last 24 hours of one symbol's trades."""

    def __init__(self) -> None:
        self.buckets: deque[Kline] = deque()  # one-minute candles
        self.last_price = 0
        self.last_qty = 0
        self.prev_close = 0

    def add(self, ts_ms: int, trade_id: int, price: int, qty: int, quote: int) -> None:
        """Fold one trade at ``ts_ms`` into its minute bucket."""
        start = ts_ms - ts_ms % MINUTE
        b = self.buckets[-1] if self.buckets else None
        if b is None or start > b.open_ms:
            b = Kline(start, start + MINUTE - 1, trade_id, price)
            self.buckets.append(b)
            self.evict(ts_ms)
        b.add(trade_id, price, qty, quote, False)
        self.last_price = price
        self.last_qty = qty

    def evict(self, now_ms: int) -> None:
        """Drop the buckets that no longer overlap the window ending at ``now_ms``."""
        buckets = self.buckets
        edge = now_ms - WINDOW
        while buckets and buckets[0].open_ms + MINUTE <= edge:
            self.prev_close = buckets.popleft().c

    def stats(self, now_ms: int) -> Stats:
        """The figures of the window ending at ``now_ms``. O(buckets) (at most 1441)."""
        self.evict(now_ms)
        buckets = self.buckets
        if not buckets:
            p = self.last_price
            return Stats(p, p, p, p, self.last_qty, self.prev_close, 0, 0, 0, -1, -1)
        high = max(b.h for b in buckets)
        low = min(b.l for b in buckets)
        return Stats(
            open=buckets[0].o, high=high, low=low, last=self.last_price,
            last_qty=self.last_qty, prev_close=self.prev_close,
            volume=sum(b.v for b in buckets), quote_volume=sum(b.q for b in buckets),
            count=sum(b.n for b in buckets), first_id=buckets[0].first,
            last_id=buckets[-1].last,
        )
