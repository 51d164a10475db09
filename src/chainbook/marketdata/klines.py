"""Candlesticks (klines) of one symbol for every Binance interval.

Buckets are UTC: fixed intervals align to multiples of their length since the epoch
(``3d`` included, as Binance does), ``1w`` starts on Monday 00:00 and ``1M`` on the
first day of the calendar month. A kline exists only for a bucket that had a trade
(no empty candles are made up for quiet periods). Each interval keeps its last
``KEEP`` klines; the rest is rebuilt from the journal at start-up.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
MONDAY = 4 * DAY  # 1970-01-01 was a Thursday; the first Monday is 4 days later
KEEP = 1000

FIXED: dict[str, int] = {
    "1s": SECOND, "1m": MINUTE, "3m": 3 * MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE,
    "30m": 30 * MINUTE, "1h": HOUR, "2h": 2 * HOUR, "4h": 4 * HOUR, "6h": 6 * HOUR,
    "8h": 8 * HOUR, "12h": 12 * HOUR, "1d": DAY, "3d": 3 * DAY,
}
INTERVALS: tuple[str, ...] = (*FIXED, "1w", "1M")


def _month_start(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * SECOND


def bucket(interval: str, ts_ms: int) -> tuple[int, int]:
    """``(open, close)`` ms of the ``interval`` bucket holding ``ts_ms`` (close inclusive).

    Raises KeyError for an unknown interval."""
    step = FIXED.get(interval)
    if step is not None:
        start = ts_ms - ts_ms % step
        return start, start + step - 1
    if interval == "1w":
        start = ts_ms - (ts_ms - MONDAY) % WEEK
        return start, start + WEEK - 1
    if interval == "1M":
        d = datetime.fromtimestamp(ts_ms // SECOND, tz=UTC)
        nxt = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return _month_start(d.year, d.month), _month_start(*nxt) - 1
    raise KeyError(f"unknown kline interval {interval!r}")


class Kline:
    """One candle: prices in ticks, volumes in lots (base) and quote units."""

    __slots__ = ("open_ms", "close_ms", "o", "h", "l", "c", "v", "n", "q", "tv", "tq",
                 "first", "last", "closed_sent")

    def __init__(self, open_ms: int, close_ms: int, trade_id: int, price: int) -> None:
        self.open_ms = open_ms
        self.close_ms = close_ms
        self.o = self.h = self.l = self.c = price
        self.v = 0  # base volume, lots
        self.n = 0  # trades
        self.q = 0  # quote volume, quote units
        self.tv = 0  # taker buy base volume, lots
        self.tq = 0  # taker buy quote volume
        self.first = self.last = trade_id
        self.closed_sent = False  # the final (x=true) stream message went out

    def add(self, trade_id: int, price: int, qty: int, quote: int, taker_buy: bool) -> None:
        """Fold one trade into the candle."""
        if price > self.h:
            self.h = price
        if price < self.l:
            self.l = price
        self.c = price
        self.v += qty
        self.q += quote
        self.n += 1
        self.last = trade_id
        if taker_buy:
            self.tv += qty
            self.tq += quote


class KlineSet:
    """The candles of one symbol, per interval, newest last."""

    def __init__(self, keep: int = KEEP) -> None:
        self.series: dict[str, deque[Kline]] = {i: deque(maxlen=keep) for i in INTERVALS}

    def add(self, ts_ms: int, trade_id: int, price: int, qty: int, quote: int,
            taker_buy: bool) -> list[tuple[str, Kline | None, Kline]]:
        """Fold a trade at ``ts_ms`` into every interval; return per interval
        ``(interval, the candle it closed or None, the candle it updated)``."""
        out = []
        for interval, series in self.series.items():
            closed = None
            k = series[-1] if series else None
            if k is None or ts_ms > k.close_ms:
                start, end = bucket(interval, ts_ms)
                closed = k
                k = Kline(start, end, trade_id, price)
                series.append(k)
            # a time before the current candle cannot happen (the sequencer's clock never
            # goes backwards); if it did, the trade is folded into the current candle
            k.add(trade_id, price, qty, quote, taker_buy)
            out.append((interval, closed, k))
        return out

    def query(self, interval: str, limit: int, start_ms: int | None,
              end_ms: int | None) -> list[Kline]:
        """Candles with ``start_ms <= open <= end_ms``, oldest first: the first ``limit``
        when a start is given, else the last ``limit``. KeyError for a bad interval."""
        series = self.series[interval]
        if start_ms is None and end_ms is None:
            n = len(series)
            return [series[i] for i in range(max(0, n - limit), n)]
        lo = start_ms if start_ms is not None else -(2**63)
        hi = end_ms if end_ms is not None else 2**63
        sel = [k for k in series if lo <= k.open_ms <= hi]
        return sel[:limit] if start_ms is not None else sel[-limit:]
