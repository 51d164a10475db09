"""The chain worker survives a failing settler store: a real ``ChainService`` on the
embedded chain (eth-tester + py-evm) and a real ``CoreService``, its ``chain.sqlite`` made
unwritable by another connection holding ``BEGIN IMMEDIATE`` (the store's busy timeout
shortened to 100 ms through ``svc.call``, on the worker thread).  The worker must stay
alive, say what failed in ``last_error``, go on serving jobs, and once the lock is gone
settle every trade exactly once."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from chainfix import trades

from chainbook.chain.chainservice import ChainService
from chainbook.chain.settings import ChainConfig
from chainbook.chain.store import CONFIRMED, FAILED, PREPARED, SUBMITTED
from chainbook.service.applied import Applied
from chainbook.service.config import default_config
from chainbook.service.core import CoreService

CFG = default_config()
LOCKED = "OperationalError: database is locked"
ALL_STATES = (PREPARED, SUBMITTED, CONFIRMED, FAILED)


@asynccontextmanager
async def running(tmp: Path, **cfg: Any) -> AsyncIterator[ChainService]:
    """A started core and chain service on the embedded chain (fast blocks and steps)."""
    core = CoreService(tmp / "core", CFG.assets, snapshot_mode="inline")
    await core.start()
    svc = ChainService(ChainConfig(step_ms=10, block_time_ms=20, **cfg), tmp / "chain",
                       core, None)
    try:
        await svc.start()
        assert await asyncio.to_thread(svc.wait_ready, 60.0), svc.last_error
        await svc.call(lambda: svc.settler.store._db.execute("PRAGMA busy_timeout = 100"))
        yield svc
    finally:
        await svc.stop()
        await core.stop()


def lock_store(svc: ChainService) -> sqlite3.Connection:
    """Another connection holding the write lock of the settler's SQLite file."""
    db = sqlite3.connect(svc.settler.store.path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    return db


def feed(svc: ChainService, n: int, start: int = 1) -> None:
    """Trades as the core's loop listener hands them over (one command each)."""
    svc.on_batch([Applied(seq, 0, None, [t]) for seq, t in trades(n, start)], True)


async def until(fn: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (got := fn()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return got


async def assert_settled_once(svc: ChainService, n: int, batches: list[int]) -> None:
    """Trades 1..n anchored, each in one batch; batches ``batches`` each on-chain once."""
    store = svc.settler.store
    await until(lambda: store.trade_states() == {"ANCHORED": n}, "every trade anchored")
    rows = store.batches(ALL_STATES)
    assert [(r.batch_id, r.state) for r in rows] == [(b, CONFIRMED) for b in batches]
    assert sum(r.count for r in rows) == n
    assert [store.trade(i) is not None for i in range(1, n + 2)] == [True] * n + [False]
    events = await svc.call(svc.client.batch_events)
    assert [e[0] for e in events] == batches
    assert svc.settler.stats.prepared == len(batches) and svc.settler.unrecorded == 0
    assert not svc._trades


def test_a_locked_store_while_releasing_trades_loses_and_repeats_none(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "chainbook.chain.chainservice")

    async def main() -> None:
        async with running(tmp_path, batch_max_trades=2, batch_max_age_ms=50) as svc:
            assert svc.last_error is None
            blocker = lock_store(svc)
            try:
                feed(svc, 5)  # batch {1, 2} is cut at once: its INSERT meets the lock
                await until(lambda: svc.last_error and LOCKED in svc.last_error,
                            "the locked store in last_error")
                await asyncio.sleep(0.5)  # many more failed periods
                assert svc._thread is not None and svc._thread.is_alive()
                assert any(r.getMessage() == f"chain worker: trades: {LOCKED}"
                           for r in caplog.records), [r.getMessage() for r in caplog.records]
                assert LOCKED in (svc.last_error or "")
                assert blocker.execute("SELECT COUNT(*) FROM trades").fetchone() == (0,)
                assert svc.settler.unrecorded >= 1  # cut, kept in memory, not dropped
                # the worker still serves jobs, and a failing job's error reaches the caller
                assert await svc.call(lambda: 7, timeout_s=5) == 7
                t0 = time.monotonic()
                with pytest.raises(ZeroDivisionError):
                    await svc.call(lambda: 1 // 0, timeout_s=5)
                assert time.monotonic() - t0 < 5
            finally:
                blocker.rollback()
                blocker.close()
            await assert_settled_once(svc, 5, [1, 2, 3])
            # the worker goes on: later trades settle too, after the ones before them
            feed(svc, 2, start=6)
            await assert_settled_once(svc, 7, [1, 2, 3, 4])

    asyncio.run(main())


def test_a_batch_cut_by_age_while_the_store_is_locked_is_recorded_later(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, batch_max_trades=100, batch_max_age_ms=300) as svc:
            blocker = lock_store(svc)
            try:
                feed(svc, 3)  # taken by the settler (no write) and cut when 300 ms old
                await until(lambda: not svc._trades, "the settler to take the trades")
                await until(lambda: svc.last_error == f"settler: {LOCKED}",
                            "the settler's failed write in last_error")
                await asyncio.sleep(0.3)
                assert svc._thread is not None and svc._thread.is_alive()
                assert svc.settler.unrecorded == 1
                assert svc.settler.trade_state(1) == "PENDING"
            finally:
                blocker.rollback()
                blocker.close()
            await assert_settled_once(svc, 3, [1])

    asyncio.run(main())
