"""Signed REST order entry against a live ``chainbook serve``: throughput and ack latency.

``python -m chainbook.bench rest [--clients N] [--rate R] [--seconds T] [--fsync every]``
starts its own server (subprocess, free loopback port, ``--demo``, a config with the
given fsync policy and rate limits out of the way), then N keep-alive HTTP connections
(aiohttp) each alternate ``POST /api/v3/order`` (a GTC limit that does not cross) and
``DELETE /api/v3/order`` (by ``origClientOrderId``) on a shared open-loop schedule of R
requests/s for T seconds. Every request is built and HMAC-signed before the clock starts
(fixed seed; ``recvWindow`` 60000 so the signatures stay valid). One JSON line: requests
and new orders per second achieved, ack latency p50/p99/p999 (send to full reply), per
kind, the errors by code, how many sends left later than scheduled, the CPU seconds
the client and the server used during the run (2 cores shared: is either one saturated?)
and the server's garbage-collector pauses during the run (``server_gc``: collections of
10 ms and more, from ``CHAINBOOK_GC_STATS``; a collection stalls every thread).

Figures only: nothing here asserts a time. ``--rate`` counts order requests (new +
cancel); ``new_orders_per_s`` is half of it with ``--mix pairs`` and all of it with
``--mix ioc`` (new IOC orders only).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import re
import resource
import select
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainbook.bench.host import host_share, host_times, python_loop_ms
from chainbook.service.config import DEFAULT_TOML
from chainbook.service.gcstats import GC_STATS_ENV
from chainbook.service.spawn import spawn_serve, stop_process

START_TIMEOUT_S = 60.0
RECV_WINDOW = 60_000
MAX_SECONDS = 50  # signatures are made up front and must stay inside recvWindow
NO_LIMITS = {"request_weight_per_minute": 1_000_000_000, "orders_per_10s": 1_000_000_000,
             "orders_per_day": 1_000_000_000, "ws_connections_per_5m": 1_000_000_000}


@dataclass
class LiveServer:
    """A ``chainbook serve --demo`` subprocess started by a benchmark."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    accounts: list[dict[str, str]]
    log: Path
    tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{self.host}:{self.port}"


def bench_config(fsync: str, http: str = "fast") -> str:
    """The built-in config with ``fsync``, ``http`` and rate limits no benchmark reaches."""
    text, n = re.subn(r'(?m)^fsync = "\w+"', f'fsync = "{fsync}"', DEFAULT_TOML)
    if n != 1:
        raise ValueError("server.fsync is missing from the default config")
    text, n = re.subn(r'(?m)^http = "\w+"', f'http = "{http}"', text)
    if n != 1:
        raise ValueError("server.http is missing from the default config")
    for key, value in NO_LIMITS.items():
        text, n = re.subn(rf"(?m)^{key} = \d+", f"{key} = {value}", text)
        if n != 1:
            raise ValueError(f"rate_limits.{key} is missing from the default config")
    return text


def start_server(fsync: str = "every", data: str | None = None,
                 profile: str | None = None, env: dict[str, str] | None = None,
                 http: str = "fast") -> LiveServer:
    """Start ``chainbook serve --demo`` on a free port; return once it listens.

    With ``profile``, the server runs under cProfile and writes its stats there on exit;
    ``env`` adds variables to the server's environment."""
    tmp = None
    if data is None:
        tmp = tempfile.TemporaryDirectory(prefix="chainbook-bench-")
        data = tmp.name
    root = Path(data)
    root.mkdir(parents=True, exist_ok=True)
    config = root / "bench.toml"
    config.write_text(bench_config(fsync, http))
    log = root / "serve.log"
    proc, meta = spawn_serve(
        ["--demo", "--config", str(config), "--host", "127.0.0.1", "--port", "0"],
        root / "data", log, env=env, timeout=START_TIMEOUT_S,
        python_args=["-m", "cProfile", "-o", profile] if profile else ())
    accounts = json.loads((root / "data" / "demo-accounts.json").read_text())
    return LiveServer(proc, meta["host"], int(meta["port"]), accounts, log, tmp)


def stop_server(srv: LiveServer) -> int:
    """SIGTERM the server, SIGKILL after 15 s; remove its temp dir; return its status."""
    status = stop_process(srv.proc, 15)
    if srv.tmp is not None:
        srv.tmp.cleanup()
    return status


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds used so far by process ``pid`` (default: this one)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def signed(secret: str, params: dict[str, Any]) -> str:
    """``params`` url-encoded with their HMAC-SHA256 ``signature`` appended."""
    text = urllib.parse.urlencode(params)
    sig = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    return f"{text}&signature={sig}"


