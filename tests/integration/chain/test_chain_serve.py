"""End to end on the embedded chain under ``chainbook serve --demo``, with real ccxt:
deposit address, faucet transfer, credited balance, deposit history, withdrawal to
completion, and a trade's Merkle proof from the API."""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from gwclient import Server, ccxt_client, start_server, stop_server  # noqa: E402

DEST = "0x" + "5e" * 20


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("chainserve") / "data")
    try:
        yield s
    finally:
        assert stop_server(s) == 0, s.log_tail()


def _admin(srv: Server, path: str, body: dict[str, Any] | None = None) -> Any:
    token = (srv.data / "admin-token").read_text().strip()
    req = urllib.request.Request(srv.base + path, json.dumps(body).encode() if body else None,
                                 {"X-CHAINBOOK-ADMIN": token})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _until(fn: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_deposit_and_withdraw_through_ccxt(srv: Server) -> None:
    ex = ccxt_client(srv, "demo1")
    _until(lambda: _admin(srv, "/admin/v1/chain/status")["connected"], "the chain")
    addr = ex.fetch_deposit_address("USDT")
    assert addr["address"].startswith("0x") and len(addr["address"]) == 42
    assert ex.fetch_deposit_address("USDT")["address"] == addr["address"]
    other = ccxt_client(srv, "demo2").fetch_deposit_address("USDT")["address"]
    assert other != addr["address"]
    before = ex.fetch_balance()["USDT"]["free"]
    paid = _admin(srv, "/admin/v1/chain/faucet",
                  {"address": addr["address"], "asset": "USDT", "amount": "250"})
    _until(lambda: ex.fetch_balance()["USDT"]["free"] == before + 250, "the credit")
    deposits = ex.fetch_deposits("USDT")
    assert [(d["amount"], d["status"], d["txid"]) for d in deposits] == [
        (250.0, "ok", paid["txId"])]
    assert deposits[0]["info"]["confirmTimes"] == "2/2"

    w = ex.withdraw("USDT", 100, DEST)
    assert w["id"]
    done = _until(lambda: [x for x in ex.fetch_withdrawals("USDT")
                           if x["id"] == w["id"] and x["status"] == "ok"], "the withdrawal")
    assert done[0]["amount"] == 100.0 and done[0]["txid"].startswith("0x")
    assert done[0]["timestamp"] is not None
    bal = ex.fetch_balance()["USDT"]
    assert bal["free"] == before + 150 and bal["used"] == 0


def test_withdrawals_beyond_the_balance_or_to_a_bad_address_are_refused(srv: Server
                                                                         ) -> None:
    import ccxt

    ex = ccxt_client(srv, "demo2")
    with pytest.raises(ccxt.BadRequest, match="-4026"):
        ex.withdraw("USDT", 10**9, DEST)
    assert [w["status"] for w in ex.fetch_withdrawals("USDT")] == ["failed"]  # rejected
    with pytest.raises(ccxt.BadRequest):
        ex.withdraw("USDT", 1, "0x1234")


def test_a_trade_proof_is_served_once_anchored(srv: Server) -> None:
    a, b = ccxt_client(srv, "demo1"), ccxt_client(srv, "demo2")
    a.create_order("BTC/USDT", "limit", "sell", 0.01, 30000)
    b.create_order("BTC/USDT", "limit", "buy", 0.01, 30000)
    trade_id = b.fetch_my_trades("BTC/USDT")[-1]["id"]

    def anchored() -> Any:
        with urllib.request.urlopen(f"{srv.base}/api/v1/chain/proof?tradeId={trade_id}",
                                    timeout=10) as resp:
            p = json.loads(resp.read())
        return p if p["state"] == "ANCHORED" else None

    def poll() -> Any:
        try:
            return anchored()
        except urllib.error.HTTPError:
            return None

    p = _until(poll, "the trade's batch to be anchored", 30)
    assert p["tradeId"] == int(trade_id) and p["root"].startswith("0x")
    assert p["trade"]["symbol"] == "BTCUSDT"
    # Unicode digits (int() reads the second as 1); 19 digits past 2**63-1 (was a 500)
    for odd in ("\u00b2", "\u0661", "9223372036854775808", "9" * 19):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{srv.base}/api/v1/chain/proof?tradeId="
                                   f"{urllib.parse.quote(odd)}", timeout=10)
        assert err.value.code == 400
        assert json.loads(err.value.read())["code"] == -1100


