"""Real Nasdaq order flow (LOBSTER, 2012-06-21) replayed through the engine.

The streams live in ``<repo>/../shared/data/lobster`` (third-party data, never copied
into the repository); those tests skip when it is absent unless
``CHAINBOOK_REQUIRE_SHARED_DATA=1``.  The small synthetic streams at the end need no
data: they pin down what the replay adapter itself does.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from chainbook.tools.lobster import (
    DUMMY_PRICE,
    book_levels,
    main,
    replay_stream,
)

REPO = Path(__file__).resolve().parents[2]
LOBSTER = REPO.parent / "shared" / "data" / "lobster"
CHECK_EVERY = 5000


class Expect(NamedTuple):
    orderbook_rows: int  # rows of the orderbook file, all of which must be compared
    min_hit: float | None  # README: > 99.9% of executions hit the head over a trading day
    max_misses_after_open: int | None = None  # for a window that is not a trading day


STREAMS = {
    "AMZN_2012-06-21_L1.stream.csv": Expect(57515, 0.999),
    "GOOG_2012-06-21_L1.stream.csv": Expect(49482, 0.999),
    # 09:30-10:30 is not a trading day: the README's 99.9% is not claimed for it.  Its
    # six misses after 09:30:15 are all sweeps where Nasdaq skipped an older order at
    # the same price (listed in docs/lobster.md); more would be a regression.
    "AAPL_2012-06-21_0930-1030_L50.stream.csv": Expect(672, None, 6),
    # all 1950 messages fall in 09:30:00-09:30:05, which the README calls not FIFO-clean
    "MSFT_2012-06-21_L50.first1950.stream.csv": Expect(1950, None),
}


def _streams_dir() -> Path:
    streams = LOBSTER / "streams"
    if not streams.is_dir():
        if os.environ.get("CHAINBOOK_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"LOBSTER data missing at {LOBSTER} and "
                        "CHAINBOOK_REQUIRE_SHARED_DATA=1")
        pytest.skip(f"LOBSTER data not found at {LOBSTER} (shared data absent)")
    return streams


@functools.cache
def _report(name: str, naive: bool = False) -> dict[str, Any]:
    return replay_stream(_streams_dir() / name, check_every=CHECK_EVERY, naive=naive)


@pytest.mark.parametrize("name", list(STREAMS))
def test_book_equals_lobster_after_every_message(name: str) -> None:
    report = _report(name)
    book = report["book"]
    assert book["orderbook_rows"] == STREAMS[name].orderbook_rows
    assert book["compared"] == book["orderbook_rows"], "some orderbook rows were not compared"
    assert book["matched"] == book["compared"], book["mismatches"]


@pytest.mark.parametrize("name", list(STREAMS))
def test_executions_hit_the_named_resting_orders(name: str) -> None:
    report = _report(name)
    ex, counts, want = report["executions"], report["counts"], STREAMS[name]
    misses = ex["compared"] - ex["matched"]
    # every miss is a priority difference at the same prices (the engine filled the
    # same quantity per price as Nasdaq), never a different trade
    assert counts.get("unrepairable_sweeps", 0) == 0, ex["mismatches"]
    assert counts.get("repaired_sweeps", 0) == misses
    if want.min_hit is not None:
        assert ex["rate"] > want.min_hit, ex["mismatches"]
        assert ex["rate_after_0930_15"] > want.min_hit, ex["mismatches"]
    if want.max_misses_after_open is not None:
        misses_open = ex["compared_after_0930_15"] - ex["matched_after_0930_15"]
        assert misses_open <= want.max_misses_after_open, ex["mismatches"]


@pytest.mark.parametrize("name", list(STREAMS))
def test_replay_is_clean_and_invariants_hold(name: str) -> None:
    report = _report(name)
    counts = report["counts"]
    for bad in ("unresolved_rows", "adds_that_traded", "engine_rejects", "ioc_unfilled_lots",
                "partial_cancels_to_zero"):
        assert counts.get(bad, 0) == 0, (bad, counts)
    # check(engine) raised nothing every CHECK_EVERY messages and at the end
    assert report["invariant_checks"] == report["messages"] // CHECK_EVERY + 1
    assert report["rows"] > report["messages"] // 2  # the whole stream was read


def test_naive_book_replays_msft_identically() -> None:
    fast, naive = _report("MSFT_2012-06-21_L50.first1950.stream.csv"), _report(
        "MSFT_2012-06-21_L50.first1950.stream.csv", naive=True)
    timing = {"book_impl", "load_s", "wall_s", "commands_per_s", "engine_commands_per_s"}
    assert {k: v for k, v in fast.items() if k not in timing} == {
        k: v for k, v in naive.items() if k not in timing}


def test_cli_prints_the_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    stream = _streams_dir() / "MSFT_2012-06-21_L50.first1950.stream.csv"
    assert main([str(stream), "--levels", "5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["levels"] == 5
    assert report["book"]["compared"] == report["book"]["matched"] == 1950


# --- synthetic streams: the adapter itself ---------------------------------------------

HEADER = "ts,action,order_id,side,price_ticks,qty,msg_idx,tag\n"


def _book_row(bids: list[tuple[int, int]], asks: list[tuple[int, int]], levels: int) -> str:
    cells = []
    for i in range(levels):
        ap, asz = asks[i] if i < len(asks) else (DUMMY_PRICE // 100, 0)
        bp, bsz = bids[i] if i < len(bids) else (-DUMMY_PRICE // 100, 0)
        cells += [ap * 100 if asz else DUMMY_PRICE, asz, bp * 100 if bsz else -DUMMY_PRICE, bsz]
    return ",".join(map(str, cells))


def _write(tmp_path: Path, rows: str, books: list[tuple[list[tuple[int, int]],
                                                        list[tuple[int, int]]]],
           levels: int = 2) -> tuple[Path, Path]:
    stream = tmp_path / "TEST_L2.stream.csv"
    stream.write_text(HEADER + rows)
    stream.with_name(stream.name + ".meta.json").write_text(
        json.dumps({"tick": 100, "messages": len(books)}))
    orderbook = tmp_path / "TEST_orderbook_2.csv"
    orderbook.write_text("".join(_book_row(b, a, levels) + "\n" for b, a in books))
    return stream, orderbook


# Nasdaq hits order 2 though order 1 is ahead of it at 101.00, then cancels order 1;
# a two-message sweep (msgs 6-7) is one IOC; message 8 has no rows (a hidden execution).
NON_FIFO = """\
1000,add,1,S,10100,100,0,msg
2000,add,2,S,10100,100,1,msg
3000,add,3,B,10000,50,2,msg
4000,execute,2,S,10100,100,3,msg
5000,cancel,1,S,10100,100,4,msg
5500,add,4,B,9900,30,5,msg
6000,execute,3,B,10000,50,6,msg
6000,execute,4,B,9900,10,7,msg
"""
NON_FIFO_BOOKS = [
    ([], [(10100, 100)]),
    ([], [(10100, 200)]),
    ([(10000, 50)], [(10100, 200)]),
    ([(10000, 50)], [(10100, 100)]),
    ([(10000, 50)], []),
    ([(10000, 50), (9900, 30)], []),
    ([(9900, 30)], []),
    ([(9900, 20)], []),
    ([(9900, 20)], []),
]


def test_non_fifo_execution_is_counted_and_repaired(tmp_path: Path) -> None:
    stream, orderbook = _write(tmp_path, NON_FIFO, NON_FIFO_BOOKS)
    report = replay_stream(stream, orderbook)
    assert report["book"]["compared"] == report["book"]["matched"] == 9
    assert report["book"]["mid_sweep"] == 1  # message 6, inside the msgs 6-7 sweep
    ex = report["executions"]
    assert (ex["compared"], ex["matched"]) == (2, 1)
    assert ex["mismatches"][0]["named"] == [(2, 100)]
    assert ex["mismatches"][0]["filled"] == [(1, 100)]
    assert report["counts"] == {"repair_commands": 0, "repair_takeovers": 1,
                                "repaired_sweeps": 1}


def test_without_repair_the_non_fifo_execution_shows_in_the_book(tmp_path: Path) -> None:
    stream, orderbook = _write(tmp_path, NON_FIFO, NON_FIFO_BOOKS)
    report = replay_stream(stream, orderbook, repair=False)
    # the engine filled order 1, so "cancel 1" finds nothing and order 2 stays at 101.00
    assert report["counts"] == {"unresolved_rows": 1}
    assert report["book"]["matched"] == 4
    assert report["book"]["mismatches"][0] == {
        "row": 4, "ts": 5000,
        "asks": {"level": 1, "engine": [(10100, 100)], "lobster": []},
    }


def test_partial_cancel_keeps_priority_and_a_mismatch_is_reported(tmp_path: Path) -> None:
    rows = """\
