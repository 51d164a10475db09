"""Helpers shared by the chain integration tests."""

from __future__ import annotations

from chainbook.domain.events import Trade


def trades(n: int, start: int = 1) -> list[tuple[int, Trade]]:
    """``n`` settled trades (seq, Trade) with ids from ``start``, one per command."""
    return [(i, Trade(i, "BTCUSDT", 100 + i % 17, 1 + i % 5, 0, i % 2, 2 * i, 2 * i + 1,
                      1 + i % 3, 4 + i % 3, 0, 0, 0, 0))
            for i in range(start, start + n)]
