"""What the rest of the machine did during a run (the host's CPU counters, /proc/stat),
and how fast this machine runs Python at all (``python_loop_ms``).

On a virtual machine ``steal`` is the time the hypervisor ran something else while this
guest wanted a CPU. These machines are noisy: a run at 50 % steal has half the CPU of a
quiet one, so each benchmark line carries the steal share of its own window next to its
figures (a benchmark never asserts a time; this says what a figure was measured on).
"""

from __future__ import annotations

import time
from pathlib import Path

STAT = Path("/proc/stat")


def host_times() -> tuple[int, ...] | None:
    """The aggregate ``cpu`` line of /proc/stat in ticks (user, nice, system, idle,
    iowait, irq, softirq, steal), or None off Linux."""
    try:
        first = STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    return tuple(int(v) for v in first[1:9])


def host_share(before: tuple[int, ...] | None) -> dict[str, float]:
    """``host_steal_pct`` (stolen by the hypervisor) and ``host_busy_pct`` (used by every
    process of this machine) of all CPU time since ``before``; {} without counters."""
    after = host_times()
    if before is None or after is None:
        return {}
    d = [a - b for a, b in zip(after, before, strict=True)]
    total = sum(d)
    if total <= 0:
        return {}
    idle = d[3] + d[4]
    return {"host_steal_pct": round(100.0 * d[7] / total, 1),
            "host_busy_pct": round(100.0 * (total - idle - d[7]) / total, 1)}


LOOP_N = 2_000_000


def python_loop_ms(repeat: int = 3) -> float:
    """Best of ``repeat`` timings of a fixed pure-Python loop (2M additions), in ms: the
    same work on every machine, so figures from different days can be put side by side
    (docs/benchmarks.md quotes it with each session's figures)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        total = 0
        for i in range(LOOP_N):
            total += i
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000.0, 1)
