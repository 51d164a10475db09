"""CoreService: durable acks, batch order, listeners before futures, history replay, stop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from chainbook.domain import commands as C
from chainbook.domain.enums import OrderType, Reject, Side, SymbolStatus
from chainbook.domain.events import (
    BalanceChanged,
    Deposited,
    OrderAccepted,
    OrderRejected,
    SymbolAdded,
    Trade,
)
from chainbook.journal.recovery import DurableEngine
from chainbook.service.applied import Applied
from chainbook.service.config import default_config
from chainbook.service.core import CoreService, CoreUnavailable

CFG = default_config()
BTCUSDT = next(s for s in CFG.symbols if s.name == "BTCUSDT")


def make(tmp: Path, **kw: object) -> CoreService:
    kw.setdefault("snapshot_mode", "inline")
    return CoreService(tmp / "data", CFG.assets, **kw)  # type: ignore[arg-type]


class Recorder:
    """A loop listener that records every batch and checks it runs on the loop thread."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[Applied], bool]] = []
        self.thread: set[str] = set()

    def __call__(self, batch: list[Applied], live: bool) -> None:
        self.thread.add(threading.current_thread().name)
        self.batches.append((list(batch), live))

    def seqs(self, live: bool | None = None) -> list[int]:
        return [a.seq for b, lv in self.batches if live is None or lv == live for a in b]

    def events(self, live: bool | None = None) -> list[object]:
        return [e for b, lv in self.batches if live is None or lv == live for a in b
                for e in a.events]


def test_submit_returns_durable_applied_with_events(tmp_path: Path) -> None:
    async def main() -> None:
        core = make(tmp_path)
        await core.start()
        assert await core.ensure_symbols(CFG.symbols) == ["BTCUSDT", "ETHUSDT", "ETHBTC"]
        res = await core.deposit(1, "USDT", 500, "d1")
        assert res.seq == 4 and res.command == C.Deposit(1, "USDT", 500, "d1")
        assert [type(e) for e in res.events] == [Deposited, BalanceChanged]
        assert core.durable_seq >= res.seq
        assert core.specs["BTCUSDT"] == BTCUSDT
        assert core.status["ETHBTC"] == SymbolStatus.TRADING
        await core.stop()

    asyncio.run(main())
    with DurableEngine(tmp_path / "data") as de:  # everything acknowledged is in the log
        assert de.last_seq == 4
        assert de.engine.balances.available(1, "USDT") == 500


def test_engine_rejections_come_back_as_events(tmp_path: Path) -> None:
    async def main() -> None:
        core = make(tmp_path)
        await core.start()
        await core.deposit(1, "USDT", 500, "same")
        dup = await core.deposit(1, "USDT", 500, "same")
        assert isinstance(dup.events[0], OrderRejected)
        assert dup.events[0].reason == Reject.DUPLICATE_EXTERNAL_ID
        bad = await core.submit(C.PlaceOrder(1, "NOPE", Side.BUY, OrderType.LIMIT, 1, 1))
        assert bad.events[0].reason == Reject.UNKNOWN_SYMBOL  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="unknown asset"):
            await core.deposit(1, "DOGE", 1, "x")
        await core.stop()

    asyncio.run(main())


def test_concurrent_submits_keep_seq_order_and_listeners_see_batches_first(
        tmp_path: Path) -> None:
    seen_when_resolved: list[tuple[int, int]] = []

    async def main() -> None:
        core = make(tmp_path, max_batch=16)
        rec = Recorder()
        core.add_listener(rec)
        core_batches: list[list[int]] = []
        core.add_core_listener(lambda b: core_batches.append([a.seq for a in b]))
        await core.start()
        await core.ensure_symbols([BTCUSDT])

        async def one(i: int) -> None:
            res = await core.submit(C.Deposit(1 + i % 3, "BTC", 1 + i, f"c{i}"))
            # the listener already saw this command when the future resolves
            assert res.seq in rec.seqs(live=True)
            seen_when_resolved.append((res.seq, i))

        await asyncio.gather(*(one(i) for i in range(200)))
        many = await core.submit_many([C.Deposit(9, "ETH", 5, f"m{k}") for k in range(5)])
        assert [a.seq for a in many] == list(range(many[0].seq, many[0].seq + 5))
        await core.stop()
        live = rec.seqs(live=True)
        assert live == list(range(1, 207))  # every command once, in seq order
        assert [s for b in core_batches for s in b] == live
        assert max(len(b) for b in core_batches) <= 16  # batches capped
        assert len(core_batches) < 206  # and some were grouped (one commit each)
        assert rec.thread == {threading.main_thread().name}
        assert all(live for _, live in rec.batches)

    asyncio.run(main())
    assert sorted(s for s, _ in seen_when_resolved) == list(range(2, 202))
    # each submitter got its own command back
    by_seq = dict(seen_when_resolved)
    assert len(set(by_seq.values())) == 200


