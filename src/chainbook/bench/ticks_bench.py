"""Benchmark of the hot tick stream: trade-to-datagram latency on loopback.

``python -m chainbook.bench ticks [--trades N] [--seed S] [--interval-us U]`` runs the
real engine on a seeded stream of crossing orders (a maker rests, a taker takes it) and
hands each ``Applied`` to a ``TickSender`` as the core thread would. A receiver in a
child process joined to the multicast group on loopback stamps each datagram on arrival
with CLOCK_MONOTONIC (shared by both processes). It prints one JSON line:

* ``apply_to_rx_us``: from the moment the command is applied (just before
  ``Engine.apply``) to the TRADE datagram's receipt: p50, p99, max;
* ``commit_to_rx_us``: from the ``on_commit`` call to the receipt (the tick path alone);
* ``datagrams``, ``received``, ``lost`` and the ``transport`` used.

Commands are paced ``--interval-us`` apart so the figures show latency, not queueing.
Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import socket
import struct
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from chainbook.domain.commands import AddSymbol, Command, Deposit, PlaceOrder
from chainbook.domain.enums import OrderType, Side, TimeInForce
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine.engine import Engine
from chainbook.marketdata import ticks
from chainbook.marketdata.multicast import GROUP, TickSender
from chainbook.service.applied import Applied

SPEC = SymbolSpec("BENCH-USD", "BENCH", "USD", lot_units=1, quote_per_tick_lot=1)


def _join(group: str) -> tuple[socket.socket, str]:
    """A receiving socket on ``group`` (or 127.0.0.1 if loopback refuses multicast)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    try:
        sock.bind((group, 0))
        mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("127.0.0.1"))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        return sock, group
    except OSError:
        sock.close()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        return sock, "127.0.0.1"


def _receiver(group: str, conn: Connection) -> None:
    """Child process: report the port, then stamp datagrams until told how many."""
    sock, dest = _join(group)
    conn.send((dest, sock.getsockname()[1]))
    sock.settimeout(0.05)
    stamps: dict[int, int] = {}
    expected: int | None = None
    idle = 0
    while expected is None or len(stamps) < expected:
        try:
            data = sock.recv(2048)
        except TimeoutError:
            if conn.poll():
                expected = conn.recv()
            idle += expected is not None
            if idle > 40:  # 2 s with nothing more arriving
                break
            continue
        stamps.setdefault(ticks.seq_of(data), time.monotonic_ns())
    conn.send(stamps)


def _commands(n: int, seed: int) -> list[Command]:
    """``n`` pairs (maker rests, taker takes it whole) at random prices and sizes."""
    rng = random.Random(seed)
    out: list[Command] = []
    for _ in range(n):
        side = rng.choice([Side.BUY, Side.SELL])
        other = Side.SELL if side == Side.BUY else Side.BUY
        price = rng.randint(9_000, 11_000)
        qty = rng.randint(1, 100)
        out.append(PlaceOrder(2, SPEC.name, other, OrderType.LIMIT, qty, price))
        out.append(PlaceOrder(1, SPEC.name, side, OrderType.LIMIT, qty, price, TimeInForce.IOC))
    return out


def _pct(values: list[int]) -> dict[str, float]:
    """p50, p99 and max in microseconds (nearest rank)."""
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    v = sorted(values)

    def at(q: float) -> float:
        return round(v[min(len(v) - 1, int(q * len(v)))] / 1000, 1)

    return {"p50": at(0.50), "p99": at(0.99), "max": round(v[-1] / 1000, 1)}


def run(trades: int, seed: int, interval_us: int) -> dict[str, Any]:
    """Run the benchmark; return its figures."""
    ctx = multiprocessing.get_context("fork")  # before any thread exists in this process
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_receiver, args=(GROUP, child), daemon=True)
    proc.start()
    dest, port = parent.recv()
    sender = TickSender(dest, port)
    engine = Engine()
    seq = 0
    setup: list[Command] = [AddSymbol(SPEC)] + [
        Deposit(a, asset, 10**15, f"{asset}-{a}") for a in (1, 2) for asset in ("USD", "BENCH")]
    for cmd in setup:
        seq += 1
        engine.apply(cmd, seq, time.time_ns())
    sent: dict[int, tuple[int, int]] = {}  # trade datagram seq -> (applied at, committed at)
    pause = interval_us / 1e6
    try:
        for cmd in _commands(trades, seed):
            seq += 1
            t_apply = time.monotonic_ns()
            ap = Applied(seq, time.time_ns(), cmd, engine.apply(cmd, seq, time.time_ns()))
            first = sender.seq + 1
            t_commit = time.monotonic_ns()
            sender.on_commit([ap])
            for s in range(first, sender.seq + 1):
                if sender.ring[s % len(sender.ring)][3] == ticks.TRADE:  # type: ignore[index]
                    sent[s] = (t_apply, t_commit)
            if pause:
                time.sleep(pause)
        parent.send(sender.seq)
        stamps: dict[int, int] = parent.recv()
        datagrams = sender.seq
    finally:
        sender.close()
        proc.join(timeout=10)
    apply_rx = [stamps[s] - a for s, (a, _) in sent.items() if s in stamps]
    commit_rx = [stamps[s] - c for s, (_, c) in sent.items() if s in stamps]
    return {
        "bench": "ticks", "trades": len(sent), "seed": seed, "interval_us": interval_us,
        "transport": "multicast" if dest == GROUP else "unicast", "datagrams": datagrams,
        "received": len(stamps), "lost": datagrams - len(stamps),
        "apply_to_rx_us": _pct(apply_rx), "commit_to_rx_us": _pct(commit_rx),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, run, print one JSON line."""
    p = argparse.ArgumentParser(prog="python -m chainbook.bench ticks",
                                description="trade-to-datagram latency on loopback")
    p.add_argument("--trades", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--interval-us", type=int, default=100,
                   help="pause between commands (default 100)")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    print(json.dumps(run(args.trades, args.seed, args.interval_us)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
