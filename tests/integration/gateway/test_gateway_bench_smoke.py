"""The gateway benchmarks run end to end at a tiny size and report every figure."""

from __future__ import annotations

import json

import pytest

from chainbook.bench import fanout_bench, rest_bench


def test_rest_bench_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    assert rest_bench.main(["--clients", "2", "--rate", "200", "--seconds", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["requests"] == 200 and out["errors"] == {}
    assert out["achieved_per_s"] > 0 and out["new_orders_per_s"] > 0
    assert set(out["latency_ms"]) >= {"p50", "p99", "p999"}
    assert out["new_latency_ms"]["n"] == out["cancel_latency_ms"]["n"] == 100
    assert out["server_exit"] == 0
    # serve froze its start-up heap (app.freeze_heap) and reported its GC pauses
    assert out["server_gc"]["frozen_objects"] > 10_000
    assert isinstance(out["server_gc"]["long_pauses_ms"], list)


def test_fanout_bench_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    assert fanout_bench.main(["--subscribers", "20", "--procs", "1", "--trades", "5",
                              "--rate", "10"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["connected"] == 20 and out["trades"] == 5
    assert out["delivered"] == 100 and out["missing"] == 0
    assert set(out["from_ack_ms"]) == {"p50", "p99", "max"}
    assert out["server_exit"] == 0
