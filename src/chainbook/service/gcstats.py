"""Garbage-collector pauses of ``chainbook serve``, for the benchmarks.

With ``CHAINBOOK_GC_STATS=<file>`` in its environment, ``serve`` counts every collection
(``gc.callbacks``): per generation the number, the total and the longest pause, and the
wall-clock time of each pause of ``LONG_NS`` or more; it writes them to the file as JSON
on exit.  A collection holds the GIL, so its pause stalls every thread (the event loop
included): this is how the 75-145 ms REST stall was found (docs/gateway-performance.md,
Session 3).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

GC_STATS_ENV = "CHAINBOOK_GC_STATS"
LONG_NS = 10_000_000  # pauses from 10 ms on are listed one by one
MAX_LISTED = 1000


@dataclass
class GcStats:
    """Counters filled by ``install``'s callback."""

    collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    pause_ns: list[int] = field(default_factory=lambda: [0, 0, 0])
    pause_ns_max: list[int] = field(default_factory=lambda: [0, 0, 0])
    long: list[dict[str, Any]] = field(default_factory=list)  # {gen, ms, at (epoch s)}
    frozen: int = 0  # gc.get_freeze_count() when written
    _t0: int = field(default=0, repr=False)

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter_ns()
            return
        took = time.perf_counter_ns() - self._t0
        gen = int(info.get("generation", 2))
        self.collections[gen] += 1
        self.pause_ns[gen] += took
        if took > self.pause_ns_max[gen]:
            self.pause_ns_max[gen] = took
        if took >= LONG_NS and len(self.long) < MAX_LISTED:
            self.long.append({"gen": gen, "ms": round(took / 1e6, 2),
                              "at": round(time.time(), 3)})

    def as_dict(self) -> dict[str, Any]:
        self.frozen = gc.get_freeze_count()
        return {"collections": self.collections, "pause_ns": self.pause_ns,
                "pause_ns_max": self.pause_ns_max, "long": self.long, "frozen": self.frozen}


def install() -> GcStats:
    """Start counting (one callback for the life of the process)."""
    stats = GcStats()
    gc.callbacks.append(stats.callback)
    return stats
