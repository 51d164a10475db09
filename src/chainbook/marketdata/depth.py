"""One symbol's L2 book as the public sees it: levels, update ids and diff windows.

Every ``BookLevelChanged`` of the symbol takes the next update id (1, 2, ...). REST
``lastUpdateId`` is the id of the last change applied; each diff stream kind
(``100ms`` and ``1000ms``) has a ``Window`` that collects the changes since that kind's
previous flush, so consecutive diffs of a kind satisfy ``U == previous u + 1`` whether or
not anyone listened in between (docs/serve.md, spec section 6.4).

Pure: no clock, no I/O. Best bid/ask are cached and recomputed (O(levels)) only when
the best level itself empties.
"""

from __future__ import annotations

import heapq

BID = 0
ASK = 1
KINDS = ("100ms", "1000ms")  # the two diff cadences


class Window:
    """The changes of one diff cadence since its last flush: ids ``first..last``."""

    __slots__ = ("first", "last", "bids", "asks")

    def __init__(self) -> None:
        self.first = 0  # 0 = empty window
        self.last = 0
        self.bids: dict[int, int] = {}  # price -> latest qty (0 = level gone)
        self.asks: dict[int, int] = {}

    def add(self, uid: int, side: int, price: int, qty: int) -> None:
        """Record change ``uid`` (ids arrive in increasing order)."""
        if not self.first:
            self.first = uid
        self.last = uid
        (self.bids if side == BID else self.asks)[price] = qty

    def take(self) -> tuple[int, int, list[tuple[int, int]], list[tuple[int, int]]] | None:
        """Return ``(U, u, bids best first, asks best first)`` and empty the window;
        None if nothing changed since the last take."""
        if not self.first:
            return None
        out = (self.first, self.last, sorted(self.bids.items(), reverse=True),
               sorted(self.asks.items()))
        self.first = self.last = 0
        self.bids = {}
        self.asks = {}
        return out


class DepthBook:
    """Price -> open lots per side, the update-id counter and the diff windows."""

    __slots__ = ("bids", "asks", "last_id", "windows", "best_bid", "best_ask")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.last_id = 0
        self.windows = {kind: Window() for kind in KINDS}
        self.best_bid = 0  # price in ticks, 0 = no bids
        self.best_ask = 0  # price in ticks, 0 = no asks

    def apply(self, side: int, price: int, qty: int, record: bool) -> int:
        """Set level ``(side, price)`` to ``qty`` lots (0 removes it); return its update id.

        ``record`` False (history replay) advances the id without filling the windows,
        so the first live diff starts at the first live change."""
        self.last_id += 1
        uid = self.last_id
        if side == BID:
            if qty:
                self.bids[price] = qty
                if price > self.best_bid:
                    self.best_bid = price
            else:
                self.bids.pop(price, None)
                if price == self.best_bid:
                    self.best_bid = max(self.bids) if self.bids else 0
        else:
            if qty:
                self.asks[price] = qty
                if not self.best_ask or price < self.best_ask:
                    self.best_ask = price
            else:
                self.asks.pop(price, None)
                if price == self.best_ask:
                    self.best_ask = min(self.asks) if self.asks else 0
        if record:
            for w in self.windows.values():
                w.add(uid, side, price, qty)
        return uid

    def top(self) -> tuple[int, int, int, int]:
        """``(bid price, bid qty, ask price, ask qty)``; zeros for an empty side."""
        bb, ba = self.best_bid, self.best_ask
        return (bb, self.bids.get(bb, 0), ba, self.asks.get(ba, 0))

    def levels(self, limit: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best ``limit`` levels of each side, best first. O(levels log limit)."""
        bids = heapq.nlargest(limit, self.bids.items())
        asks = heapq.nsmallest(limit, self.asks.items())
        return bids, asks

    def check(self) -> None:
        """Raise AssertionError if the cached best prices or the levels are inconsistent."""
        if any(q <= 0 for q in self.bids.values()) or any(q <= 0 for q in self.asks.values()):
            raise AssertionError("a level with no quantity is kept")
        if self.best_bid != (max(self.bids) if self.bids else 0):
            raise AssertionError(f"best bid {self.best_bid} is stale")
        if self.best_ask != (min(self.asks) if self.asks else 0):
            raise AssertionError(f"best ask {self.best_ask} is stale")
