"""``[ledger] mode = "process"`` (the default): ``chainbook serve`` runs the ledger as a
supervised child process and learns its applied seq from the ledger database.

Real processes throughout: a ``serve --demo`` subprocess, its ledger child found in
``/proc``, orders over signed REST, ``kill -9`` of the child, SIGTERM and SIGKILL of the
server.  The PostgreSQL test skips when the server is unreachable unless
CHAINBOOK_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from chainbook.ledger.source import JournalTail
from chainbook.service.config import DEFAULT_TOML
from chainbook.service.spawn import spawn_serve, stop_process

CMD = [sys.executable, "-m", "chainbook"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
UNITS = 10**8  # every built-in asset has 8 decimals
LIMITS = {"request_weight_per_minute": 10_000_000, "orders_per_10s": 1_000_000,
          "orders_per_day": 100_000_000}


def config_text(mode: str | None = None, url: str | None = None) -> str:
    """The built-in config (its [ledger] mode unless ``mode``) with generous limits."""
    text = DEFAULT_TOML
    for key, value in LIMITS.items():
        text, n = re.subn(rf"(?m)^{key} = \d+", f"{key} = {value}", text)
        assert n == 1
    if mode is not None:
        text, n = re.subn(r'(?m)^mode = "\w+"', f'mode = "{mode}"', text)
        assert n == 1
    if url is not None:
        text, n = re.subn(r'(?m)^url = ""', f'url = "{url}"', text)
        assert n == 1
    return text


class Server:
    """One ``chainbook serve --demo --port 0`` process over ``tmp/data``."""

    def __init__(self, tmp: Path, config: str) -> None:
        self.data = tmp / "data"
        self.seen: set[int] = set()  # ledger children seen (killed by kill())
        cfg = tmp / "serve.toml"
        cfg.write_text(config)
        self.logfile = tmp / "serve.log"
        try:
            self.proc, meta = spawn_serve(["--demo", "--config", str(cfg), "--port", "0"],
                                          self.data, self.logfile)
        except RuntimeError as exc:
            pytest.fail(f"serve did not start: {exc}")
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{meta['port']}", timeout=10)
        self.keys = {d["name"]: d for d in
                     json.loads((self.data / "demo-accounts.json").read_text())}

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")[-6000:]

    def request(self, method: str, path: str, who: str, **params: Any) -> Any:
        key = self.keys[who]
        query = urllib.parse.urlencode({**params, "timestamp": int(time.time() * 1000),
                                        "recvWindow": 10000})
        sig = hmac.new(key["api_secret"].encode(), query.encode(),
                       hashlib.sha256).hexdigest()
        r = self.http.request(method, f"{path}?{query}&signature={sig}",
                              headers={"X-MBX-APIKEY": key["api_key"]})
        assert r.status_code == 200, r.text
        return r.json()

    def order(self, who: str, side: str, qty: str, price: str) -> int:
        reply = self.request("POST", "/api/v3/order", who, symbol="BTCUSDT", side=side,
                             type="LIMIT", timeInForce="GTC", quantity=qty, price=price)
        return int(reply["orderId"])

    def settlement(self, who: str, order_id: int) -> str:
        reply = self.request("GET", "/api/v3/order", who, symbol="BTCUSDT", orderId=order_id)
        return str(reply["settlementStatus"])

    def trade(self) -> list[tuple[str, int]]:
        """demo1 sells 0.002 BTC to demo2 at 60,000; return both (account, order id)."""
        sell = self.order("demo1", "SELL", "0.002", "60000")
        buy = self.order("demo2", "BUY", "0.002", "60000")
        return [("demo1", sell), ("demo2", buy)]

    def wait_settled(self, orders: list[tuple[str, int]], timeout: float = 20) -> list[str]:
        """Poll until every order is SETTLED; return every state seen (in order)."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [self.settlement(who, oid) for who, oid in orders]
            seen.extend(states)
            if all(s == "SETTLED" for s in states):
                return seen
            assert set(states) <= {"SETTLING", "SETTLED"}, states
            time.sleep(0.05)
        pytest.fail(f"not SETTLED within {timeout} s: {seen[-2:]}\n{self.log()}")

    def core_balances(self, who: str) -> dict[str, tuple[int, int]]:
        reply = self.request("GET", "/api/v3/account", who)
        return {b["asset"]: (int(Decimal(b["free"]) * UNITS), int(Decimal(b["locked"]) * UNITS))
                for b in reply["balances"]}

    def ledger_children(self) -> list[int]:
        found = ledger_children(self.proc.pid)
        self.seen.update(found)
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.ledger_children()  # remembered, so that kill() can end them
        code = stop_process(self.proc, timeout, sig)
        if hasattr(self, "http"):
            self.http.close()
        return code

    def kill(self) -> None:
        if hasattr(self, "http"):
            self.http.close()
        if self.proc.poll() is None:
            self.ledger_children()
            self.proc.kill()
            self.proc.wait()
        for pid in self.seen:  # a test that failed must not leave a ledger behind
            if alive(pid) and str(self.data).encode() in _cmdline(pid):
                os.kill(pid, signal.SIGKILL)


