"""Smoke tests of ``python -m chainbook.bench``: JSON shape, engine agreement, the mixes.

The benchmark runs for real on a short stream (20k commands); nothing here asserts a time.
liquibook parts are skipped only when liquibook cannot be imported and
CHAINBOOK_REQUIRE_SERVICES is unset (CI sets it and installs the ``bench`` extra).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from chainbook.bench import engine_bench
from chainbook.bench.mix import generate
from chainbook.bench.peers import liquibook_available

COMMANDS = 20_000
HAVE_LIQUIBOOK = liquibook_available()
REQUIRE = bool(os.environ.get("CHAINBOOK_REQUIRE_SERVICES"))
ENGINES = "chainbook,liquibook,baseline" if HAVE_LIQUIBOOK or REQUIRE else "chainbook,baseline"

# (gtc, ioc, cancel, move) in percent of commands, as specified for each mix
SPEC_PCT = {
    "exchange-core": {"gtc": 9, "ioc": 3, "cancel": 6, "move": 82},
    "simple": {"gtc": 50, "ioc": 10, "cancel": 40, "move": 0},
}


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chainbook.bench", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module", params=["exchange-core", "simple"])
def result(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The JSON line of one real engine-benchmark run of 20k commands."""
    proc = bench("engine", "--mix", request.param, "--commands", str(COMMANDS),
                 "--seed", "1", "--engines", ENGINES)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    out: dict[str, Any] = json.loads(lines[0])
    return out


def test_json_shape(result: dict[str, Any]) -> None:
    assert result["commands"] == COMMANDS and result["seed"] == 1
    assert result["mix"] in SPEC_PCT
    assert result["ok"] is True
    assert set(result["engines"]) == set(ENGINES.split(","))
    for name, fig in result["engines"].items():
        for key in ("ops_per_s", "p50_us", "p99_us", "p999_us", "traded_qty"):
            assert isinstance(fig[key], int | float), (name, key, fig)
        assert fig["ops_per_s"] > 0
        assert fig["p50_us"] <= fig["p99_us"] <= fig["p999_us"], (name, fig)
        assert sum(k["n"] for k in fig["by_op"].values()) == COMMANDS, fig["by_op"]
    assert set(result["ratios"]) == {f"chainbook/{e}" for e in result["engines"]
                                     if e != "chainbook"}


def test_engines_trade_the_same_positive_quantity(result: dict[str, Any]) -> None:
    figs = result["engines"]
    traded = {name: f["traded_qty"] for name, f in figs.items()}
    assert len(set(traded.values())) == 1, traded
    assert next(iter(traded.values())) > 0
    assert len({f["traded_notional"] for f in figs.values()}) == 1, figs
    assert len({f["resting_orders"] for f in figs.values()}) == 1, figs
    assert traded["chainbook"] == result["mix_stats"]["traded_qty"]


def test_liquibook_trades_like_chainbook(result: dict[str, Any]) -> None:
    if not HAVE_LIQUIBOOK and not REQUIRE:
        pytest.skip("liquibook is not installed (pip install -e '.[bench]')")
    lq, cb = result["engines"]["liquibook"], result["engines"]["chainbook"]
    assert lq["traded_qty"] == cb["traded_qty"] > 0
    assert lq["traded_notional"] == cb["traded_notional"]
    assert lq["resting_orders"] == cb["resting_orders"]


def test_mix_proportions(result: dict[str, Any]) -> None:
    stats = result["mix_stats"]
    for op, want in SPEC_PCT[result["mix"]].items():
        assert abs(stats["pct"][op] - want) <= 2, (op, stats["pct"])
    # the engine's own events show the same share of trading commands as the generator
    assert result["engines"]["chainbook"]["trading_pct"] == stats["trading_pct"]
    if result["mix"] == "exchange-core":
        assert abs(stats["trading_pct"] - 6) <= 3, stats
        assert 800 <= stats["avg_resting_orders"] <= 1200, stats
        assert 600 <= stats["avg_levels"] <= 900, stats


def test_generator_is_deterministic_and_seeded() -> None:
    a = generate("exchange-core", 3_000, 7)
    b = generate("exchange-core", 3_000, 7)
    c = generate("exchange-core", 3_000, 8)
    assert a.prefill == b.prefill and a.commands == b.commands and a.stats == b.stats
    assert a.commands != c.commands
    assert all(isinstance(x, int) for cmd in a.commands for x in cmd)


def test_check_reports_a_disagreeing_engine() -> None:
    stats = {"traded_qty": 10, "traded_notional": 1000, "end_resting_orders": 3}
    good = {"traded_qty": 10, "traded_notional": 1000, "resting_orders": 3}
    result = {"mix_stats": stats, "engines": {"chainbook": dict(good), "baseline": dict(good)}}
    assert engine_bench.check(result) == []
    result["engines"]["baseline"]["traded_qty"] = 9
    errors = engine_bench.check(result)
    assert len(errors) == 1 and "baseline" in errors[0] and "traded_qty" in errors[0]


def test_memory_bench_shape() -> None:
    proc = bench("memory", "--orders", "20000", "--levels", "500")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["orders"] == 20_000
    assert out["levels"] <= 1_000
    assert out["bytes_per_order"] > 0
    assert out["rss_after_mb"] >= out["rss_before_mb"]


def test_dispatch_rejects_unknown_benchmark() -> None:
    proc = bench("nonsense")
    assert proc.returncode == 2
    assert "unknown benchmark" in proc.stderr
