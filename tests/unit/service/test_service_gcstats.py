"""serve's GC pause counters (CHAINBOOK_GC_STATS) and the start-up heap freeze."""

from __future__ import annotations

import gc

from chainbook.app import freeze_heap
from chainbook.service import gcstats


def test_gc_stats_count_each_generation_and_list_long_pauses() -> None:
    stats = gcstats.install()
    try:
        gc.collect(0)
        gc.collect()
        stats.callback("start", {"generation": 2})
        stats._t0 -= gcstats.LONG_NS  # a pause of at least LONG_NS
        stats.callback("stop", {"generation": 2, "collected": 0, "uncollectable": 0})
    finally:
        gc.callbacks.remove(stats.callback)
    out = stats.as_dict()
    assert out["collections"][0] >= 1 and out["collections"][2] >= 2
    assert out["pause_ns_max"][2] >= gcstats.LONG_NS
    assert [p["gen"] for p in out["long"]][-1] == 2 and out["long"][-1]["ms"] >= 10


def test_freeze_heap_moves_the_live_heap_out_of_later_collections() -> None:
    try:
        freeze_heap(full=True)
        frozen = gc.get_freeze_count()
        assert frozen > 1000
        keep = [[i] for i in range(500)]  # new containers are collected as before
        assert gc.get_freeze_count() == frozen
        freeze_heap(full=False)
        assert gc.get_freeze_count() >= frozen + 500
        del keep
    finally:
        gc.unfreeze()
