"""A ledger that cannot write is noticed, never waited on forever: PostgreSQL connections
carry statement/lock timeouts and TCP keepalives, and the supervisor of the ledger
process raises an alert when a durable command stays unsettled.

Real parts: a PostgreSQL server (a second connection holds a lock the ledger needs), a
real ``python -m chainbook.ledger run`` child blocked by a real SQLite write lock.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from chainbook.journal.segment_log import SegmentLog
from chainbook.ledger.db import make_engine
from chainbook.ledger.service import LedgerService
from chainbook.ledger.store import LedgerStore
from chainbook.service.ledgerproc import LedgerProcess, PgSeqReader


def _wait(cond: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _with_options(url: str, extra: str) -> str:
    """``url`` (whose query holds ``options=...``) with more ``-c`` settings."""
    return url + extra.replace(" ", "%20").replace("=", "%3D")


def test_ledger_connections_carry_timeouts_and_keepalives(pg_url):
    eng = make_engine(pg_url)
    try:
        with eng.connect() as c:
            show = {g: c.exec_driver_sql(f"SHOW {g}").scalar() for g in (
                "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
                "search_path")}
            fd = c.connection.driver_connection.pgconn.socket
            sock = socket.socket(fileno=os.dup(fd))
            try:
                keepalive = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
                idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
                user_timeout = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
            finally:
                sock.close()
    finally:
        eng.dispose()
    assert show["statement_timeout"] == "1min" and show["lock_timeout"] == "10s"
    assert show["idle_in_transaction_session_timeout"] == "1min"
    assert show["search_path"].startswith("t_ledger_")  # the URL's own options are kept
    assert (keepalive, idle, user_timeout) == (1, 10, 30000)
    # a setting given in the URL wins
    eng = make_engine(_with_options(pg_url, " -c lock_timeout=250"))
    try:
        with eng.connect() as c:
            assert c.exec_driver_sql("SHOW lock_timeout").scalar() == "250ms"
    finally:
        eng.dispose()


def test_a_write_blocked_by_a_lock_fails_alerts_and_then_catches_up(pg_url, session_dir):
    url = _with_options(pg_url, " -c lock_timeout=200")
    last = SegmentLog(session_dir / "events", 2, readonly=True).last_seq
    svc = LedgerService(url, session_dir, batch_size=500, retry_base=0.01, retry_max=0.05,
                        alert_after=3)
    holder = sa.create_engine(pg_url)
    conn = holder.connect()
    tx = conn.begin()
    conn.exec_driver_sql("LOCK TABLE ledger_state IN ACCESS EXCLUSIVE MODE")
    try:
        svc.start_thread()
        # without lock_timeout the first batch would wait on the lock for ever
        assert _wait(lambda: svc.stalled, 30), "no alert while the write was blocked"
        assert svc.alerts == 1 and svc.applied_seq == 0
    finally:
        tx.rollback()
        conn.close()
        holder.dispose()
    try:
        assert _wait(lambda: svc.applied_seq == last, 60)
        assert not svc.stalled
    finally:
        svc.stop()
        svc.close()


def test_the_seq_reader_gives_up_on_a_blocked_read_and_reconnects(pg_url):
    LedgerStore(pg_url).close()
    reader = PgSeqReader(pg_url)
    assert reader.read() == 0
    reader.close()  # the next read connects again, while the table is locked
    holder = sa.create_engine(pg_url)
    conn = holder.connect()
    tx = conn.begin()
    conn.exec_driver_sql("LOCK TABLE ledger_state IN ACCESS EXCLUSIVE MODE")
    try:
        t0 = time.monotonic()
        assert reader.read() is None  # statement_timeout 2 s, not a hang
        assert time.monotonic() - t0 < 5
    finally:
        tx.rollback()
        conn.close()
        holder.dispose()
    assert _wait(lambda: reader.read() == 0, 5)  # reopened after RECONNECT_S
    reader.close()


def test_the_supervisor_alerts_while_a_durable_command_stays_unsettled(tmp_path: Path,
                                                                      session_dir, caplog):
    last = SegmentLog(session_dir / "events", 2, readonly=True).last_seq
    db = tmp_path / "ledger.sqlite"
    LedgerStore(f"sqlite:///{db}").close()
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the child cannot write a batch while this is held
    proc = LedgerProcess(f"sqlite:///{db}", session_dir, durable_seq=lambda: last,
                         lag_alert_s=1.0)
    caplog.set_level(logging.INFO, logger="chainbook.service.ledgerproc")
    try:
        proc.start()
        assert _wait(lambda: proc.lagging, 30), "no lag alert"
        assert proc.alerts == 1 and proc.applied_seq == 0
        assert any(r.levelno == logging.ERROR and r.getMessage().startswith(
            "ALERT ledger lagging") for r in caplog.records)
        lock.execute("ROLLBACK")
        assert _wait(lambda: proc.applied_seq == last and not proc.lagging, 60)
        assert proc.alerts == 1  # one alert per episode
        assert any("alert cleared" in r.getMessage() for r in caplog.records)
    finally:
        lock.close()
        proc.stop(last)
