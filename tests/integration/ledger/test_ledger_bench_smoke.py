"""The ledger benchmark runs end to end on a tiny load and reports every figure."""

from __future__ import annotations

import json

from chainbook.bench import ledger_bench


def test_ledger_bench_smoke(capsys):
    assert ledger_bench.main(["--trades", "300", "--batch", "100", "--lag-seconds", "0.5",
                              "--rate", "400", "--pg", ""]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["sqlite"]["ok"] and out["sqlite"]["trades"] >= 300
    assert out["sqlite"]["trades_per_s"] > 0 and out["python_only"]["trades_per_s"] > 0
    assert "skipped" in out["postgresql"]
    lag = out["lag_sqlite_400"]
    assert lag["trades"] > 0 and 0 <= lag["p50_ms"] <= lag["p99_ms"] <= lag["max_ms"]