def ledger_children(parent: int) -> list[int]:
    """Pids of the live ``chainbook.ledger`` processes whose parent is ``parent``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] != "Z" and b"chainbook.ledger" in cmdline:
            out.append(int(entry))
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout} s")


def journal_last_seq(data: Path) -> int:
    last, tail = 0, JournalTail(data / "events", 1)
    while batch := tail.poll(10_000):
        last = batch[-1][0]
    return last


def sqlite_ledger(data: Path) -> tuple[int, dict[tuple[int, str], tuple[int, int]]]:
    """(last_seq, balances) of the embedded ledger, read-only."""
    uri = (data / "ledger.sqlite").resolve().as_uri() + "?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        seq = conn.execute("SELECT last_seq FROM ledger_state").fetchone()[0]
        rows = conn.execute("SELECT account, asset, available, frozen FROM balances")
        return int(seq), {(int(a), s): (int(av), int(fr)) for a, s, av, fr in rows}


def reconcile(data: Path, *db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CMD, "reconcile", "--data", str(data), *db], capture_output=True,
                          text=True, timeout=120, env=ENV)


@pytest.fixture
def started() -> Iterator[list[Server]]:
    """Servers a test starts; any still running at the end are killed with their child."""
    servers: list[Server] = []
    yield servers
    for srv in servers:
        srv.kill()


def test_process_mode_settles_restarts_the_ledger_and_stops_it(
        tmp_path: Path, started: list[Server]) -> None:
    srv = Server(tmp_path, config_text())  # the built-in default: mode = "process"
    started.append(srv)
    children = wait_for(srv.ledger_children, 10, "a ledger child")
    assert len(children) == 1
    first = children[0]

    srv.wait_settled(srv.trade())

    os.kill(first, signal.SIGKILL)
    orders = srv.trade()  # while the ledger is down: settled once a new one catches up
    restarted = wait_for(lambda: [p for p in srv.ledger_children() if p != first], 20,
                         "a new ledger child after kill -9")
    assert len(restarted) == 1 and not alive(first)
    seen = srv.wait_settled(orders)
    assert seen[-2:] == ["SETTLED", "SETTLED"]
    assert re.search(rf"ledger process {first} exited with status -9 at seq \d+; "
                     r"restarting in 0\.5 s", srv.log()), srv.log()

    # the ledger equals the core: balance by balance, and by the reconciler
    ids = {"demo1": srv.keys["demo1"]["account"], "demo2": srv.keys["demo2"]["account"]}
    _, ledger = sqlite_ledger(srv.data)
    for who, acct in ids.items():
        core = srv.core_balances(who)
        assert core["BTC"][0] != 10 * UNITS  # they traded
        for asset, (free, locked) in core.items():
            assert ledger.get((acct, asset), (0, 0)) == (free, locked), (who, asset)
    out = reconcile(srv.data)
    assert out.returncode == 0 and "agree" in out.stdout, out.stdout + out.stderr

    # SIGTERM right after an acknowledged trade: the ledger catches up, then stops
    srv.trade()
    child = restarted[0]
    assert srv.stop() == 0, srv.log()
    assert not alive(child), "the ledger child outlived serve"
    seq, _ = sqlite_ledger(srv.data)
    assert seq == journal_last_seq(srv.data) > 0
    assert not (srv.data / "serve.json").exists()


def test_ledger_child_exits_when_the_server_is_killed(
        tmp_path: Path, started: list[Server]) -> None:
    srv = Server(tmp_path, config_text(mode="process"))
    started.append(srv)
    [child] = wait_for(srv.ledger_children, 10, "a ledger child")
    srv.wait_settled(srv.trade())
    srv.proc.kill()  # SIGKILL: no clean-up code runs in serve
    srv.proc.wait()
    wait_for(lambda: not alive(child), 5, f"ledger child {child} exiting after its parent")
    # the next server starts a fresh child, which finds the ledger as it was left
    srv2 = Server(tmp_path, config_text(mode="process"))
    started.append(srv2)
    wait_for(srv2.ledger_children, 10, "a ledger child of the second server")
    srv2.wait_settled(srv2.trade())
    assert srv2.stop() == 0, srv2.log()
    out = reconcile(srv2.data)
    assert out.returncode == 0, out.stdout + out.stderr


def test_thread_mode_runs_no_child_and_settles(tmp_path: Path, started: list[Server]) -> None:
    srv = Server(tmp_path, config_text(mode="thread"))
    started.append(srv)
    srv.wait_settled(srv.trade())
    assert srv.ledger_children() == []  # settled by the in-process LedgerService thread
    assert srv.stop() == 0, srv.log()
    seq, _ = sqlite_ledger(srv.data)
    assert seq == journal_last_seq(srv.data)


def test_process_mode_on_postgresql(tmp_path: Path, started: list[Server],
                                    pg_url: str) -> None:
    srv = Server(tmp_path, config_text(mode="process", url=pg_url))
    started.append(srv)
    [child] = wait_for(srv.ledger_children, 10, "a ledger child")
    srv.wait_settled(srv.trade())
    out = reconcile(srv.data, "--db", pg_url)
    assert out.returncode == 0 and "agree" in out.stdout, out.stdout + out.stderr
    assert not (srv.data / "ledger.sqlite").exists()  # the ledger is in PostgreSQL
    assert srv.stop() == 0, srv.log()
    assert not alive(child)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_start_up_stops_serve_in_order(tmp_path: Path, sig: int) -> None:
    """SIGTERM/SIGINT while serve is still starting (its ledger child is up, uvicorn not
    yet listening, or just listening): exit 0, the child stopped, no serve.json left."""
    cfg = tmp_path / "serve.toml"
    cfg.write_text(config_text(mode="process"))
    data = tmp_path / "data"
    with open(tmp_path / "serve.log", "ab") as out:
        proc = subprocess.Popen(
            [*CMD, "serve", "--demo", "--config", str(cfg), "--data", str(data),
             "--port", "0"], stdout=out, stderr=subprocess.STDOUT, env=ENV)
    try:
        [child] = wait_for(lambda: ledger_children(proc.pid), 60, "a ledger child")
        proc.send_signal(sig)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert code == 0, log
    assert "Traceback" not in log, log
    wait_for(lambda: not alive(child), 10, f"ledger child {child} exiting")
    assert not (data / "serve.json").exists()
