"""Benchmark of the durable path: engine + command log, replay, snapshot and restart.

``python -m chainbook.bench journal [--commands N] [--orders M] [--repeat R] [--profile]``
prints one JSON object:

* ``snapshot``: ``--orders`` resting orders built through a DurableEngine, then what the
  parent pays to fork a snapshot, what the forked writer takes, the file size, and a
  restart in a fresh process (open = snapshot load + import) with its RSS;
* ``throughput``: commands/s (best of R) of the engine alone and of the engine with the
  durable command log (group commit every ``--batch`` commands) under fsync off, fsync
  every batch inline or on the helper thread, with and without the event journal, on
  the exchange-core mix of ``chainbook.bench.mix``, each with the share of its time
  spent in commit and in the cyclic GC; ``split_us_per_command`` derives the cost of
  each layer from the differences;
* ``replay``: commands/s recovering from the log files with no snapshot, and decoding
  alone;
* ``profile_shares`` (with ``--profile``): cProfile shares of one durable run.

Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chainbook.domain.commands import (
    AddSymbol,
    AmendOrder,
    CancelOrder,
    Command,
    Deposit,
    PlaceOrder,
)
from chainbook.domain.enums import OrderType, Side, TimeInForce
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine.engine import Engine
from chainbook.journal.backend import FsyncPolicy
from chainbook.journal.codec import RecordType
from chainbook.journal.recovery import DurableEngine
from chainbook.journal.segment_log import SegmentLog

SYMBOL = "BENCH-USD"
SPEC = SymbolSpec(SYMBOL, "BENCH", "USD", lot_units=1, quote_per_tick_lot=1)
TS0 = 1_700_000_000_000_000_000
Entry = tuple[Command, int]


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def mix_commands(n: int, seed: int) -> tuple[list[Entry], list[Entry], str]:
    """(untimed setup, timed commands, source) for the exchange-core mix."""
    setup: list[Entry] = [(AddSymbol(SPEC), TS0)]
    for a in range(1, 101):
        setup.append((Deposit(a, "USD", 10**16, f"d{a}u"), TS0))
        setup.append((Deposit(a, "BENCH", 10**14, f"d{a}b"), TS0))
    try:
        from chainbook.bench.mix import CANCEL, GTC, IOC, MOVE, generate
    except ImportError:  # the mix module is not there: a plain seeded stream instead
        from chainbook.journal.crashchild import command_stream
        stream = command_stream(seed)
        return [], [next(stream) for _ in range(n)], "crashchild.command_stream"
    s = generate("exchange-core", n, seed)

    def conv(c: tuple[int, ...], ts: int) -> Entry:
        op, oid, side, price, qty, account = c
        if op == GTC or op == IOC:
            tif = TimeInForce.GTC if op == GTC else TimeInForce.IOC
            return PlaceOrder(account, SYMBOL, Side(side), OrderType.LIMIT, qty=qty,
                              price=price, tif=tif), ts
        if op == CANCEL:
            return CancelOrder(account, SYMBOL, order_id=oid), ts
        if op == MOVE:
            return AmendOrder(account, SYMBOL, order_id=oid, new_price=price), ts
        raise ValueError(f"unknown op {op}")

    setup += [conv(c, TS0) for c in s.prefill]
    timed = [conv(c, TS0 + 1000 * (i + 1)) for i, c in enumerate(s.commands)]
    return setup, timed, "chainbook.bench.mix exchange-core"


def run_engine(setup: Sequence[Entry], timed: Sequence[Entry]) -> dict[str, Any]:
    """Commands/s of the bare engine, and its CPU time per command."""
    eng = Engine()
    seq = 0
    for cmd, ts in setup:
        seq += 1
        eng.apply(cmd, seq, ts)
    apply = eng.apply
    c0 = time.process_time()
    t0 = time.perf_counter()
    for cmd, ts in timed:
        seq += 1
        apply(cmd, seq, ts)
    dt = time.perf_counter() - t0
    return {"commands_per_s": round(len(timed) / dt),
            "cpu_us_per_command": round((time.process_time() - c0) / len(timed) * 1e6, 3)}


class GcTimer:
    """Collections and seconds spent in the cyclic GC while installed (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._t0
            self.collections += 1

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def run_durable(directory: Path, setup: Sequence[Entry], timed: Sequence[Entry], batch: int,
                events: bool, background: bool = False,
                fsync: FsyncPolicy = FsyncPolicy.EVERY) -> dict[str, Any]:
    """Submit everything through a DurableEngine with group commit; time the timed part
    up to the moment the last command is durable."""
    shutil.rmtree(directory, ignore_errors=True)
    de = DurableEngine(directory, fsync=fsync, events=events, background_sync=background)
    for cmd, ts in setup:
        de.submit(cmd, ts)
    de.commit()
    submit = de.submit
    commit = de.commit
    in_commit = 0.0
    with GcTimer() as gct:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for i in range(0, len(timed), batch):
            for cmd, ts in timed[i:i + batch]:
                submit(cmd, ts)
            c0 = time.perf_counter()
            commit()
            in_commit += time.perf_counter() - c0
        de.wait_durable(de.last_seq)
        dt = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    de.close()
    return {"commands_per_s": round(len(timed) / dt), "seconds": round(dt, 3),
            "cpu_us_per_command": round(cpu / len(timed) * 1e6, 3),
            "commit_share": round(in_commit / dt, 3), "gc_share": round(gct.seconds / dt, 3),
            "gc_collections": gct.collections}


def run_replay(directory: Path, n_total: int) -> dict[str, Any]:
    """Recover ``directory`` from its logs alone; also time decoding without applying."""
    log = SegmentLog(directory / "commands", RecordType.COMMAND, readonly=True)
    t0 = time.perf_counter()
    count = sum(len(items) for _, _, items in log.read_batches(1))
    decode = time.perf_counter() - t0
    de = DurableEngine(directory, snapshot_mode="inline")
    rep = de.report
    de.close()
    return {
        "commands": rep.replayed,
        "commands_per_s": round(rep.replayed / rep.replay_seconds),
        "decode_only_per_s": round(count / decode),
        "restart_seconds": round(rep.seconds, 3),
        "checked": rep.last_seq == n_total,
    }


def resting_orders(n: int) -> list[Entry]:
    """Deposits plus ``n`` GTC orders that never cross (bids below 1e6, asks above)."""
    out: list[Entry] = [(AddSymbol(SPEC), TS0)]
    for a in range(1, 1001):
        out.append((Deposit(a, "USD", 10**15, f"d{a}u"), TS0))
        out.append((Deposit(a, "BENCH", 10**14, f"d{a}b"), TS0))
    for i in range(n):
        side = i & 1
        level = (i >> 1) % 50_000
        price = 1_000_000 - 1 - level if side == 0 else 1_000_000 + level
        out.append((PlaceOrder(1 + i % 1000, SYMBOL, Side(side), OrderType.LIMIT,
                               qty=1 + i % 7, price=price), TS0 + i))
    return out


_RESTART = """
import json, sys, time
t0 = time.perf_counter()
from chainbook.journal.recovery import DurableEngine
t1 = time.perf_counter()
de = DurableEngine(sys.argv[1], snapshot_mode="inline")
t2 = time.perf_counter()
rep = de.report
n = sum(len(s.orders) for s in de.engine.symbols.values())
from chainbook.bench.journal_bench import rss_mb
print(json.dumps({"import_seconds": round(t1 - t0, 3), "open_seconds": round(t2 - t1, 3),
                  "load_seconds": round(rep.load_seconds, 3),
                  "replay_seconds": round(rep.replay_seconds, 3), "replayed": rep.replayed,
                  "resting_orders": n, "rss_mb": round(rss_mb(), 1)}))
de.close()
"""


def run_snapshot(directory: Path, n_orders: int) -> dict[str, Any]:
    """Build ``n_orders`` resting orders durably, snapshot them, restart in a new process."""
    rss0 = rss_mb()
    entries = resting_orders(n_orders)
    de = DurableEngine(directory, fsync=FsyncPolicy.EVERY)
    t0 = time.perf_counter()
    for i in range(0, len(entries), 1000):
        for cmd, ts in entries[i:i + 1000]:
            de.submit(cmd, ts)
        de.commit()
    build = time.perf_counter() - t0
    resting = sum(len(s.orders) for s in de.engine.symbols.values())
    rss_built = rss_mb()
    job = de.snapshot()
    if job is None:
        raise RuntimeError("snapshot writer busy")
    info = job.wait()
    de.close()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _RESTART, str(directory)],
                          capture_output=True, text=True, check=True)
    restart = json.loads(proc.stdout)
    restart["process_seconds"] = round(time.perf_counter() - t0, 3)
    return {
        "resting_orders": resting,
        "build_commands_per_s": round(len(entries) / build),
        "rss_mb_start": round(rss0, 1),
        "rss_mb_with_book_and_its_commands": round(rss_built, 1),
        "fork_pause_seconds": round(job.fork_seconds, 4),
        "writer_seconds": round(info.seconds, 3),
        "snapshot_mb": round(info.size / 2**20, 1),
        "restart": restart,
    }


