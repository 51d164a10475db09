"""The gateway benchmarks run end to end at a tiny size and report every figure."""

from __future__ import annotations

import json
import time

import pytest

from chainbook.bench import fanout_bench, rest_bench
from chainbook.bench.host import host_share, host_times


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
    assert out["client"] == "raw" and out["from_due_ms"]["n"] == 200
    # what the machine did in the run's window: shares of all CPU time, the server busy
    assert 0 <= out["host_steal_pct"] <= 100 and 0 < out["host_busy_pct"] <= 100
    assert out["host_python_loop_ms"] > 0  # the machine's speed, measured before the run


def test_rest_bench_tiny_new_orders_only_through_aiohttp_and_uvicorns_path(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert rest_bench.main(["--clients", "2", "--rate", "100", "--seconds", "1",
                            "--mix", "ioc", "--client", "aiohttp", "--http", "uvicorn"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["requests"] == 100 and out["errors"] == {}
    assert out["new_latency_ms"]["n"] == 100 and out["cancel_latency_ms"] == {}
    assert (out["mix"], out["client"], out["http"]) == ("ioc", "aiohttp", "uvicorn")


def test_fanout_bench_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    assert fanout_bench.main(["--subscribers", "20", "--procs", "1", "--trades", "5",
                              "--rate", "10"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["connected"] == 20 and out["trades"] == 5
    assert out["delivered"] == 100 and out["missing"] == 0
    assert set(out["from_ack_ms"]) == {"p50", "p99", "max"}
    assert out["server_exit"] == 0


def test_fanout_bench_tiny_with_kernel_stamps_and_the_peer(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert fanout_bench.main(["--subscribers", "10", "--procs", "1", "--trades", "3",
                              "--rate", "10", "--peer"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["missing"] == 0
    # the kernel stamps every arrival, before the subscriber reads it
    assert 0 <= out["kernel_spread_ms"]["p50"] <= out["kernel_spread_ms"]["max"]
    assert out["kernel_from_send_ms"]["p50"] <= out["from_send_ms"]["max"]
    peer = out["peer_bare_send_loop"]
    assert (peer["subscribers"], peer["rounds"]) == (10, 3)
    assert peer["arrival_from_round_start_ms"]["max"] >= 0
    assert 0 <= out["host_steal_pct"] <= 100 and 0 <= peer["host_steal_pct"] <= 100
    assert out["host_python_loop_ms"] > 0


def test_host_share_counts_this_process_busy_time() -> None:
    before = host_times()
    assert before is not None and len(before) == 8
    end = time.process_time() + 0.3
    while time.process_time() < end:  # 0.3 s of CPU of 2 cores' time: >= ~10 % busy
        pass
    share = host_share(before)
    assert share["host_busy_pct"] >= 5.0
    assert 0 <= share["host_steal_pct"] <= 100 - share["host_busy_pct"]
    assert host_share(None) == {}
