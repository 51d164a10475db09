"""Smoke test of ``python -m chainbook.bench ticks``: one JSON line, every datagram
accounted for. Nothing here asserts a time."""

from __future__ import annotations

import json
import subprocess
import sys


def test_ticks_bench_prints_one_json_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "chainbook.bench", "ticks", "--trades", "200",
                           "--seed", "3", "--interval-us", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.strip().splitlines()
    out = json.loads(line)
    assert out["bench"] == "ticks" and out["trades"] == 200 and out["seed"] == 3
    # each pair of commands: the maker moves the top, the trade, the taker restores it
    assert out["datagrams"] == 600
    assert out["received"] + out["lost"] == out["datagrams"]
    assert out["transport"] in ("multicast", "unicast")
    for key in ("apply_to_rx_us", "commit_to_rx_us"):
        p = out[key]
        assert 0 < p["p50"] <= p["p99"] <= p["max"]
