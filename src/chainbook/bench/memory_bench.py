"""Memory benchmark: resident set size of chainbook's engine holding N resting orders.

``python -m chainbook.bench memory --orders 1000000``

Non-crossing limit orders (bids below 100,000 ticks, asks above, spread over
``--levels`` price levels per side, quantities 1-100 lots) from ``--accounts`` funded
accounts are applied one by one; each command struct and its events are dropped as soon
as it is applied, so what stays is the engine's state.  RSS is read from
``/proc/self/statm`` (no tracemalloc, which would itself cost memory and time) before
the orders (interpreter, imports, engine with funded accounts) and after them (after a
``gc.collect()``); peak RSS from ``resource.getrusage``.  Prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

from chainbook.bench.engine_bench import BASE, QUOTE, SYMBOL, chainbook_spec
from chainbook.domain import commands as C
from chainbook.domain.enums import OrderType, Side
from chainbook.domain.events import OrderRejected
from chainbook.engine import Engine

MB = 1024 * 1024
TARGET_MB = 500  # DESIGN.md section 6: 1M resting orders under 500 MB
MID = 100_000


def rss_bytes() -> int:
    """Current resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak resident set size so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(orders: int, levels: int, accounts: int, seed: int, client_ids: bool) -> dict[str, Any]:
    """Fill an engine with ``orders`` resting orders and measure its memory."""
    if orders <= 0 or levels <= 0 or accounts < 2:
        raise ValueError("orders and levels must be positive, accounts at least 2")
    rng = random.Random(seed)
    engine = Engine()
    seq = 0

    def apply(cmd: C.Command) -> None:
        nonlocal seq
        seq += 1
        for e in engine.apply(cmd, seq, seq * 1000):
            if isinstance(e, OrderRejected):
                raise RuntimeError(f"rejected {cmd!r}: {e!r}")

    apply(C.AddSymbol(chainbook_spec()))
    half = accounts // 2  # accounts 1..half buy, half+1..accounts sell
    for a in range(1, accounts + 1):
        asset = QUOTE if a <= half else BASE
        apply(C.Deposit(a, asset, 10**14, f"mem-{a}"))
    gc.collect()
    before = rss_bytes()
    t0 = time.perf_counter()
    for i in range(orders):
        side = i & 1
        d = 1 + rng.randrange(levels)
        if side == 0:
            account = 1 + rng.randrange(half)
            price = MID - d
        else:
            account = half + 1 + rng.randrange(accounts - half)
            price = MID + d
        apply(C.PlaceOrder(account, SYMBOL, Side(side), OrderType.LIMIT,
                           qty=1 + rng.randrange(100), price=price,
                           client_id=f"c{i}" if client_ids else None))
    place_s = time.perf_counter() - t0
    gc.collect()
    after = rss_bytes()
    sym = engine.symbols[SYMBOL]
    resting = len(sym.orders)
    if resting != orders:
        raise RuntimeError(f"{resting} orders rest, expected {orders}")
    return {
        "orders": orders,
        "levels": len(sym.book.keys[0]) + len(sym.book.keys[1]),
        "accounts": accounts,
        "client_ids": client_ids,
        "rss_before_mb": round(before / MB, 1),
        "rss_after_mb": round(after / MB, 1),
        "rss_delta_mb": round((after - before) / MB, 1),
        "bytes_per_order": round((after - before) / orders),
        "peak_rss_mb": round(peak_rss_bytes() / MB, 1),
        "place_s": round(place_s, 2),
        "target_mb": TARGET_MB,
        "target_met": after / MB < TARGET_MB,
        "python": platform.python_version(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: print one JSON line."""
    ap = argparse.ArgumentParser(prog="python -m chainbook.bench memory",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--levels", type=int, default=10_000, help="price levels per side")
    ap.add_argument("--accounts", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--client-ids", action="store_true",
                    help="give every order a client order id (a short string)")
    args = ap.parse_args(argv)
    try:
        result = run(args.orders, args.levels, args.accounts, args.seed, args.client_ids)
    except (ValueError, RuntimeError) as e:
        print(f"memory benchmark failed: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0
