"""Benchmark of the settlement service: trades/s into the ledger and settlement lag.

``python -m chainbook.bench ledger [--trades N] [--batch B] [--lag-seconds S]
[--rate R ...] [--pg URL]`` prints one JSON line:

* ``python_only``: the same journal read, decoded and folded into batches with no
  database at all: the ceiling any database could reach behind this Python code;
* ``sqlite`` / ``postgresql``: a seeded session of about ``--trades`` trades is written
  through the real engine + DurableEngine into a temp directory, then a fresh ledger
  applies the whole journal in batches of ``--batch`` commands; trades/s and commands/s
  are over that apply only (the journal is already on disk);
* ``lag_<db>_<rate>``: a producer process submits ``--rate`` trades/s for ``--lag-seconds`` through
  a DurableEngine (group commit every 5 ms, fsync per commit) while the ledger service
  tails the journal in this process; lag = wall clock at the ledger's COMMIT minus the
  command's journal timestamp (taken just before it was logged), per trade; p50/p99/max.

The process sets the GIL switch interval that ``ledger run`` sets (0.5 ms,
``ledger.pipeline.tune_process``), so the applies run as in the ledger process;
``--default-switch-interval`` keeps Python's 5 ms for comparison.

PostgreSQL runs are skipped (``"skipped": reason``) when the server is unreachable.
Figures only: nothing here asserts a time.

``write_session`` is also the seeded session generator of the ledger tests.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chainbook.domain import commands as C
from chainbook.domain.enums import OrderType, Side, TimeInForce
from chainbook.domain.events import Event, OrderAccepted, Trade
from chainbook.domain.instruments import SymbolSpec
from chainbook.journal.backend import FsyncPolicy
from chainbook.journal.recovery import DurableEngine

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TS0 = 1_700_000_000_000_000_000
SPECS = (
    SymbolSpec("BTCUSDT", "BTC", "USDT", lot_units=100, quote_per_tick_lot=1, maker_bps=10,
               taker_bps=20),
    SymbolSpec("ETHUSDT", "ETH", "USDT", lot_units=10, quote_per_tick_lot=1, maker_bps=5,
               taker_bps=15),
)
MID = {"BTCUSDT": 30_000, "ETHUSDT": 2_000}


class Session:
    """Drives a DurableEngine with seeded random commands, remembering open orders."""

    def __init__(self, de: DurableEngine, seed: int, accounts: int = 20) -> None:
        self.de = de
        self.rng = random.Random(seed)
        self.accounts = list(range(1, accounts + 1))
        self.ts = TS0
        self.open: dict[int, tuple[int, str]] = {}  # order id -> (account, symbol)
        self.held: list[str] = []
        self.n_ext = 0
        self.trades = 0

    def submit(self, cmd: C.Command, ts: int | None = None) -> list[Event]:
        self.ts = self.ts + 1_000_000 if ts is None else ts
        _, events = self.de.submit(cmd, self.ts)
        for ev in events:
            if isinstance(ev, OrderAccepted):
                self.open[ev.order_id] = (ev.account, ev.symbol)
            elif isinstance(ev, Trade):
                self.trades += 1
        return events

    def ext(self, chain: bool) -> str:
        self.n_ext += 1
        if chain:
            return f"0x{self.rng.getrandbits(256):064x}:{self.rng.randrange(50)}"
        return f"ext-{self.n_ext}"

    def setup(self) -> None:
        for spec in SPECS:
            self.submit(C.AddSymbol(spec))
        for a in self.accounts:
            for asset, amount in (("USDT", 10**13), ("BTC", 10**9), ("ETH", 10**10)):
                self.submit(C.Deposit(a, asset, amount, self.ext(a % 2 == 0)))

    def random_command(self) -> None:
        rng = self.rng
        r = rng.random()
        acct = rng.choice(self.accounts)
        sym = rng.choice(SPECS).name
        mid = MID[sym]
        side = Side(rng.randrange(2))
        if r < 0.55:
            off = rng.randrange(-3, 8)
            price = mid - off if side == Side.BUY else mid + off
            tif = TimeInForce.IOC if r < 0.08 else TimeInForce.GTC
            self.submit(C.PlaceOrder(acct, sym, side, OrderType.LIMIT, rng.randint(1, 20),
                                     price, tif))
        elif r < 0.62:
            if rng.random() < 0.5:
                self.submit(C.PlaceOrder(acct, sym, side, OrderType.MARKET,
                                         qty=rng.randint(1, 10), tif=TimeInForce.IOC))
            else:
                self.submit(C.PlaceOrder(acct, sym, side, OrderType.MARKET,
                                         tif=TimeInForce.IOC,
                                         quote_qty=mid * rng.randint(1, 10)))
        elif r < 0.78 and self.open:
            oid = rng.choice(list(self.open))
            a, s = self.open.pop(oid)
            self.submit(C.CancelOrder(a, s, order_id=oid))
        elif r < 0.88 and self.open:
            oid = rng.choice(list(self.open))
            a, s = self.open[oid]
            self.submit(C.AmendOrder(a, s, order_id=oid, new_qty=rng.randint(1, 25)))
        elif r < 0.92:
            asset = rng.choice(("USDT", "BTC", "ETH"))
            self.submit(C.Deposit(acct, asset, rng.randint(1, 10**6), self.ext(rng.random()
                                                                                < 0.5)))
        elif r < 0.95:
            ext = self.ext(False)
            ev = self.submit(C.WithdrawHold(acct, "USDT", rng.randint(1, 10**5), ext))
            if not any(type(e).__name__ == "OrderRejected" for e in ev):
                self.held.append(ext)
        elif r < 0.98 and self.held:
            ext = self.held.pop(rng.randrange(len(self.held)))
            done = C.WithdrawComplete(ext) if rng.random() < 0.6 else C.WithdrawRefund(ext)
            self.submit(done)
        elif r < 0.99:
            self.submit(C.SetKillSwitch(acct, True))
            self.submit(C.SetKillSwitch(acct, False))
        else:
            self.submit(C.CancelAll(acct, sym))


def write_session(directory: Path, commands: int, seed: int, *, commit_every: int = 50,
                  segment_bytes: int = 64 << 20) -> int:
    """Write a seeded mixed trading session (deposits, chain deposits, withdrawals,
    limit/IOC/market orders, cancels, amends, kill switch) into ``directory`` through a
    DurableEngine; return the number of trades."""
    with DurableEngine(directory, fsync=FsyncPolicy.OFF, segment_bytes=segment_bytes,
                       snapshot_mode="inline") as de:
        s = Session(de, seed)
        s.setup()
        for i in range(commands):
            s.random_command()
            if i % commit_every == 0:
                de.commit()
        de.commit()
        return s.trades


def write_trades(directory: Path, trades: int, seed: int, per_taker: int = 10) -> int:
    """A trade-heavy session: ``per_taker`` resting 1-lot makers then one taker that
    fills them all, repeated; return the number of trades."""
    rng = random.Random(seed)
    with DurableEngine(directory, fsync=FsyncPolicy.OFF, snapshot_mode="inline") as de:
        s = Session(de, seed, accounts=100)
        s.setup()
        while s.trades < trades:
            sym = rng.choice(SPECS).name
            maker_side = Side(rng.randrange(2))
            price = MID[sym] + (1 if maker_side == Side.SELL else -1)
            for _ in range(per_taker):
                s.submit(C.PlaceOrder(rng.choice(s.accounts[:50]), sym, maker_side,
                                      OrderType.LIMIT, 1, price))
            s.submit(C.PlaceOrder(rng.choice(s.accounts[50:]), sym, Side(1 - maker_side),
                                  OrderType.LIMIT, per_taker, price, TimeInForce.IOC))
            de.commit()
        return s.trades


def _pg_schema_url(base: str) -> tuple[str, str] | None:
    """A fresh schema on ``base`` and the URL that uses it; None if PG is unreachable."""
    try:
        import sqlalchemy as sa
        eng = sa.create_engine(base)
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with eng.begin() as c:
            c.exec_driver_sql(f"CREATE SCHEMA {schema}")
        eng.dispose()
    except Exception:  # noqa: BLE001 - any connection failure means "skip"
        return None
    sep = "&" if "?" in base else "?"
    return schema, f"{base}{sep}options=-csearch_path%3D{schema}"


def _drop_schema(base: str, schema: str) -> None:
    import sqlalchemy as sa
    eng = sa.create_engine(base)
    with eng.begin() as c:
        c.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    eng.dispose()


def time_apply(url: str, data: Path, trades: int, batch: int) -> dict[str, Any]:
    """Apply ``data``'s whole journal to a fresh ledger at ``url``; trades/s."""
    from chainbook.ledger.service import LedgerService
    svc = LedgerService(url, data, batch_size=batch)
    t0 = time.perf_counter()
    n = svc.run_once()
    dt = time.perf_counter() - t0
    ok = not svc.failures
    svc.close()
    return {"trades": trades, "commands": n, "seconds": round(dt, 3),
            "trades_per_s": round(trades / dt), "commands_per_s": round(n / dt),
            "batch": batch, "ok": ok}