Request = tuple[str, str, str, str]  # kind, method, path + query, form body


def build_requests(accounts: list[dict[str, str]], clients: int, per_client: int,
                   seed: int, ts_ms: int, mix: str = "pairs") -> list[list[Request]]:
    """Per client, signed: place/cancel pairs (``pairs``), or only new IOC limit orders
    that do not cross and expire at once (``ioc``: every request is a new order, and
    none rests, so the per-account open-order limit is never reached). Bids
    29000-29900, asks 30100-31000."""
    rng = random.Random(seed)
    plans: list[list[Request]] = []
    for c in range(clients):
        acct = accounts[c % len(accounts)]
        side = "BUY" if c % 2 == 0 else "SELL"
        plan: list[Request] = []
        for n in range(per_client // 2):
            cid = f"bench-{c}-{n}"
            ticks = rng.randrange(0, 90_000)
            price = 2_900_000 + ticks if side == "BUY" else 3_010_000 + ticks
            tif = "IOC" if mix == "ioc" else "GTC"
            place = {"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": tif,
                     "quantity": f"0.{rng.randrange(20, 100):05d}",
                     "price": f"{price // 100}.{price % 100:02d}", "newClientOrderId": cid,
                     "newOrderRespType": "ACK", "timestamp": ts_ms, "recvWindow": RECV_WINDOW}
            cancel = {"symbol": "BTCUSDT", "origClientOrderId": cid, "timestamp": ts_ms,
                      "recvWindow": RECV_WINDOW}
            plan.append(("new", "POST", "/api/v3/order", signed(acct["api_secret"], place)))
            if mix == "ioc":
                place = {**place, "newClientOrderId": f"{cid}-ioc", "timeInForce": "IOC"}
                plan.append(("new", "POST", "/api/v3/order",
                             signed(acct["api_secret"], place)))
                continue
            plan.append(("cancel", "DELETE",
                         "/api/v3/order?" + signed(acct["api_secret"], cancel), ""))
        plans.append(plan)
    return plans


def percentiles(values_ns: list[int]) -> dict[str, float]:
    """p50/p99/p999/max of nanosecond samples, in milliseconds."""
    if not values_ns:
        return {}
    s = sorted(values_ns)

    def at(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))] / 1e6, 3)

    return {"p50": at(0.5), "p99": at(0.99), "p999": at(0.999), "max": round(s[-1] / 1e6, 3),
            "n": len(s)}


async def _run(srv: LiveServer, plans: list[list[Request]], rate: float) -> dict[str, Any]:
    import aiohttp  # a ccxt dependency; imported here so the module loads without it

    key_of = [srv.accounts[c % len(srv.accounts)]["api_key"] for c in range(len(plans))]
    lat: dict[str, list[int]] = {"new": [], "cancel": []}
    errors: Counter[str] = Counter()
    late = 0
    n = len(plans)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    conn = aiohttp.TCPConnector(limit=n, force_close=False)
    async with aiohttp.ClientSession(srv.base, connector=conn) as session:
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.2

        async def client(c: int) -> None:
            nonlocal late
            headers = {"X-MBX-APIKEY": key_of[c], **form}
            for j, (kind, method, path, body) in enumerate(plans[c]):
                due = t0 + (j * n + c) / rate
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                elif wait < -0.001:
                    late += 1
                start = time.perf_counter_ns()
                async with session.request(method, path, data=body or None,
                                           headers=headers) as resp:
                    payload = await resp.read()
                lat[kind].append(time.perf_counter_ns() - start)
                if resp.status != 200:
                    errors[str(json.loads(payload).get("code", resp.status))] += 1

        began = time.perf_counter()
        wall0 = time.time()
        cpu0, server_cpu0, host0 = cpu_seconds(), cpu_seconds(srv.proc.pid), host_times()
        await asyncio.gather(*(client(c) for c in range(n)))
        elapsed = time.perf_counter() - began - 0.2
        window = (wall0, time.time())
        cpu = {"client_cpu_s": round(cpu_seconds() - cpu0, 2),
               "server_cpu_s": round(cpu_seconds(srv.proc.pid) - server_cpu0, 2),
               **host_share(host0)}
    done = len(lat["new"]) + len(lat["cancel"])
    return {"requests": done, "elapsed_s": round(elapsed, 3),
            "achieved_per_s": round(done / elapsed, 1),
            "new_orders_per_s": round(len(lat["new"]) / elapsed, 1),
            "latency_ms": percentiles(lat["new"] + lat["cancel"]),
            "new_latency_ms": percentiles(lat["new"]),
            "cancel_latency_ms": percentiles(lat["cancel"]),
            "errors": dict(errors), "late_sends": late, "window": window, **cpu}


