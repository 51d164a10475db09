"""Market-data fan-out: trade to N WebSocket subscribers of ``btcusdt@trade``.

``python -m chainbook.bench fanout [--subscribers 1000] [--procs 2] [--trades 200]``
starts its own ``chainbook serve --demo`` (see ``rest_bench.start_server``), connects the
subscribers on ``/ws/btcusdt@trade`` (spread over ``--procs`` processes, no
compression; ``--client raw``, the default: plain sockets read by one epoll loop per
process, a receipt costs a ``recv_into``, a clock read and an append, frames are parsed
after the run and the subscribers' GC is off; ``--client websockets``: the
``websockets`` library on asyncio, ~50 µs of client CPU a message, which on a small
machine delays the stamps more than the server does) and then a producer makes
``--trades`` trades at ``--rate`` per second: demo2 rests an ask, demo1 crosses it with
a FULL-response limit buy whose fill carries the trade id. Each subscriber stamps every
message with the wall clock as it is delivered (``time.time_ns``; all processes share
the host clock).

Latencies per (trade, subscriber), in ms, p50/p99/max:

* ``from_send``: receipt - the moment the producer sent the crossing order (an upper
  bound: it includes the order's parsing, the core and its fsync);
* ``from_ack``: receipt - the moment the producer had the order's reply. The trade is
  published just before the reply is written (docs/serve.md), so this approximates
  trade-to-receipt and can be slightly negative;
* ``from_event_time``: receipt - the payload's ``E`` (server event time, ms resolution);
* ``spread``: receipt - the first subscriber's receipt of the same trade;
* ``kernel_from_event_time``, ``kernel_from_send``, ``kernel_spread`` (raw client): the
  same from the moment the frame arrived in the subscriber's socket, as the kernel
  stamped it (``SO_TIMESTAMPNS``), not when the subscriber process got round to reading
  it: on a machine whose cores the subscribers share with the server, that read waits
  for a core, which a subscriber on its own machine would not;
* ``first_from_event_time`` (per trade): the first subscriber's receipt - ``E``.  It is
  ~4 ms at 1,000 subscribers because uvloop queues small transport writes until the end
  of the event-loop iteration, i.e. after the whole publish loop (~3 ms of Python).
  Writing each frame at once (``os.write`` when the transport buffer is empty) was
  measured in session 4: the first receipt fell to 0.6 ms but the fan-out then took
  12-15 ms of wall time (each loopback write wakes a subscriber on a 2-core machine)
  and p99 rose to 33-75 ms, so the transport's batching stays.

``missing`` counts (trade, subscriber) pairs never delivered; the CPU seconds of the
server (during the trades) and of the subscriber processes (whole life, connecting
included) show who is saturated on a small machine.

Server side (the hub's counters, written by ``serve`` on exit, see
``CHAINBOOK_HUB_STATS``): ``server_publish_us`` is the time inside ``Hub.publish`` per
trade (mean, max): encoding, framing and, for every subscriber whose direct writer was
ready, the write to its socket, so it is the trade's server-side fan-out completion for
the ``frames_direct`` share of the frames; the rest were queued for the connection's
writer task. Figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import gc
import json
import multiprocessing as mp
import os
import select
import socket
import struct
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import httpx

from chainbook.bench.host import host_share, host_times, python_loop_ms
from chainbook.bench.rest_bench import (
    LiveServer,
    cpu_seconds,
    signed,
    start_server,
    stop_server,
)
from chainbook.service.cli_commands import HUB_STATS_ENV

STREAM = "btcusdt@trade"
SO_TIMESTAMPNS = 35  # Linux: the kernel stamps each received packet (SCM_TIMESTAMPNS)
Stamp = tuple[int, int]  # (receipt by the subscriber, arrival in its socket: 0 if unknown)
CONNECT_BATCH = 50  # concurrent handshakes per subscriber process


def _subscriber_proc(url: str, count: int, conn: Connection, client: str) -> None:
    """Child process: hold ``count`` subscriptions, report receipts when told to stop."""
    if client == "raw":
        _raw_subscribe(url, count, conn)
    else:
        asyncio.run(_subscribe(url, count, conn))


def _handshake(host: str, port: int, path: str) -> tuple[socket.socket, bytearray]:
    """A blocking WebSocket upgrade; return the socket and the bytes after the headers."""
    sock = socket.create_connection((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed the connection during the handshake")
        reply += chunk
    head, _, rest = reply.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"upgrade refused: {head.splitlines()[0]!r}")
    sock.setblocking(False)
    return sock, bytearray(rest)


def _frames(buf: bytearray, ns: Stamp, out: list[tuple[Stamp, bytes]],
            sock: socket.socket) -> None:
    """Take the complete server frames off ``buf``: text payloads to ``out`` stamped
    ``ns``, pings answered (masked pong, zero key)."""
    while len(buf) >= 2:
        n, at = buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return
            n, at = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                return
            n, at = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < at + n:
            return
        opcode, payload = buf[0] & 0x0F, bytes(buf[at:at + n])
        del buf[:at + n]
        if opcode == 1:
            out.append((ns, payload))
        elif opcode == 9 and n < 126:
            sock.sendall(bytes((0x8A, 0x80 | n)) + b"\0\0\0\0" + payload)


def _raw_subscribe(url: str, count: int, conn: Connection) -> None:
    """Subscribers on plain non-blocking sockets and one epoll loop.  A receipt costs a
    ``recv_into`` a reused buffer, a clock read and an append; frames are parsed after
    the run (pings, which need an answer, are rare and handled at once), so the
    clients' own CPU hardly delays the stamps."""
    gc.disable()  # ~100k stamped chunks pile up: no collections in the middle of a fan-out
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    socks: dict[int, socket.socket] = {}
    # (fd, receipt ns, kernel arrival ns, bytes), in arrival order
    chunks: list[tuple[int, int, bytes, bytes]] = []
    for _ in range(count):
        sock, rest = _handshake(host, port, parts.path)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        socks[sock.fileno()] = sock
        if rest:
            chunks.append((sock.fileno(), time.time_ns(), b"", bytes(rest)))
    ep = select.epoll()
    for fd in socks:
        ep.register(fd, select.EPOLLIN)
    stop_fd = conn.fileno()
    ep.register(stop_fd, select.EPOLLIN)
    buf = bytearray(1 << 16)
    view = memoryview(buf)
    bufs, anc_size = [buf], socket.CMSG_SPACE(16)
    now, add = time.time_ns, chunks.append
    conn.send(("ready", count))
    running = True
    while running:
        for fd, _ in ep.poll():
            if fd == stop_fd:
                running = False
                continue
            sock = socks[fd]
            try:
                n, anc, _flags, _addr = sock.recvmsg_into(bufs, anc_size)
            except BlockingIOError:
                continue
            if not n:
                ep.unregister(fd)
                continue
            ns = now()
            if buf[0] & 0x0F == 9 and n == 2 + (buf[1] & 0x7F) < 128:  # a lone ping
                sock.sendall(bytes((0x8A, 0x80 | (n - 2))) + b"\0\0\0\0" + view[2:n])
                continue
            add((fd, ns, anc[0][2] if anc else b"", bytes(view[:n])))
    conn.recv()
    ep.close()
    received: dict[int, list[tuple[Stamp, bytes]]] = {fd: [] for fd in socks}
    pending = {fd: bytearray() for fd in socks}
    for fd, ns, kernel, data in chunks:
        pending[fd] += data
        sec, nsec = struct.unpack("qq", kernel[:16]) if kernel else (0, 0)
        _frames(pending[fd], (ns, sec * 1_000_000_000 + nsec), received[fd], socks[fd])
    for sock in socks.values():
        sock.close()
    conn.send((_stamps(list(received.values())), cpu_seconds()))
    conn.close()