1000,add,7,B,5000,100,0,msg
2000,add,8,B,5000,100,1,msg
3000,cancel_partial,7,B,5000,40,2,msg
4000,execute,7,B,5000,60,3,msg
"""
    books = [([(5000, 100)], []), ([(5000, 200)], []), ([(5000, 160)], []),
             ([(5000, 101)], [])]  # the last row is wrong on purpose: 100 are left
    stream, orderbook = _write(tmp_path, rows, books)
    report = replay_stream(stream, orderbook)
    assert (report["executions"]["compared"], report["executions"]["matched"]) == (1, 1)
    assert report["book"]["matched"] == 3
    assert report["book"]["mismatches"] == [{
        "row": 3, "ts": 4000,
        "bids": {"level": 1, "engine": [(5000, 100)], "lobster": [(5000, 101)]},
    }]


def test_book_levels_drops_lobster_dummy_levels() -> None:
    raw = [1010000, 5, 1000000, 7, DUMMY_PRICE, 0, -DUMMY_PRICE, 0]
    assert book_levels(raw, 2, 100) == ([(10000, 7)], [(10100, 5)])


def test_missing_data_skips_unless_required(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setattr(sys.modules[__name__], "LOBSTER", tmp_path / "absent")
    monkeypatch.delenv("CHAINBOOK_REQUIRE_SHARED_DATA", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not found"):
        _streams_dir()
    monkeypatch.setenv("CHAINBOOK_REQUIRE_SHARED_DATA", "1")
    with pytest.raises(pytest.fail.Exception, match="CHAINBOOK_REQUIRE_SHARED_DATA=1"):
        _streams_dir()