def time_build(data: Path, trades: int, batch: int) -> dict[str, Any]:
    """The Python side alone: read + decode the journal and fold it into batches, no
    database (the ceiling of any database behind it)."""
    from chainbook.ledger.batch import LedgerState, build_batch
    from chainbook.ledger.source import JournalTail
    t0 = time.perf_counter()
    entries = JournalTail(data / "events").poll(10**9)
    t1 = time.perf_counter()
    state = LedgerState()
    for i in range(0, len(entries), batch):
        build_batch(entries[i:i + batch], state)
    t2 = time.perf_counter()
    return {"read_trades_per_s": round(trades / (t1 - t0)),
            "build_trades_per_s": round(trades / (t2 - t1)),
            "trades_per_s": round(trades / (t2 - t0))}


def producer(directory: str, rate: int, seconds: float, per_taker: int = 10) -> None:
    """Submit ``rate`` trades/s for ``seconds`` (group commit every 5 ms, fsync each)."""
    tick = 0.005
    with DurableEngine(directory, fsync=FsyncPolicy.EVERY, snapshot_mode="inline") as de:
        s = Session(de, 7, accounts=100)
        s.setup()
        de.commit()
        rng = s.rng
        t_end = time.monotonic() + seconds
        next_tick = time.monotonic()
        made = 0.0
        while time.monotonic() < t_end:
            made += rate * tick
            while made >= per_taker:
                made -= per_taker
                sym = rng.choice(SPECS).name
                for _ in range(per_taker):
                    s.submit(C.PlaceOrder(rng.choice(s.accounts[:50]), sym, Side.SELL,
                                          OrderType.LIMIT, 1, MID[sym] + 1), time.time_ns())
                s.submit(C.PlaceOrder(rng.choice(s.accounts[50:]), sym, Side.BUY,
                                      OrderType.LIMIT, per_taker, MID[sym] + 1,
                                      TimeInForce.IOC), time.time_ns())
            de.commit()
            next_tick += tick
            time.sleep(max(0.0, next_tick - time.monotonic()))