def test_the_cli_gives_the_same_address_funds_it_and_withdraws(srv: Server) -> None:
    import subprocess

    def cli(*args: str) -> Any:
        out = subprocess.run([sys.executable, "-m", "chainbook.chain", *args, "--data",
                              str(srv.data)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    ex = ccxt_client(srv, "demo1")
    got = cli("deposit-address", "--account", "demo1")
    assert got["address"] == ex.fetch_deposit_address("ETH")["address"]
    before = ex.fetch_balance()["ETH"]["free"]
    cli("chain", "faucet", "--account", "demo1", "--asset", "ETH", "--amount", "0.25")
    _until(lambda: ex.fetch_balance()["ETH"]["free"] == before + 0.25, "the ETH credit")
    w = cli("withdraw", "--account", "demo1", "--asset", "ETH", "--amount", "0.1",
            "--address", DEST)
    assert w["state"] == "HELD"
    _until(lambda: [x for x in ex.fetch_withdrawals("ETH")
                    if x["id"] == w["id"] and x["status"] == "ok"], "the CLI withdrawal")
    assert cli("chain", "status")["connected"] is True


def test_a_locked_fund_store_delays_the_withdrawal_not_the_server(srv: Server) -> None:
    """Another process holds the write lock of chain-funds.sqlite: the withdrawal waits
    for it (in a worker thread), while every other request is answered at once."""
    import sqlite3
    import threading

    ex = ccxt_client(srv, "demo2")
    _until(lambda: _admin(srv, "/admin/v1/chain/status")["connected"], "the chain")
    addr = ex.fetch_deposit_address("USDT")["address"]
    before = ex.fetch_balance()["USDT"]["free"]
    _admin(srv, "/admin/v1/chain/faucet", {"address": addr, "asset": "USDT", "amount": "40"})
    _until(lambda: ex.fetch_balance()["USDT"]["free"] == before + 40, "the credit")
    lock = sqlite3.connect(srv.data / "chain-funds.sqlite", isolation_level=None, timeout=30)
    got: dict[str, Any] = {}
    lock.execute("BEGIN IMMEDIATE")
    try:
        worker = threading.Thread(target=lambda: got.update(w=ex.withdraw("USDT", 5, DEST)))
        worker.start()
        time.sleep(0.3)  # the withdrawal is now waiting for the lock
        slowest = 0.0
        for _ in range(10):
            t0 = time.monotonic()
            with urllib.request.urlopen(f"{srv.base}/api/v3/ping", timeout=10) as resp:
                assert resp.status == 200
            slowest = max(slowest, time.monotonic() - t0)
            time.sleep(0.1)
        assert "w" not in got  # still waiting: the lock is really in its way
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    worker.join(30)
    assert got["w"]["id"]
    assert slowest < 0.5, f"a ping took {slowest:.2f} s while the withdrawal waited"


def test_the_operator_withdraws_the_fee_accounts_revenue(srv: Server) -> None:
    """Account 0 collects the trading fees and has no API keys: the admin withdrawal
    is the way its revenue leaves the exchange (found by review: it refused account 0)."""
    a, b = ccxt_client(srv, "demo1"), ccxt_client(srv, "demo2")
    a.create_order("BTC/USDT", "limit", "sell", 0.01, 30000)
    b.create_order("BTC/USDT", "limit", "buy", 0.01, 30000)  # fees: 0.3 USDT at 10 bps
    _until(lambda: _admin(srv, "/admin/v1/chain/status")["connected"], "the chain")
    reply = _admin(srv, "/admin/v1/chain/withdraw", {
        "account": 0, "asset": "USDT", "amount": "0.1", "address": DEST})
    assert reply["state"] == "HELD"
    with pytest.raises(urllib.error.HTTPError) as err:
        _admin(srv, "/admin/v1/chain/withdraw", {
            "account": -1, "asset": "USDT", "amount": "0.1", "address": DEST})
    assert err.value.code == 400 and "integer >= 0" in json.loads(err.value.read())["msg"]
    err.value.close()