class _Conn:
    """One raw keep-alive connection of the ``raw`` client and its request in flight."""

    __slots__ = ("sock", "plan", "next", "due", "kind", "sent", "buf", "need", "status")

    def __init__(self, sock: socket.socket, plan: list[tuple[str, bytes]]) -> None:
        self.sock = sock
        self.plan = plan
        self.next = 0  # index of the next request to send
        self.due = 0  # its scheduled time (perf_counter_ns)
        self.kind = ""  # of the request in flight ("" when idle)
        self.sent = 0
        self.buf = bytearray()
        self.need = -1  # bytes of the whole reply once its headers are in
        self.status = 0


def raw_requests(srv: LiveServer, plans: list[list[Request]]) -> list[list[tuple[str, bytes]]]:
    """Each plan's requests as the exact HTTP/1.1 bytes to send (made before the clock)."""
    host = f"{srv.host}:{srv.port}".encode()
    out = []
    for c, plan in enumerate(plans):
        key = srv.accounts[c % len(srv.accounts)]["api_key"].encode()
        reqs = []
        for kind, method, path, body in plan:
            data = body.encode()
            head = (method.encode() + b" " + path.encode() + b" HTTP/1.1\r\nHost: " + host
                    + b"\r\nX-MBX-APIKEY: " + key + b"\r\n")
            if data:
                head += (b"Content-Type: application/x-www-form-urlencoded\r\n"
                         b"Content-Length: " + str(len(data)).encode() + b"\r\n")
            reqs.append((kind, head + b"\r\n" + data))
        out.append(reqs)
    return out


