"""The journal benchmark runs end to end at a tiny size and reports every figure."""

from __future__ import annotations

import json

from chainbook.bench import journal_bench


def test_journal_bench_prints_every_figure(tmp_path, capsys):
    assert journal_bench.main(["--commands", "3000", "--orders", "2000", "--repeat", "1",
                               "--profile", "--dir", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    snap = out["snapshot"]
    assert snap["resting_orders"] == 2000 == snap["restart"]["resting_orders"]
    assert snap["restart"]["replayed"] == 0 and snap["snapshot_mb"] > 0
    tp = out["throughput"]
    assert set(journal_bench.VARIANTS) < set(tp)
    assert all(tp[k]["commands_per_s"] > 0 for k in journal_bench.VARIANTS)
    assert all(0 <= tp[k]["gc_share"] <= 1 and tp[k]["gc_collections"] >= 0
               and tp[k]["cpu_us_per_command"] > 0 for k in journal_bench.VARIANTS)
    cpu = tp["split_cpu_us_per_command"]
    assert len(cpu) == 4 and cpu["engine"] > 0
    assert len(tp["split_us_per_command"]) == 4
    assert out["replay"]["checked"] and out["replay"]["commands"] > 3000
    assert abs(sum(out["profile_shares"].values()) - 1) < 0.01