def profile_split(directory: Path, setup: Sequence[Entry], timed: Sequence[Entry],
                  batch: int) -> dict[str, Any]:
    """cProfile one durable run; return the share of time in codec, I/O and the engine."""
    prof = cProfile.Profile()
    prof.enable()
    run_durable(directory, setup, timed, batch, events=True)
    prof.disable()
    st = pstats.Stats(prof)
    total = 0.0
    buckets = {"engine_apply": 0.0, "encode_frames": 0.0, "fsync": 0.0, "write": 0.0}
    raw: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    for (path, _, func), (_, _, tt, ct, _) in raw.items():
        total += tt
        if (func == "apply" and path.endswith("engine.py")) or \
                func == "<method 'apply' of 'Engine' objects>":  # compiled (mypyc)
            buckets["engine_apply"] += ct
        elif func == "encode_frame":
            buckets["encode_frames"] += ct
        elif "fdatasync" in func or "fsync" in func:
            buckets["fsync"] += tt
        elif func == "<built-in method posix.write>":
            buckets["write"] += tt
    out = {k: round(v / total, 3) for k, v in buckets.items()}
    out["rest (submit/commit glue, appends, loop)"] = round(
        1 - sum(out.values()), 3)
    return out


VARIANTS: dict[str, dict[str, Any]] = {
    "log_fsync_off": {"events": False, "fsync": FsyncPolicy.OFF},
    "log_fsync_every": {"events": False},
    "log_fsync_every_background": {"events": False, "background": True},
    "log_and_events_fsync_off": {"events": True, "fsync": FsyncPolicy.OFF},
    "log_and_events_fsync_every": {"events": True},
    "log_and_events_fsync_every_background": {"events": True, "background": True},
}


