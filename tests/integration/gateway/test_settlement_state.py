"""The ledger inside ``serve``: traded orders go SETTLING -> SETTLED, and the ledger
agrees with a replay of the journal (``chainbook reconcile``) while the server runs."""

from __future__ import annotations

import subprocess
import sys
import time

from gwclient import Server, ccxt_client


def _settlement(ex, order_id: str) -> str:  # type: ignore[no-untyped-def]
    return str(ex.fetch_order(order_id, "BTC/USDT")["info"]["settlementStatus"])


def test_traded_orders_become_settled_and_reconcile_agrees(clean: Server) -> None:
    maker, taker = ccxt_client(clean, "demo1"), ccxt_client(clean, "demo2")
    # trade at the last price of earlier tests, if any: the price band is +-10 % of it
    price = round(float(maker.fetch_ticker("BTC/USDT")["last"] or 60_000), 2)
    resting = maker.create_order("BTC/USDT", "limit", "buy", 0.001, round(price * 0.95, 2))
    assert _settlement(maker, resting["id"]) == "NONE"  # no trade: nothing to settle

    sell = maker.create_order("BTC/USDT", "limit", "sell", 0.002, price)
    buy = taker.create_order("BTC/USDT", "limit", "buy", 0.002, price)
    assert buy["status"] == "closed"

    deadline = time.monotonic() + 15
    states = {}
    while time.monotonic() < deadline:
        states = {"maker": _settlement(maker, sell["id"]),
                  "taker": _settlement(taker, buy["id"])}
        if states == {"maker": "SETTLED", "taker": "SETTLED"}:
            break
        assert set(states.values()) <= {"SETTLING", "SETTLED"}, states
        time.sleep(0.05)
    assert states == {"maker": "SETTLED", "taker": "SETTLED"}, clean.log_tail()

    out = subprocess.run([sys.executable, "-m", "chainbook", "reconcile", "--data",
                          str(clean.data)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