def _stamps(received: list[list[tuple[Stamp, Any]]]) -> dict[int, list[tuple[int, int, int]]]:
    """trade id -> [(receipt ns, kernel arrival ns or 0, event time ms)] over every
    subscriber."""
    stamps: dict[int, list[tuple[int, int, int]]] = {}
    for rows in received:
        for (ns, kernel), msg in rows:
            event = json.loads(msg)
            stamps.setdefault(int(event["t"]), []).append((ns, kernel, int(event["E"])))
    return stamps


async def _subscribe(url: str, count: int, conn: Connection) -> None:
    import websockets  # a pinned dependency; imported in the child only

    received: list[list[tuple[Stamp, str]]] = [[] for _ in range(count)]
    sockets: list[Any] = []
    for start in range(0, count, CONNECT_BATCH):
        batch = range(start, min(count, start + CONNECT_BATCH))
        sockets += await asyncio.gather(*(websockets.connect(
            url, compression=None, max_queue=None, ping_interval=None) for _ in batch))

    async def read(i: int, ws: Any) -> None:
        out = received[i]
        try:
            async for msg in ws:
                out.append(((time.time_ns(), 0), msg))
        except websockets.ConnectionClosed:
            pass

    readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets)]
    conn.send(("ready", len(sockets)))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # "stop"
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    await asyncio.gather(*readers, return_exceptions=True)
    conn.send((_stamps(received), cpu_seconds()))
    conn.close()