def throughput(base: Path, setup: Sequence[Entry], timed: Sequence[Entry], batch: int,
               repeat: int) -> dict[str, Any]:
    """Best of ``repeat`` runs of the bare engine and of each durable variant; the runs
    take turns (round after round), so a burst of load from a neighbour hits every
    variant alike instead of one."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ("engine", *VARIANTS)}
    for _ in range(repeat):
        runs["engine"].append(run_engine(setup, timed))
        for name, kw in VARIANTS.items():
            runs[name].append(run_durable(base / name, setup, timed, batch, **kw))
    out: dict[str, Any] = {
        "engine_only_per_s": max(r["commands_per_s"] for r in runs["engine"])}
    for name in VARIANTS:
        out[name] = max(runs[name], key=lambda r: r["commands_per_s"])
    wall = {k: 1e6 / max(r["commands_per_s"] for r in v) for k, v in runs.items()}
    # CPU time (process_time) is blind to the scheduler taking the core away, which
    # on a shared machine moves wall-clock figures by more than the log costs
    cpu = {k: min(r["cpu_us_per_command"] for r in v) for k, v in runs.items()}
    for key, us in (("split_us_per_command", wall), ("split_cpu_us_per_command", cpu)):
        out[key] = {
            "engine": round(us["engine"], 3),
            "log: submit glue + encode + write": round(us["log_fsync_off"] - us["engine"], 3),
            "fsync wait (every batch, inline)": round(
                us["log_fsync_every"] - us["log_fsync_off"], 3),
            # both without fsync: the disk's fsync times vary too much to subtract them
            "event journal: keep + encode + write": round(
                us["log_and_events_fsync_off"] - us["log_fsync_off"], 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON object."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--commands", type=int, default=1_000_000)
    p.add_argument("--orders", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3, help="best of N for throughput")
    p.add_argument("--dir", help="scratch directory (default: a new temp dir, removed)")
    p.add_argument("--profile", action="store_true", help="add a cProfile split")
    args = p.parse_args(argv)
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="cb-journal-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"commands": args.commands, "batch": args.batch,
                           "repeat": args.repeat, "seed": args.seed}
    try:
        if args.orders:  # first, so the RSS figures are not inflated by the mix
            out["snapshot"] = run_snapshot(base / "snap", args.orders)
            if not args.dir:
                shutil.rmtree(base / "snap", ignore_errors=True)
        if args.commands:
            setup, timed, out["mix"] = mix_commands(args.commands, args.seed)
            out["throughput"] = throughput(base, setup, timed, args.batch, args.repeat)
            out["replay"] = run_replay(base / "log_and_events_fsync_every",
                                       len(setup) + len(timed))
            if args.profile:
                out["profile_shares"] = profile_split(base / "profile", setup,
                                                      timed[:200_000], args.batch)
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
