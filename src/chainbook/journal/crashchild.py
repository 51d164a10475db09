"""Crash-test child: trade a seeded command stream through a DurableEngine until killed.

``python -m chainbook.journal.crashchild DIR SEED [options]`` recovers ``DIR``, resumes
the stream at the recovered seq, and submits it in group-committed batches, printing
``ack N`` (flushed) after every commit and ``snap N PID`` after starting a forked
snapshot of seq N in writer process PID.
The crash test SIGKILLs it at random points and checks what recovery brings back against
an in-process replay of the same stream (``command_stream``).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator

from chainbook.domain.commands import (
    AddSymbol,
    AmendOrder,
    CancelAll,
    CancelOrder,
    Command,
    Deposit,
    PlaceOrder,
    WithdrawComplete,
    WithdrawHold,
)
from chainbook.domain.enums import OrderType, Side, TimeInForce
from chainbook.domain.instruments import SymbolSpec

SYMBOLS = (
    SymbolSpec("BTC-USDT", "BTC", "USDT", lot_units=1000, quote_per_tick_lot=10,
               maker_bps=10, taker_bps=20),
    SymbolSpec("ETH-USDT", "ETH", "USDT", lot_units=100, quote_per_tick_lot=1,
               maker_bps=0, taker_bps=5),
)
ACCOUNTS = 12
TS0 = 1_700_000_000_000_000_000
MIDS = {"BTC-USDT": 50_000, "ETH-USDT": 3_000}


def _ts(i: int) -> int:
    return TS0 + i * 1_000


def command_stream(seed: int) -> Iterator[tuple[Command, int]]:
    """Yield ``(command, ts)`` forever: symbols, deposits, then orders/cancels/amends.

    Deterministic in ``seed``; command ``i`` (0-based) is the one logged at seq ``i + 1``.
    Cancels and amends name recent orders by client id, so some hit orders that are
    already gone (and are rejected), as in real traffic."""
    rng = random.Random(seed)
    i = 0
    for spec in SYMBOLS:
        yield AddSymbol(spec), _ts(i)
        i += 1
    for a in range(1, ACCOUNTS + 1):
        for asset, amount in (("USDT", 10**13), ("BTC", 10**9), ("ETH", 10**9)):
            yield Deposit(a, asset, amount, f"dep-{a}-{asset}"), _ts(i)
            i += 1
    recent: list[tuple[int, str, str]] = []  # (account, symbol, client id)
    n_orders = 0
    while True:
        x = rng.random()
        sym = SYMBOLS[0].name if rng.random() < 0.6 else SYMBOLS[1].name
        mid = MIDS[sym] + rng.randint(-20, 20)
        acct = rng.randint(1, ACCOUNTS)
        cmd: Command
        if x < 0.45 or not recent:
            side = Side(rng.randint(0, 1))
            off = rng.randint(1, 60)
            price = mid - off if side == Side.BUY else mid + off
            n_orders += 1
            cid = f"o{n_orders}"
            cmd = PlaceOrder(acct, sym, side, OrderType.LIMIT, qty=rng.randint(1, 50),
                             price=price, client_id=cid)
            recent.append((acct, sym, cid))
            if len(recent) > 400:
                recent.pop(0)
        elif x < 0.55:
            side = Side(rng.randint(0, 1))
            price = mid + 80 if side == Side.BUY else mid - 80
            cmd = PlaceOrder(acct, sym, side, OrderType.LIMIT, qty=rng.randint(1, 80),
                             price=price, tif=TimeInForce.IOC)
        elif x < 0.58:
            cmd = PlaceOrder(acct, sym, Side(rng.randint(0, 1)), OrderType.MARKET,
                             qty=rng.randint(1, 30))
        elif x < 0.72:
            a, s, cid = recent[rng.randrange(len(recent))]
            cmd = CancelOrder(a, s, client_id=cid)
        elif x < 0.98:
            a, s, cid = recent[rng.randrange(len(recent))]
            if rng.random() < 0.5:
                cmd = AmendOrder(a, s, client_id=cid, new_qty=rng.randint(1, 40))
            else:
                cmd = AmendOrder(a, s, client_id=cid, new_price=MIDS[s] + rng.randint(-60, 60))
        elif x < 0.99:
            cmd = CancelAll(acct, sym)
        else:
            ext = f"wd-{i}"
            yield WithdrawHold(acct, "USDT", rng.randint(1, 10**6), ext), _ts(i)
            i += 1
            cmd = WithdrawComplete(ext)
        yield cmd, _ts(i)
        i += 1


def main(argv: list[str] | None = None) -> int:
    """Run the child; see the module docstring."""
    from chainbook.journal.recovery import DurableEngine

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("dir")
    p.add_argument("seed", type=int)
    p.add_argument("--fsync", default="every", choices=["every", "interval", "off"])
    p.add_argument("--background", action="store_true", help="fsync on a helper thread")
    p.add_argument("--max-batch", type=int, default=200)
    p.add_argument("--snapshot-every", type=int, default=25, help="commits per snapshot")
    p.add_argument("--segment-bytes", type=int, default=256 << 10)
    p.add_argument("--max-commands", type=int, default=200_000)
    args = p.parse_args(argv)
    out = sys.stdout
    de = DurableEngine(args.dir, fsync=args.fsync, fsync_interval_ms=2.0,
                       background_sync=args.background, segment_bytes=args.segment_bytes)
    start = de.last_seq
    out.write(f"start {start}\n")
    out.flush()
    stream = command_stream(args.seed)
    for _ in range(start):
        next(stream)
    batch_rng = random.Random(args.seed * 7919 + start)
    seq = start
    commits = 0
    while seq < args.max_commands:
        for _ in range(min(batch_rng.randint(1, args.max_batch), args.max_commands - seq)):
            cmd, ts = next(stream)
            seq = de.submit(cmd, ts)[0]
        durable = de.commit()
        out.write(f"ack {durable}\n")
        out.flush()
        commits += 1
        if args.snapshot_every and commits % args.snapshot_every == 0:
            job = de.snapshot()
            if job is not None:
                out.write(f"snap {job.seq} {job.pid}\n")
                out.flush()
    de.close()
    out.write(f"ack {seq}\ndone {seq}\n")
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
