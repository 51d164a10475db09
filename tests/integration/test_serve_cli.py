"""``chainbook serve`` as a real process: start, serve, fund, SIGTERM, restart, CLI tools."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest

from chainbook.service.config import DEFAULT_TOML
from chainbook.service.spawn import spawn_serve, stop_process

CMD = [sys.executable, "-m", "chainbook"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=60, env=ENV)
    if check:
        assert out.returncode == 0, out.stderr
    return out


class Server:
    """One ``chainbook serve --demo --port 0`` child process."""

    def __init__(self, data: Path, log: Path) -> None:
        self.data = data
        self.log = log
        try:
            self.proc, meta = spawn_serve(["--demo", "--port", "0"], data,
                                          (log.with_suffix(".out"), log.with_suffix(".err")))
        except RuntimeError as exc:
            pytest.fail(f"serve did not start: {exc}")
        self.port = meta["port"]
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def stderr(self) -> str:
        return self.log.with_suffix(".err").read_text()

    def stdout(self) -> str:
        return self.log.with_suffix(".out").read_text()

    def signed(self, path: str, key: dict[str, Any]) -> httpx.Response:
        query = urllib.parse.urlencode({"timestamp": int(time.time() * 1000),
                                        "recvWindow": 10000})
        sig = hmac.new(key["api_secret"].encode(), query.encode(), hashlib.sha256).hexdigest()
        return self.http.get(f"{path}?{query}&signature={sig}",
                             headers={"X-MBX-APIKEY": key["api_key"]})

    def balances(self, key: dict[str, Any]) -> dict[str, str]:
        r = self.signed("/api/v3/account", key)
        assert r.status_code == 200, r.text
        return {b["asset"]: b["free"] for b in r.json()["balances"]}

    def stop(self) -> int:
        code = stop_process(self.proc, 30)
        self.http.close()
        return code


def test_serve_demo_restart_keeps_state_and_funds_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = Server(data, tmp_path / "first")
    try:
        assert srv.http.get("/api/v3/ping").json() == {}
        assert f"chainbook serving on http://127.0.0.1:{srv.port} (data: {data})" in srv.stdout()
        demo = json.loads((data / "demo-accounts.json").read_text())
        assert [d["name"] for d in demo] == ["demo1", "demo2"]
        assert all(len(d["api_key"]) == 64 and len(d["api_secret"]) == 64 for d in demo)
        token = data / "admin-token"
        assert token.stat().st_mode & 0o077 == 0
        assert srv.balances(demo[0])["BTC"] == "10.00000000"
        # fund through the running server's admin endpoint, by account name
        reply = json.loads(cli("fund", "--data", str(data), "--account", "demo1",
                               "--asset", "BTC", "--amount", "1.5").stdout)
        assert reply["balance"]["free"] == "11.50000000"
        assert srv.balances(demo[0])["BTC"] == "11.50000000"
        assert srv.http.get("/api/v3/nothing-here").status_code == 404
        # a second serve on the same directory is refused by its lock, and leaves the
        # running server's admin token alone (the CLI goes on working with it)
        before = token.read_text()
        second = subprocess.run([*CMD, "serve", "--data", str(data), "--port", "0"],
                                capture_output=True, text=True, timeout=120, env=ENV)
        assert second.returncode == 2 and "LOCK" in second.stderr, second.stderr[-2000:]
        assert token.read_text() == before
        reply = json.loads(cli("fund", "--data", str(data), "--account", "demo1",
                               "--asset", "BTC", "--amount", "0.5").stdout)
        assert reply["balance"]["free"] == "12.00000000"
    finally:
        code = srv.stop()
    assert code == 0, srv.stderr()
    assert not (data / "serve.json").exists()

    srv = Server(data, tmp_path / "second")
    try:
        again = json.loads((data / "demo-accounts.json").read_text())
        assert again == demo  # same accounts and keys across restarts
        bal = srv.balances(demo[0])
        assert bal["BTC"] == "12.00000000"  # not funded twice, the CLI deposits survived
        assert bal["USDT"] == "1000000.00000000" and bal["ETH"] == "100.00000000"
        assert srv.balances(demo[1])["BTC"] == "10.00000000"
    finally:
        code = srv.stop()
    assert code == 0, srv.stderr()

    # a config that changes an asset's decimals would rescale every balance: refused,
    # by serve and by the offline fund, before anything is read or written
    cfg = tmp_path / "usdt10.toml"
    text, n = re.subn(r"(?ms)^(\[assets\.USDT\]\s*\ndecimals = )8", r"\g<1>10", DEFAULT_TOML)
    assert n == 1
    cfg.write_text(text)
    refused = subprocess.run([*CMD, "serve", "--data", str(data), "--port", "0",
                              "--config", str(cfg)], capture_output=True, text=True,
                             timeout=120, env=ENV)
    assert refused.returncode == 2 and "USDT 10 (recorded 8)" in refused.stderr, \
        refused.stderr[-2000:]
    out = cli("fund", "--data", str(data), "--config", str(cfg), "--account", "2",
              "--asset", "USDT", "--amount", "1", check=False)
    assert out.returncode != 0 and "USDT 10 (recorded 8)" in out.stderr

    # with no server running, fund opens the data directory itself
    reply = json.loads(cli("fund", "--data", str(data), "--account", "2", "--asset", "ETH",
                           "--amount", "0.5", "--external-id", "tx-9").stdout)
    assert reply["balance"]["free"] == "100.50000000" and reply["duplicate"] is False
    reply = json.loads(cli("fund", "--data", str(data), "--account", "2", "--asset", "ETH",
                           "--amount", "0.5", "--external-id", "tx-9").stdout)
    assert reply["balance"]["free"] == "100.50000000" and reply["duplicate"] is True


def test_two_quick_sigints_still_stop_in_order(tmp_path: Path) -> None:
    """Ctrl-C pressed twice: uvicorn forces its exit, the components still stop in order
    (the ledger catches up), the exit is clean and nothing acknowledged is lost."""
    data = tmp_path / "data"
    srv = Server(data, tmp_path / "first")
    try:
        demo = json.loads((data / "demo-accounts.json").read_text())
        cli("fund", "--data", str(data), "--account", "demo1", "--asset", "BTC",
            "--amount", "2")
        srv.proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        srv.proc.send_signal(signal.SIGINT)
        code = srv.proc.wait(30)
    finally:
        srv.stop()
    err = srv.stderr()
    assert code == 0, err
    assert "Traceback" not in err and "CancelledError" not in err, err
    assert "ledger at seq" in srv.stdout() + err
    srv = Server(data, tmp_path / "second")
    try:
        assert srv.balances(demo[0])["BTC"] == "12.00000000"
    finally:
        code = srv.stop()
    assert code == 0, srv.stderr()


def test_account_and_apikey_commands(tmp_path: Path) -> None:
    d = str(tmp_path / "data")
    assert json.loads(cli("account", "create", "alice", "--data", d).stdout)["account"] == 1
    bad = cli("account", "create", "alice", "--data", d, check=False)
    assert bad.returncode == 2 and "already exists" in bad.stderr
    key = json.loads(cli("apikey", "create", "--account", "alice", "--perms", "read,trade",
                         "--data", d).stdout)
    assert key["account"] == 1 and key["perms"] == ["read", "trade"]
    assert len(key["api_secret"]) == 64
    listed = [json.loads(line) for line in cli("apikey", "list", "--data", d).stdout.splitlines()]
    assert [k["api_key"] for k in listed] == [key["api_key"]]
    assert "api_secret" not in listed[0]
    cli("apikey", "revoke", key["api_key"], "--data", d)
    assert cli("apikey", "list", "--data", d).stdout.strip() == ""
    bad = cli("apikey", "create", "--account", "bob", "--data", d, check=False)
    assert bad.returncode == 2 and "no account 'bob'" in bad.stderr
    bad = cli("apikey", "create", "--account", "1", "--perms", "root", "--data", d,
              check=False)
    assert bad.returncode == 2 and "unknown permission" in bad.stderr
    names = [json.loads(line)["name"] for line in cli("account", "list", "--data", d)
             .stdout.splitlines()]
    assert names == ["alice"]


def test_a_port_in_use_is_one_line_and_exit_2_before_anything_starts(tmp_path: Path) -> None:
    """It used to start everything (recovery, chain, ledger) and then exit with uvicorn's
    code 3 (found by review)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([*CMD, "serve", "--data", str(tmp_path / "d"), "--port",
                              str(port)], capture_output=True, text=True, timeout=60, env=ENV)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip() == (f"chainbook: error: cannot listen on 127.0.0.1:{port}: "
                                  "[Errno 98] Address already in use")
    assert not (tmp_path / "d").exists()  # nothing was opened, recovered or created