def _run_raw(srv: LiveServer, plans: list[list[Request]], rate: float) -> dict[str, Any]:
    """The same schedule as ``_run`` from plain non-blocking sockets and one epoll loop.

    A request costs the client a ``send``, a ``recv`` and a header scan (~20-40 us of
    CPU instead of aiohttp's ~130 us), so on a shared 2-core machine the figures show
    the server rather than the client. ``latency_ms`` is send to the last byte of the
    reply; ``from_due_ms`` is from the scheduled send time, so a client or server that
    falls behind the schedule shows there (no coordinated omission)."""
    raw = raw_requests(srv, plans)
    n = len(raw)
    conns: list[_Conn] = []
    for plan in raw:
        sock = socket.create_connection((srv.host, srv.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conns.append(_Conn(sock, plan))
    by_fd = {c.sock.fileno(): c for c in conns}
    ep = select.epoll()
    for fd in by_fd:
        ep.register(fd, select.EPOLLIN)
    lat: dict[str, list[int]] = {"new": [], "cancel": []}
    from_due: list[int] = []
    errors: Counter[str] = Counter()
    late = 0
    step = int(1e9 / rate)
    t0 = time.perf_counter_ns() + 200_000_000
    for c, conn in enumerate(conns):
        conn.due = t0 + c * step
    idle = sorted(conns, key=lambda k: k.due)  # connections waiting for their due time
    left = sum(len(p) for p in raw)
    clock = time.perf_counter_ns
    began = time.perf_counter()
    wall0 = time.time()
    cpu0, server_cpu0, host0 = cpu_seconds(), cpu_seconds(srv.proc.pid), host_times()
    try:
        while left:
            now = clock()
            while idle and idle[0].due <= now:
                conn = idle.pop(0)
                if now - conn.due > 1_000_000:
                    late += 1
                conn.kind, data = conn.plan[conn.next]
                conn.sent = now
                conn.sock.sendall(data)  # small: fits the socket buffer at once
                now = clock()
            timeout = max(0.0, (idle[0].due - now) / 1e9) if idle else 1.0
            for fd, _ev in ep.poll(timeout):
                conn = by_fd[fd]
                chunk = conn.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the server closed a connection")
                buf = conn.buf
                buf += chunk
                if conn.need < 0:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    head = bytes(buf[:end]).lower()
                    at = head.find(b"content-length:")
                    if at < 0:
                        raise ValueError("a reply without Content-Length")
                    line_end = head.find(b"\r\n", at)
                    length = int(head[at + 15:line_end if line_end > 0 else None])
                    conn.need = end + 4 + length
                    conn.status = int(head[9:12])
                if len(buf) < conn.need:
                    continue
                t = clock()
                lat[conn.kind].append(t - conn.sent)
                from_due.append(t - conn.due)
                if conn.status != 200:
                    body = bytes(buf[:conn.need]).partition(b"\r\n\r\n")[2]
                    errors[str(json.loads(body).get("code", conn.status))] += 1
                del buf[:conn.need]
                conn.need = -1
                left -= 1
                conn.next += 1
                if conn.next < len(conn.plan):
                    conn.due += n * step
                    conn.kind = ""
                    # keep ``idle`` sorted by due time (insertion: n is small)
                    i = len(idle)
                    while i and idle[i - 1].due > conn.due:
                        i -= 1
                    idle.insert(i, conn)
        elapsed = time.perf_counter() - began - 0.2
        cpu = {"client_cpu_s": round(cpu_seconds() - cpu0, 2),
               "server_cpu_s": round(cpu_seconds(srv.proc.pid) - server_cpu0, 2),
               **host_share(host0)}
    finally:
        ep.close()
        for conn in conns:
            conn.sock.close()
    done = len(lat["new"]) + len(lat["cancel"])
    return {"client": "raw", "requests": done, "elapsed_s": round(elapsed, 3),
            "achieved_per_s": round(done / elapsed, 1),
            "new_orders_per_s": round(len(lat["new"]) / elapsed, 1),
            "latency_ms": percentiles(lat["new"] + lat["cancel"]),
            "from_due_ms": percentiles(from_due),
            "new_latency_ms": percentiles(lat["new"]),
            "cancel_latency_ms": percentiles(lat["cancel"]),
            "errors": dict(errors), "late_sends": late, "window": (wall0, time.time()), **cpu}


def gc_during(path: Path, window: tuple[float, float]) -> dict[str, Any]:
    """The server's long collections (``gcstats``) that ended inside ``window``."""
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    long = [p for p in stats.get("long", []) if window[0] <= p["at"] <= window[1]]
    return {"long_pauses_ms": [p["ms"] for p in long],
            "full_collections_long": sum(1 for p in long if p["gen"] == 2),
            "frozen_objects": stats.get("frozen", 0)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print one JSON line."""
    ap = argparse.ArgumentParser(prog="python -m chainbook.bench rest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16, help="concurrent connections")
    ap.add_argument("--rate", type=float, default=5000.0, help="order requests/s (target)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fsync", default="every", choices=("every", "interval", "off"))
    ap.add_argument("--data", help="server data dir (default: a temp dir, removed)")
    ap.add_argument("--server-profile", metavar="FILE",
                    help="run the server under cProfile, stats to FILE")
    ap.add_argument("--http", default="fast", choices=("fast", "uvicorn"),
                    help="the server's [server] http setting (uvicorn: the ASGI path)")
    ap.add_argument("--mix", default="pairs", choices=("pairs", "ioc"),
                    help="pairs: a new GTC order then its cancel; ioc: only new IOC orders "
                         "that expire (every request a new order)")
    ap.add_argument("--client", default="raw", choices=("raw", "aiohttp"),
                    help="raw: plain sockets and one epoll loop (default); aiohttp: the "
                         "client library ccxt uses (~130 us of client CPU per request)")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if not 0 < args.seconds <= MAX_SECONDS:
        ap.error(f"--seconds must be in (0, {MAX_SECONDS}]")
    per_client = max(2, int(args.rate * args.seconds / args.clients) // 2 * 2)
    loop_ms = python_loop_ms()  # before the server starts: the machine's own speed
    with tempfile.TemporaryDirectory(prefix="chainbook-gc-") as gc_dir:
        gc_file = Path(gc_dir) / "gc.json"
        srv = start_server(args.fsync, args.data, args.server_profile,
                           env={GC_STATS_ENV: str(gc_file)}, http=args.http)
        try:
            plans = build_requests(srv.accounts, args.clients, per_client, args.seed,
                                   int(time.time() * 1000), args.mix)
            if args.client == "raw":
                result = _run_raw(srv, plans, args.rate)
            else:
                result = {"client": "aiohttp", **asyncio.run(_run(srv, plans, args.rate))}
        finally:
            status = stop_server(srv)
        result["server_gc"] = gc_during(gc_file, result.pop("window"))
    print(json.dumps({"bench": "rest", "http": args.http, "mix": args.mix,
                      "clients": args.clients,
                      "target_per_s": args.rate,
                      "seconds": args.seconds, "fsync": args.fsync, "seed": args.seed,
                      "cpus": os.cpu_count(), "host_python_loop_ms": loop_ms, **result,
                      "server_exit": status}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
