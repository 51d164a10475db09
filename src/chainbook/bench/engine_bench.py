"""Engine benchmark: chainbook's ``Engine.apply`` vs liquibook vs a plain book, one run.

``python -m chainbook.bench engine --mix exchange-core --commands 1000000 --seed 1``

One seeded neutral stream (``chainbook.bench.mix``) is converted per engine before
timing (chainbook: prebuilt command structs with precomputed seq/ts; liquibook: prebuilt
``SimpleOrder`` records; baseline: plain tuples).  Setup (symbol, deposits, the prefill
orders) is applied untimed.  Each engine then runs twice, each time from a fresh state:

1. throughput: the whole stream in one timed loop -> ops/s;
2. latency: ``time.perf_counter_ns`` around every command; the median cost of an empty
   timer pair (measured first) is subtracted from each sample -> p50/p99/p99.9 in µs.

Both loops are the same ``f(*args)`` for every engine.  With ``--repeat N`` the engines
run N times round-robin (so background load hits them alike) and each timed figure is
the median over the N runs.  The garbage collector stays
enabled with its default thresholds (``gc.collect()`` before each pass, no freeze).
Afterwards every engine must have traded the same total quantity, equal to what the
generator's own simulation traded, and left the same number of resting orders; any
difference is an error (exit status 1) after the JSON line is printed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chainbook.bench.mix import MIXES, OP_NAMES, SELLERS, Stream, generate
from chainbook.bench.peers import (
    BaselineBook,
    Item,
    LiquibookRunner,
    baseline_items,
    liquibook_available,
)
from chainbook.domain import commands as C
from chainbook.domain.enums import OrderType, Side, TimeInForce
from chainbook.domain.events import OrderRejected, Trade
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine import Engine

SYMBOL = "BTCUSDT"
BASE = "BTC"
QUOTE = "USDT"
DEPOSIT = 10**12  # per account and asset: far more than any account can spend here
ENGINES = ("chainbook", "liquibook", "baseline")
TS_STEP = 1_000  # ns between consecutive commands
Outcome = tuple[int, int, int]  # (lots traded, notional traded, resting orders)


class BenchError(RuntimeError):
    """The engines disagreed (traded quantity, resting orders) or one rejected a command."""


# --- chainbook ---------------------------------------------------------------------


def chainbook_spec() -> SymbolSpec:
    """Zero fees, no band/breaker/limits; default STP (EXPIRE_MAKER), which never fires
    because buy and sell orders come from disjoint account pools."""
    return SymbolSpec(name=SYMBOL, base=BASE, quote=QUOTE, lot_units=1, quote_per_tick_lot=1)


def chainbook_command(c: tuple[int, ...]) -> C.Command:
    """Convert one neutral command to a chainbook command struct."""
    op, oid, side, price, qty, account = c
    if op == 0 or op == 1:
        return C.PlaceOrder(account, SYMBOL, Side(side), OrderType.LIMIT, qty=qty,
                            price=price, tif=TimeInForce.IOC if op == 1 else TimeInForce.GTC)
    if op == 2:
        return C.CancelOrder(account, SYMBOL, order_id=oid)
    return C.AmendOrder(account, SYMBOL, order_id=oid, new_price=price)


class ChainbookRunner:
    """A fresh ``Engine`` with the symbol, funded accounts and the prefill applied."""

    def __init__(self, stream: Stream) -> None:
        self.engine = Engine()
        self.seq = 0
        setup: list[C.Command] = [C.AddSymbol(chainbook_spec())]
        for a in range(1, 101):
            asset = BASE if a in SELLERS else QUOTE
            setup.append(C.Deposit(a, asset, DEPOSIT, f"bench-{a}-{asset}"))
        setup.extend(chainbook_command(c) for c in stream.prefill)
        for cmd in setup:
            self._apply_checked(cmd)

    def _apply_checked(self, cmd: C.Command) -> None:
        self.seq += 1
        for e in self.engine.apply(cmd, self.seq, self.seq * TS_STEP):
            if isinstance(e, OrderRejected):
                raise BenchError(f"chainbook rejected setup command {cmd!r}: {e!r}")

    def items(self, cmds: Sequence[C.Command]) -> list[Item]:
        """``(engine.apply, (cmd, seq, ts))`` for each prebuilt command."""
        apply = self.engine.apply
        first = self.seq + 1
        self.seq += len(cmds)
        return [(apply, (cmd, first + i, (first + i) * TS_STEP)) for i, cmd in enumerate(cmds)]

    def outcome(self) -> Outcome:
        """(lots traded, notional traded, resting orders), read off the balances:
        buyers deposit only quote, so their base is what they bought and the quote they
        no longer hold is what they paid (no fees, lot_units = quote_per_tick_lot = 1)."""
        acct = self.engine.balances.acct
        buyers = [acct[a] for a in range(1, 101) if a not in SELLERS]
        lots = sum(b.get(BASE, [0, 0])[0] for b in buyers)
        paid = sum(DEPOSIT - sum(b[QUOTE]) for b in buyers)
        return lots, paid, len(self.engine.symbols[SYMBOL].orders)


class ChainbookInspector:
    """Looks at each command's events outside the timer: trades and rejections."""

    def __init__(self) -> None:
        self.traded = 0
        self.notional = 0
        self.trading_commands = 0
        self.rejected: list[OrderRejected] = []

    def __call__(self, events: list[Any]) -> None:
        hit = False
        for e in events:
            if type(e) is Trade:
                self.traded += e.qty
                self.notional += e.quote_amount
                hit = True
            elif type(e) is OrderRejected:
                self.rejected.append(e)
        if hit:
            self.trading_commands += 1


