"""The pipelined writer (batch N+1 built while batch N is written) on SQLite and
PostgreSQL: strict seq order, exactly once, and a failed write loses and repeats nothing.

Failures are real: another connection renames the ``transfers`` table away, so the
ledger's next write fails inside its transaction, and renames it back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from chainbook.journal.segment_log import SegmentLog
from chainbook.ledger.batch import SequenceGap
from chainbook.ledger.pipeline import WriteFailed, WritePipeline
from chainbook.ledger.service import LedgerService
from chainbook.ledger.store import LedgerStore


def _entries(session_dir: Path, n: int) -> list:
    return list(SegmentLog(session_dir / "events", 2, readonly=True).read(1))[:n]


def _rename(url: str, old: str, new: str) -> None:
    eng = sa.create_engine(url)
    try:
        with eng.begin() as c:
            c.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")
    finally:
        eng.dispose()


def _reference(url: str, entries: list) -> None:
    ref = LedgerStore(url)
    ref.apply(entries)  # one synchronous transaction, no pipeline
    ref.close()


def test_a_failed_write_drops_the_queue_and_the_retry_equals_one_transaction(
        dump_ledger, db_url, second_db_url, session_dir):
    entries = _entries(session_dir, 900)
    _reference(second_db_url, entries)
    store = LedgerStore(db_url)
    committed: list[tuple[int, int]] = []
    pipe = WritePipeline(store, on_commit=lambda b, _e: committed.append((b.first_seq,
                                                                           b.last_seq)))
    a, b, c, d = entries[:300], entries[300:500], entries[500:700], entries[700:]
    assert pipe.submit(a) is not None
    pipe.drain()
    assert store.last_seq == 300 and committed == [(1, 300)]
    _rename(db_url, "transfers", "transfers_away")
    with pytest.raises(WriteFailed) as caught:
        pipe.submit(b)
        pipe.submit(c)  # queued behind b (or refused at once if b already failed)
        pipe.drain()
    lost = [e for batch in caught.value.batches for e in batch]
    assert [e[0] for e in lost] == list(range(301, 701))  # b then c, in order, once
    assert caught.value.batches[0] is b
    assert "transfers" in str(caught.value.cause)
    assert store.last_seq == store.stored_last_seq() == 300  # nothing of b or c went in
    assert committed == [(1, 300)]
    _rename(db_url, "transfers_away", "transfers")
    for batch in caught.value.batches:
        pipe.submit(batch)
    pipe.submit(d)
    pipe.submit(a)  # a duplicate delivery: nothing new
    pipe.drain()
    assert store.last_seq == store.stored_last_seq() == 900
    assert committed == [(1, 300), (301, 500), (501, 700), (701, 900)]
    pipe.close()
    store.close()
    assert dump_ledger(db_url) == dump_ledger(second_db_url)


def test_a_build_error_behind_a_write_in_flight_commits_the_write_first(db_url, session_dir):
    entries = _entries(session_dir, 400)
    store = LedgerStore(db_url)
    pipe = WritePipeline(store)
    pipe.submit(entries[:200])
    with pytest.raises(SequenceGap):
        pipe.submit(entries[201:300])  # seq 201 is missing
    assert store.last_seq == store.stored_last_seq() == 200
    assert store.state.last_seq == 200  # the half-built state was reloaded
    pipe.submit(entries[200:400])
    pipe.drain()
    assert store.stored_last_seq() == 400
    pipe.close()
    store.close()


def test_the_service_thread_rides_out_a_failing_write(dump_ledger, db_url, second_db_url,
                                                      session_dir, caplog):
    last = SegmentLog(session_dir / "events", 2, readonly=True).last_seq
    ref = LedgerService(second_db_url, session_dir, batch_size=1000)
    ref.run_once()
    ref.close()
    svc = LedgerService(db_url, session_dir, batch_size=40, retry_base=0.01,
                        retry_max=0.05, alert_after=1000)
    commits: list[tuple[int, int]] = []
    svc.observer = lambda b, _e: commits.append((b.first_seq, b.last_seq))
    svc.apply_batches(_entries(session_dir, 200))
    _rename(db_url, "transfers", "transfers_away")
    svc.start_thread()
    deadline = time.monotonic() + 30
    try:
        while not svc.failures and time.monotonic() < deadline:
            time.sleep(0.005)
        assert svc.failures
        time.sleep(0.1)
        assert svc.applied_seq == 200  # retrying, not skipping
        _rename(db_url, "transfers_away", "transfers")
        while svc.applied_seq < last and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        svc.stop()
        svc.close()
    assert svc.applied_seq == last and not svc.failures and not svc.stalled
    assert "failed" in caplog.text
    # every commit continued the previous one: strict order, nothing twice, no hole
    assert commits[0] == (1, 200) and commits[-1][1] == last
    assert all(nxt[0] == prev[1] + 1 for prev, nxt in zip(commits, commits[1:],
                                                          strict=False))
    assert dump_ledger(db_url) == dump_ledger(second_db_url)


def test_apply_batches_waits_for_the_thread_and_keeps_order(dump_ledger, db_url,
                                                            second_db_url, session_dir):
    entries = _entries(session_dir, 700)
    _reference(second_db_url, entries)
    svc = LedgerService(db_url, batch_size=50)
    svc.push(entries[:400])
    # not until_idle: the thread could find itself idle and return before the last push
    th = threading.Thread(target=svc.run)
    th.start()
    got = svc.apply_batches(entries[:600])  # overlaps whatever the thread applied
    svc.push(entries[600:])  # the thread continues after it
    deadline = time.monotonic() + 30
    while svc.applied_seq < 700 and time.monotonic() < deadline:
        time.sleep(0.005)
    svc.stop()
    th.join(30)
    assert got == 600
    assert svc.applied_seq == svc.store.stored_last_seq() == 700
    svc.close()
    assert dump_ledger(db_url) == dump_ledger(second_db_url)
