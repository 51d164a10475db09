"""Recent trades and aggregate trades of one symbol, bounded rings.

An aggregate trade (Binance ``aggTrades``) groups consecutive trades of the same taker
order at the same price within one command: the fills of one incoming order walking
one price level. Aggregate ids count from 1 per symbol; they are rebuilt identically
when the journal is replayed from seq 1, so they are stable across restarts.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections import deque

SELL = 1
RECENT = 1000  # trades and aggregates kept per symbol


class TradeRec:
    """One trade as the public sees it (integers: ticks, lots, quote units, ms)."""

    __slots__ = ("id", "price", "qty", "quote", "time", "taker_side")

    def __init__(self, id: int, price: int, qty: int, quote: int, time: int,
                 taker_side: int) -> None:
        self.id = id
        self.price = price
        self.qty = qty
        self.quote = quote
        self.time = time  # ms
        self.taker_side = taker_side

    @property
    def buyer_maker(self) -> bool:
        """True when the taker sold (the buyer was resting)."""
        return self.taker_side == SELL


class AggRec:
    """An aggregate trade: trades ``first..last`` at one price, one taker order."""

    __slots__ = ("id", "price", "qty", "first", "last", "time", "taker_side",
                 "taker_order", "seq")

    def __init__(self, id: int, t: TradeRec, taker_order: int, seq: int) -> None:
        self.id = id
        self.price = t.price
        self.qty = t.qty
        self.first = t.id
        self.last = t.id
        self.time = t.time
        self.taker_side = t.taker_side
        self.taker_order = taker_order
        self.seq = seq

    @property
    def buyer_maker(self) -> bool:
        return self.taker_side == SELL


class TradeTape:
    """The last ``size`` trades and aggregate trades of a symbol."""

    def __init__(self, size: int = RECENT) -> None:
        self.trades: deque[TradeRec] = deque(maxlen=size)
        self.aggs: deque[AggRec] = deque(maxlen=size)
        self.next_agg = 1

    def add(self, t: TradeRec, taker_order: int, seq: int) -> tuple[AggRec, bool]:
        """Record trade ``t`` of command ``seq``; return its aggregate and whether the
        aggregate is new (False: ``t`` extended the previous one)."""
        self.trades.append(t)
        aggs = self.aggs
        if aggs:
            a = aggs[-1]
            if a.seq == seq and a.taker_order == taker_order and a.price == t.price:
                a.qty += t.qty
                a.last = t.id
                return a, False
        a = AggRec(self.next_agg, t, taker_order, seq)
        self.next_agg += 1
        aggs.append(a)
        return a, True

    def recent(self, limit: int) -> list[TradeRec]:
        """The last ``limit`` trades, oldest first."""
        n = len(self.trades)
        return [self.trades[i] for i in range(max(0, n - limit), n)]

    def agg_query(self, limit: int, start_ms: int | None, end_ms: int | None,
                  from_id: int | None) -> list[AggRec]:
        """Aggregates by Binance rules, oldest first: from ``from_id`` (first ``limit``),
        else within ``[start_ms, end_ms]`` (first ``limit`` when a start is given, else
        the last ``limit``), else the last ``limit``."""
        rows = self.aggs
        if from_id is not None:
            sel = [a for a in rows if a.id >= from_id]
            if end_ms is not None:
                sel = [a for a in sel if a.time <= end_ms]
            return sel[:limit]
        if start_ms is not None or end_ms is not None:
            lo = start_ms if start_ms is not None else -1
            hi = end_ms if end_ms is not None else 2**63
            sel = [a for a in rows if lo <= a.time <= hi]
            return sel[:limit] if start_ms is not None else sel[-limit:]
        n = len(rows)
        return [rows[i] for i in range(max(0, n - limit), n)]