def _produce(srv: LiveServer, trades: int, rate: float) -> dict[int, tuple[int, int]]:
    """Make ``trades`` trades; return trade id -> (sent ns, acked ns)."""
    buyer, seller = srv.accounts[0], srv.accounts[1]
    times: dict[int, tuple[int, int]] = {}
    with httpx.Client(base_url=srv.base, timeout=10) as http:

        def order(acct: dict[str, str], side: str) -> httpx.Response:
            params = {"symbol": "BTCUSDT", "side": side, "type": "LIMIT",
                      "timeInForce": "GTC", "quantity": "0.00100", "price": "30000.00",
                      "newOrderRespType": "FULL", "timestamp": int(time.time() * 1000)}
            return http.post("/api/v3/order", content=signed(acct["api_secret"], params),
                             headers={"X-MBX-APIKEY": acct["api_key"],
                                      "Content-Type": "application/x-www-form-urlencoded"})

        t0 = time.monotonic()
        for k in range(trades):
            wait = t0 + k / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            order(seller, "SELL").raise_for_status()
            sent = time.time_ns()
            reply = order(buyer, "BUY")
            acked = time.time_ns()
            reply.raise_for_status()
            for fill in reply.json()["fills"]:
                times[int(fill["tradeId"])] = (sent, acked)
    return times


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)
    return {"p50": round(s[len(s) // 2], 3), "p99": round(s[min(len(s) - 1, int(.99 * len(s)))], 3),
            "max": round(s[-1], 3)}


def hub_figures(path: str) -> dict[str, Any]:
    """The server-side fan-out figures from the hub counters ``serve`` wrote on exit."""
    try:
        with open(path) as f:
            stats = json.load(f)
    except (OSError, ValueError):
        return {"server_hub": "no counters (server did not write them)"}
    pubs = stats.get("publishes", 0)
    return {"server_publish_us": {
                "mean": round(stats["publish_ns"] / pubs / 1e3, 1) if pubs else None,
                "max": round(stats["publish_ns_max"] / 1e3, 1), "publishes": pubs},
            "frames_sent": stats["frames_sent"], "frames_direct": stats["frames_direct"],
            "frames_queued": stats["frames_queued"], "slow_dropped": stats["slow_dropped"]}


def _spawn(count: int, procs: int, args: Callable[[int, Connection], tuple[Any, ...]],
           target: Callable[..., None]) -> tuple[list[Connection], list[Any]]:
    """``procs`` spawned children sharing ``count`` connections, each with a pipe."""
    ctx = mp.get_context("spawn")
    pipes, children = [], []
    for i in range(procs):
        parent, child = ctx.Pipe()
        share = count // procs + (i < count % procs)
        p = ctx.Process(target=target, args=args(share, child), daemon=True)
        p.start()
        pipes.append(parent)
        children.append(p)
    return pipes, children


def measure(srv: LiveServer, subscribers: int, procs: int, trades: int,
            rate: float, client: str = "raw") -> dict[str, Any]:
    """Connect the subscribers, make the trades, collect and summarise the receipts."""
    url = f"{srv.ws}/ws/{STREAM}"
    pipes, children = _spawn(subscribers, procs,
                             lambda share, child: (url, share, child, client),
                             _subscriber_proc)
    try:
        connected = sum(pipe.recv()[1] for pipe in pipes)
        time.sleep(0.5)
        server_cpu0, began = cpu_seconds(srv.proc.pid), time.perf_counter()
        host0 = host_times()
        times = _produce(srv, trades, rate)
        time.sleep(1.0)
        server_cpu = cpu_seconds(srv.proc.pid) - server_cpu0
        host = host_share(host0)
        elapsed = time.perf_counter() - began
        for pipe in pipes:
            pipe.send("stop")
        stamps: dict[int, list[tuple[int, int, int]]] = {}
        subscriber_cpu = 0.0
        for pipe in pipes:
            rows_by_trade, cpu = pipe.recv()
            subscriber_cpu += cpu
            for tid, rows in rows_by_trade.items():
                stamps.setdefault(tid, []).extend(rows)
    finally:
        for p in children:
            p.join(10)
            if p.is_alive():
                p.kill()
    from_send, from_ack, from_e, spread, first_e = [], [], [], [], []
    k_send, k_e, k_spread = [], [], []
    delivered = 0
    for tid, (sent, acked) in times.items():
        rows = stamps.get(tid, [])
        delivered += len(rows)
        if not rows:
            continue
        first = min(ns for ns, _, _ in rows)
        first_e.append(first / 1e6 - rows[0][2])
        k_first = min((k for _, k, _ in rows if k), default=0)
        for ns, kernel, e_ms in rows:
            from_send.append((ns - sent) / 1e6)
            from_ack.append((ns - acked) / 1e6)
            from_e.append(ns / 1e6 - e_ms)
            spread.append((ns - first) / 1e6)
            if kernel:
                k_send.append((kernel - sent) / 1e6)
                k_e.append(kernel / 1e6 - e_ms)
                k_spread.append((kernel - k_first) / 1e6)
    return {"connected": connected, "trades": len(times), "delivered": delivered,
            "missing": connected * len(times) - delivered,
            "from_send_ms": _stats(from_send), "from_ack_ms": _stats(from_ack),
            "from_event_time_ms": _stats(from_e), "spread_ms": _stats(spread),
            "first_from_event_time_ms": _stats(first_e),
            "kernel_from_send_ms": _stats(k_send),
            "kernel_from_event_time_ms": _stats(k_e), "kernel_spread_ms": _stats(k_spread),
            "elapsed_s": round(elapsed, 2), "server_cpu_s": round(server_cpu, 2),
            "subscribers_cpu_s": round(subscriber_cpu, 2), **host}


def _floor_reader(port: int, count: int, rounds: int, conn: Connection) -> None:
    """Child of ``send_floor``: ``count`` connections; kernel arrival stamps per round."""
    socks = {}
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
        socks[sock.fileno()] = sock
    ep = select.epoll()
    for fd in socks:
        ep.register(fd, select.EPOLLIN)
    conn.send("ready")
    buf, anc_size = bytearray(1 << 16), socket.CMSG_SPACE(16)
    stamps: list[tuple[int, int]] = []
    got = 0
    while got < count * rounds:
        for fd, _ in ep.poll():
            n, anc, _f, _a = socks[fd].recvmsg_into([buf], anc_size)
            sec, nsec = struct.unpack("qq", anc[0][2][:16])
            for i in range(0, n, FLOOR_FRAME):  # one stamp per message in the read
                stamps.append((buf[i], sec * 1_000_000_000 + nsec))
            got += n // FLOOR_FRAME
    conn.send(stamps)
    for sock in socks.values():
        sock.close()


FLOOR_FRAME = 200  # bytes: about one trade frame


def _floor_sender(count: int, rounds: int, conn: Connection) -> None:
    """Child of ``send_floor``: listens, takes ``count`` connections, then sends one frame
    to each of them per round when told to (``go``), and says when it is done."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(count + 16)
    conn.send(srv.getsockname()[1])
    socks = [srv.accept()[0] for _ in range(count)]
    for c in socks:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.send("ready")
    for r in range(rounds):
        conn.recv()
        msg = bytes([r % 256]) + b"x" * (FLOOR_FRAME - 1)
        for c in socks:
            c.send(msg)
        conn.send("done")
    conn.recv()  # stay connected until the readers have everything
    for c in socks:
        c.close()
    srv.close()


def _reader_args(port: int, rounds: int, count: int, child: Connection) -> tuple[Any, ...]:
    return port, count, rounds, child


def send_floor(count: int, rounds: int, procs: int, senders: int = 1) -> dict[str, Any]:
    """The peer: what this machine takes to land a frame in ``count`` loopback TCP
    sockets from bare Python ``send`` loops (no exchange, no WebSocket) in ``senders``
    processes (each sending to its share of the sockets at once, so both cores can
    send), read by ``procs`` epoll processes with kernel arrival stamps: the floor under
    the server's fan-out on the same machine, measured in the same run."""
    ctx = mp.get_context("spawn")
    feeds, sending = [], []
    for i in range(senders):
        parent, child = ctx.Pipe()
        share = count // senders + (i < count % senders)
        p = ctx.Process(target=_floor_sender, args=(share, rounds, child), daemon=True)
        p.start()
        feeds.append((parent, share))
        sending.append(p)
    pipes, children = [], []
    try:
        for feed, share in feeds:
            port = feed.recv()
            more, kids = _spawn(share, max(1, procs // senders),
                                functools.partial(_reader_args, port, rounds), _floor_reader)
            pipes += more
            children += kids
        for feed, _ in feeds:
            feed.recv()
        for pipe in pipes:
            pipe.recv()
        starts = []
        host0 = host_times()
        for _r in range(rounds):
            starts.append(time.time_ns())
            for feed, _ in feeds:
                feed.send("go")
            for feed, _ in feeds:
                feed.recv()
            time.sleep(0.05)
        arrivals = [(r, k) for pipe in pipes for r, k in pipe.recv()]
        for feed, _ in feeds:
            feed.send("bye")
    finally:
        for p in [*children, *sending]:
            p.join(10)
            if p.is_alive():
                p.kill()
    return {"subscribers": count, "rounds": rounds, "frame_bytes": FLOOR_FRAME,
            "senders": senders, **host_share(host0),
            "arrival_from_round_start_ms": _stats([(k - starts[r % len(starts)]) / 1e6
                                                   for r, k in arrivals])}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print one JSON line."""
    ap = argparse.ArgumentParser(prog="python -m chainbook.bench fanout", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=2, help="subscriber processes")
    ap.add_argument("--trades", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0, help="trades per second")
    ap.add_argument("--fsync", default="every", choices=("every", "interval", "off"))
    ap.add_argument("--data", help="server data dir (default: a temp dir, removed)")
    ap.add_argument("--client", default="raw", choices=("raw", "websockets"),
                    help="subscriber implementation: plain sockets + epoll (cheap, so the "
                         "stamps show the server) or the websockets library (asyncio)")
    ap.add_argument("--server-profile", metavar="FILE",
                    help="run the server under cProfile, stats to FILE")
    ap.add_argument("--peer", action="store_true",
                    help="then measure the bare send-loop floor (send_floor) in the same run")
    ap.add_argument("--peer-senders", type=int, default=1, metavar="N",
                    help="sender processes of the peer (2: both cores send at once)")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.subscribers < 1 or args.procs < 1 or args.trades < 1 or args.rate <= 0:
        ap.error("--subscribers, --procs, --trades and --rate must be positive")
    loop_ms = python_loop_ms()  # before the server starts: the machine's own speed
    with tempfile.TemporaryDirectory(prefix="chainbook-fanout-") as tmp:
        counters = os.path.join(tmp, "hub.json")
        srv = start_server(args.fsync, args.data, args.server_profile,
                           env={HUB_STATS_ENV: counters})
        try:
            result = measure(srv, args.subscribers, min(args.procs, args.subscribers),
                             args.trades, args.rate, args.client)
        finally:
            status = stop_server(srv)
        result.update(hub_figures(counters))
    if args.peer:
        result["peer_bare_send_loop"] = send_floor(args.subscribers, min(args.trades, 250),
                                                   min(args.procs, args.subscribers),
                                                   max(1, args.peer_senders))
    print(json.dumps({"bench": "fanout", "subscribers": args.subscribers, "procs": args.procs,
                      "client": args.client,
                      "rate_per_s": args.rate, "fsync": args.fsync, "cpus": os.cpu_count(),
                      "host_python_loop_ms": loop_ms, **result, "server_exit": status}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