def test_history_replay_after_restart_gives_listeners_the_same_events(tmp_path: Path) -> None:
    async def first() -> list[object]:
        core = make(tmp_path)
        rec = Recorder()
        core.add_listener(rec)
        await core.start()
        await core.ensure_symbols([BTCUSDT])
        await core.deposit(1, "USDT", 10**12, "u1")
        await core.deposit(2, "BTC", 10**8, "b2")
        await core.submit(C.PlaceOrder(2, "BTCUSDT", Side.SELL, OrderType.LIMIT, 100,
                                       3_000_000))
        res = await core.submit(C.PlaceOrder(1, "BTCUSDT", Side.BUY, OrderType.LIMIT, 40,
                                             3_000_000))
        assert any(isinstance(e, Trade) for e in res.events)
        await core.stop()
        return rec.events(live=True)

    async def second() -> tuple[list[object], list[int], CoreService]:
        core = make(tmp_path)
        rec = Recorder()
        core.add_listener(rec)
        await core.start()
        assert rec.seqs(live=True) == []
        replayed = rec.events(live=False)
        assert all(a.command is None for b, _ in rec.batches for a in b)
        res = await core.deposit(3, "ETH", 7, "e3")
        assert res.seq == 6  # numbering continues after the history
        await core.stop()
        return replayed, rec.seqs(), core

    live_events = asyncio.run(first())
    replayed, seqs, core = asyncio.run(second())
    assert replayed == live_events
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert core.specs == {"BTCUSDT": BTCUSDT}  # rebuilt from SymbolAdded in the history
    assert isinstance(live_events[0], SymbolAdded)


def test_ensure_symbols_adds_only_missing_ones(tmp_path: Path) -> None:
    async def main() -> None:
        core = make(tmp_path)
        await core.start()
        assert await core.ensure_symbols([BTCUSDT]) == ["BTCUSDT"]
        assert await core.ensure_symbols(CFG.symbols) == ["ETHUSDT", "ETHBTC"]
        assert await core.ensure_symbols(CFG.symbols) == []
        await core.stop()

    asyncio.run(main())


def test_stop_is_graceful_and_later_submits_raise(tmp_path: Path) -> None:
    async def main() -> None:
        core = make(tmp_path)
        rec = Recorder()
        core.add_listener(rec)
        await core.start()
        pending = [asyncio.ensure_future(core.deposit(1, "BTC", 1, f"s{i}")) for i in range(50)]
        await asyncio.sleep(0)  # the submits are queued
        await core.stop()
        results = await asyncio.gather(*pending)  # everything queued before stop is done
        assert sorted(r.seq for r in results) == list(range(1, 51))
        assert rec.seqs(live=True) == list(range(1, 51))
        with pytest.raises(CoreUnavailable):
            await core.deposit(1, "BTC", 1, "late")
        await core.stop()  # idempotent
        assert not core.failed

    asyncio.run(main())
    with DurableEngine(tmp_path / "data") as de:
        assert de.last_seq == 50


def test_submit_before_start_raises(tmp_path: Path) -> None:
    async def main() -> None:
        core = make(tmp_path)
        with pytest.raises(CoreUnavailable, match="not running"):
            await core.deposit(1, "BTC", 1, "x")

    asyncio.run(main())


def test_a_raising_listener_is_logged_and_does_not_stop_delivery(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def bad(batch: list[Applied], live: bool) -> None:
        raise RuntimeError("listener bug")

    async def main() -> None:
        core = make(tmp_path)
        rec = Recorder()
        core.add_listener(bad)
        core.add_listener(rec)
        core.add_core_listener(lambda b: 1 / 0)  # type: ignore[func-returns-value]
        await core.start()
        res = await core.deposit(1, "BTC", 1, "x")
        assert rec.seqs() == [res.seq]
        await core.stop()

    asyncio.run(main())
    assert "listener bug" in caplog.text
    assert "ZeroDivisionError" in caplog.text


def test_interval_fsync_acks_only_after_the_sync(tmp_path: Path) -> None:
    async def main() -> None:
        core = make(tmp_path, fsync="interval", fsync_interval_ms=20.0)
        await core.start()
        for i in range(5):
            res = await core.deposit(1, "BTC", 1, f"i{i}")
            assert core.durable_seq >= res.seq
        await core.stop()

    asyncio.run(main())


def test_snapshots_are_taken_every_n_commands(tmp_path: Path) -> None:
    async def main() -> None:
        core = make(tmp_path, snapshot_every=10)
        await core.start()
        for i in range(25):
            await core.deposit(1, "BTC", 1, f"n{i}")
        await core.stop()

    asyncio.run(main())
    snaps = sorted((tmp_path / "data" / "snapshots").iterdir())
    assert len(snaps) >= 2
    with DurableEngine(tmp_path / "data") as de:
        assert de.report.snapshot_seq >= 20
        assert de.engine.balances.available(1, "BTC") == 25


def test_a_second_service_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        core = make(tmp_path)
        await core.start()
        other = CoreService(tmp_path / "data", CFG.assets)
        with pytest.raises(Exception, match="held by another process"):
            await other.start()
        await core.stop()

    asyncio.run(main())


def test_accepted_orders_carry_ids(tmp_path: Path) -> None:
    async def main() -> None:
        core = make(tmp_path)
        await core.start()
        await core.ensure_symbols([BTCUSDT])
        await core.deposit(1, "USDT", 10**12, "u")
        res = await core.submit(C.PlaceOrder(1, "BTCUSDT", Side.BUY, OrderType.LIMIT, 1000,
                                             3_000_000))
        acc = res.events[0]
        assert isinstance(acc, OrderAccepted) and acc.order_id == 1
        await core.stop()

    asyncio.run(main())