# --- timing ------------------------------------------------------------------------


def run_throughput(items: Sequence[Item]) -> int:
    """Run every item in one timed loop; return elapsed ns."""
    gc.collect()
    pc = time.perf_counter_ns
    t0 = pc()
    for f, a in items:
        f(*a)
    return pc() - t0


def timer_overhead_ns(samples: int = 200_000) -> int:
    """Median cost of the empty ``t0 = pc(); lat[i] = pc() - t0`` pair, in ns."""
    pc = time.perf_counter_ns
    lat = array("q", bytes(8 * samples))
    for i in range(samples):
        t0 = pc()
        lat[i] = pc() - t0
    return sorted(lat)[samples // 2]


def run_latency(items: Sequence[Item],
                inspect: Callable[[Any], None] | None = None) -> array[int]:
    """Time each item with perf_counter_ns; ``inspect`` sees each result, untimed."""
    gc.collect()
    pc = time.perf_counter_ns
    lat = array("q", bytes(8 * len(items)))
    i = 0
    if inspect is None:
        for f, a in items:
            t0 = pc()
            f(*a)
            lat[i] = pc() - t0
            i += 1
    else:
        for f, a in items:
            t0 = pc()
            r = f(*a)
            lat[i] = pc() - t0
            i += 1
            inspect(r)
    return lat


def percentiles_us(lat: array[int], overhead: int) -> dict[str, float]:
    """p50/p99/p99.9 in µs after subtracting the timer overhead (floored at 0)."""
    s = sorted(lat)
    n = len(s)

    def at(q: float) -> float:
        return round(max(0, s[min(n - 1, int(q * n))] - overhead) / 1000, 3)

    return {"p50_us": at(0.50), "p99_us": at(0.99), "p999_us": at(0.999)}


# --- per-engine drivers ------------------------------------------------------------


def bench_chainbook(stream: Stream, overhead: int) -> dict[str, Any]:
    """Throughput and latency passes of chainbook, each on a fresh engine."""
    cmds = [chainbook_command(c) for c in stream.commands]
    runner = ChainbookRunner(stream)
    items = runner.items(cmds)
    elapsed = run_throughput(items)
    first = runner.outcome()
    del items, runner
    runner = ChainbookRunner(stream)
    items = runner.items(cmds)
    insp = ChainbookInspector()
    lat = run_latency(items, insp)
    if insp.rejected:
        raise BenchError(f"chainbook rejected {len(insp.rejected)} commands, first "
                         f"{insp.rejected[0]!r}")
    second = runner.outcome()
    seen = (insp.traded, insp.notional, second[2])
    if not first == second == seen:
        raise BenchError(f"chainbook's passes disagree: {first}, {second}, events {seen}")
    out = _figures(stream, elapsed, lat, overhead, first)
    out["trading_pct"] = round(100 * insp.trading_commands / len(items), 2)
    return out


def _two_passes(name: str, stream: Stream, overhead: int,
                make: Callable[[], tuple[list[Item], Callable[[], Outcome]]]) -> dict[str, Any]:
    """Throughput pass then latency pass, each on what a fresh ``make()`` returns."""
    items, outcome = make()
    elapsed = run_throughput(items)
    first = outcome()
    del items, outcome
    items, outcome = make()
    lat = run_latency(items)
    second = outcome()
    if first != second:
        raise BenchError(f"{name}'s two passes disagree: {first} vs {second}")
    return _figures(stream, elapsed, lat, overhead, first)


def bench_liquibook(stream: Stream, overhead: int) -> dict[str, Any]:
    """Throughput and latency passes of liquibook, each on a fresh book."""

    def make() -> tuple[list[Item], Callable[[], Outcome]]:
        runner = LiquibookRunner()
        run_throughput(runner.items(stream.prefill))
        return runner.items(stream.commands), lambda: (runner.traded, runner.notional,
                                                       runner.resting())

    return _two_passes("liquibook", stream, overhead, make)


def bench_baseline(stream: Stream, overhead: int) -> dict[str, Any]:
    """Throughput and latency passes of the baseline book, each on a fresh book."""

    def make() -> tuple[list[Item], Callable[[], Outcome]]:
        book = BaselineBook()
        run_throughput(baseline_items(book, stream.prefill))
        return baseline_items(book, stream.commands), lambda: (book.traded, book.notional,
                                                               len(book.orders))

    return _two_passes("baseline", stream, overhead, make)


def _figures(stream: Stream, elapsed: int, lat: array[int], overhead: int,
             outcome: Outcome) -> dict[str, Any]:
    out: dict[str, Any] = {"ops_per_s": round(len(stream.commands) * 1e9 / elapsed)}
    out.update(percentiles_us(lat, overhead))
    out["traded_qty"], out["traded_notional"], out["resting_orders"] = outcome
    by_op: dict[tuple[int, int], array[int]] = {}
    for cmd, traded, t in zip(stream.commands, stream.traded, lat, strict=True):
        by_op.setdefault((cmd[0], traded), array("q")).append(t)
    out["by_op"] = {
        OP_NAMES[op] + ("+trade" if traded else ""): {
            "n": len(a), **{k: v for k, v in percentiles_us(a, overhead).items()
                            if k != "p999_us"}}
        for (op, traded), a in sorted(by_op.items())}
    return out


BENCHES = {"chainbook": bench_chainbook, "liquibook": bench_liquibook,
           "baseline": bench_baseline}


def profile_chainbook(stream: Stream, top: int = 25) -> str:
    """cProfile of chainbook's throughput loop on a fresh engine; top ``top`` by tottime."""
    runner = ChainbookRunner(stream)
    items = runner.items([chainbook_command(c) for c in stream.commands])
    prof = cProfile.Profile()
    prof.enable()
    for f, a in items:
        f(*a)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


TIMED = ("ops_per_s", "p50_us", "p99_us", "p999_us", "by_op")


def median_figures(name: str, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per timed figure the median over ``runs`` (``by_op``: that of the run with the
    median ops/s); the outcome must be identical in all runs."""
    out = dict(runs[0])
    for r in runs[1:]:
        if {k: v for k, v in r.items() if k not in TIMED} != \
                {k: v for k, v in out.items() if k not in TIMED}:
            raise BenchError(f"{name}'s repeats disagree: {runs[0]} vs {r}")
    for key in TIMED[:-1]:
        out[key] = statistics.median_low(r[key] for r in runs)
    out["by_op"] = next(r["by_op"] for r in runs if r["ops_per_s"] == out["ops_per_s"])
    out["ops_per_s_runs"] = [r["ops_per_s"] for r in runs]
    return out


def run(mix: str, commands: int, seed: int, engines: Sequence[str],
        repeat: int = 1) -> dict[str, Any]:
    """Generate the stream, run the engines ``repeat`` times round-robin, return the
    result with the median of each timed figure (checks not applied)."""
    core_src = core_fingerprint()  # before the run: the core may be edited meanwhile
    stream = generate(mix, commands, seed)
    overhead = timer_overhead_ns()
    result: dict[str, Any] = {"mix": mix, "commands": commands, "seed": seed, "engines": {}}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in engines}
    for _ in range(repeat):
        for name in engines:
            runs[name].append(BENCHES[name](stream, overhead))
    for name in engines:
        result["engines"][name] = median_figures(name, runs[name])
    result["repeat"] = repeat
    figs = result["engines"]
    cb = figs.get("chainbook")
    if cb:
        result["ratios"] = {f"chainbook/{k}": round(cb["ops_per_s"] / v["ops_per_s"], 3)
                            for k, v in figs.items() if k != "chainbook"}
    result["mix_stats"] = stream.stats
    result["timer_overhead_ns"] = overhead
    result["gc"] = "enabled, default thresholds, gc.collect() before each pass, no freeze"
    result["python"] = platform.python_version()
    result["nproc"] = os.cpu_count()
    result["core_src"] = core_src
    return result


def core_fingerprint() -> str:
    """Short sha256 of the core's source files, so a figure can be tied to the code it ran."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pkg in ("domain", "book", "accounts", "engine"):
        for f in sorted((root / pkg).glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def check(result: dict[str, Any]) -> list[str]:
    """Every way the engines disagree with each other or with the generator."""
    errors = []
    stats = result["mix_stats"]
    want = {"traded_qty": stats["traded_qty"], "traded_notional": stats["traded_notional"],
            "resting_orders": stats["end_resting_orders"]}
    for name, f in result["engines"].items():
        for key, value in want.items():
            if f[key] != value:
                errors.append(f"{name}: {key} = {f[key]}, the generator's simulation "
                              f"gives {value}")
    if want["traded_qty"] <= 0:
        errors.append("the stream traded nothing")
    return errors


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: print one JSON line; exit 1 if the engines disagree."""
    ap = argparse.ArgumentParser(prog="python -m chainbook.bench engine",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--mix", choices=MIXES, default="exchange-core")
    ap.add_argument("--commands", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help="comma-separated subset of " + ",".join(ENGINES))
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every engine this many times, round-robin, and report the "
                         "median of each timed figure (default 1)")
    ap.add_argument("--profile", action="store_true",
                    help="also print a cProfile of chainbook's run (top 25 by tottime) "
                         "to stderr")
    args = ap.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        ap.error(f"unknown engines {unknown}; choose from {', '.join(ENGINES)}")
    if args.commands <= 0 or args.repeat <= 0:
        ap.error("--commands and --repeat must be positive")
    if "liquibook" in engines and not liquibook_available():
        print("liquibook is not installed (pip install -e '.[bench]'), or pass "
              "--engines chainbook,baseline", file=sys.stderr)
        return 2
    try:
        result = run(args.mix, args.commands, args.seed, engines, args.repeat)
    except BenchError as e:
        print(f"benchmark failed: {e}", file=sys.stderr)
        return 1
    errors = check(result)
    result["ok"] = not errors
    print(json.dumps(result), flush=True)
    if args.profile and "chainbook" in engines:
        print(profile_chainbook(generate(args.mix, args.commands, args.seed)),
              file=sys.stderr)
    if errors:
        for err in errors:
            print(f"MISMATCH: {err}", file=sys.stderr)
        return 1
    return 0