def measure_lag(url: str, rate: int, seconds: float) -> dict[str, Any]:
    """Settlement lag percentiles while a producer process writes ``rate`` trades/s."""
    from chainbook.ledger.service import LedgerService
    tmp = Path(tempfile.mkdtemp(prefix="ledger-lag-"))
    lags: list[int] = []

    def observe(batch: Any, entries: Sequence[Any]) -> None:
        now = time.time_ns()
        for _seq, ts, events in entries:
            k = sum(1 for e in events if type(e) is Trade)
            if k:
                lags.extend([now - ts] * k)

    proc = subprocess.Popen([sys.executable, "-m", "chainbook.bench.ledger_bench",
                             "--producer", str(tmp), "--rate", str(rate),
                             "--lag-seconds", str(seconds)])
    try:
        while not (tmp / "events").is_dir() and proc.poll() is None:
            time.sleep(0.01)
        svc = LedgerService(url, tmp, observer=observe)
        stop = threading.Event()
        th = threading.Thread(target=svc.run, args=(stop,), daemon=True)
        th.start()
        proc.wait(seconds + 60)
        time.sleep(0.3)
        stop.set()
        th.join()
        svc.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    lags.sort()
    if not lags:
        return {"trades": 0}

    def pct(p: float) -> float:
        return round(lags[min(len(lags) - 1, int(p * len(lags)))] / 1e6, 2)

    return {"rate": rate, "seconds": seconds, "trades": len(lags),
            "trades_per_s": round(len(lags) / seconds), "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "max_ms": round(lags[-1] / 1e6, 2)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ledger benchmark; print one JSON line."""
    p = argparse.ArgumentParser(prog="python -m chainbook.bench ledger")
    p.add_argument("--trades", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=5000, help="commands per transaction")
    p.add_argument("--rate", type=int, action="append",
                   help="producer trades/s for the lag runs (repeatable; default 10000 and "
                        "2000)")
    p.add_argument("--lag-seconds", type=float, default=5.0)
    p.add_argument("--pg", default=PG_URL, help="PostgreSQL URL ('' to skip)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--producer", help=argparse.SUPPRESS)
    p.add_argument("--default-switch-interval", action="store_true",
                   help="keep Python's 5 ms GIL switch interval (ledger run sets 0.5 ms)")
    args = p.parse_args(list(argv) if argv is not None else None)
    rates = args.rate or [10_000, 2_000]
    if args.producer:
        producer(args.producer, rates[0], args.lag_seconds)
        return 0
    out: dict[str, Any] = {"bench": "ledger", "batch": args.batch}
    if not args.default_switch_interval:
        from chainbook.ledger.pipeline import SWITCH_INTERVAL_S, tune_process
        tune_process()  # as ``ledger run`` does: this process applies like it
        out["switch_interval_s"] = SWITCH_INTERVAL_S
    tmp = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    try:
        data = tmp / "data"
        trades = write_trades(data, args.trades, args.seed)
        out["python_only"] = time_build(data, trades, args.batch)
        out["sqlite"] = time_apply(f"sqlite:///{tmp / 'ledger.sqlite'}", data, trades,
                                   args.batch)
        pg = _pg_schema_url(args.pg) if args.pg else None
        if pg is None:
            out["postgresql"] = {"skipped": f"PostgreSQL unreachable at {args.pg!r}"}
        else:
            try:
                out["postgresql"] = time_apply(pg[1], data, trades, args.batch)
            finally:
                _drop_schema(args.pg, pg[0])
        for rate in rates:
            lag_url = f"sqlite:///{tmp / f'lag{rate}.sqlite'}"
            out[f"lag_sqlite_{rate}"] = measure_lag(lag_url, rate, args.lag_seconds)
            pg2 = _pg_schema_url(args.pg) if pg is not None else None
            if pg2 is not None:
                try:
                    out[f"lag_postgresql_{rate}"] = measure_lag(pg2[1], rate,
                                                                args.lag_seconds)
                finally:
                    _drop_schema(args.pg, pg2[0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
