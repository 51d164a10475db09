"""The ledger on SQLite and PostgreSQL: equals the core, balances, exactly once,
rebuildable, reconcilable, and stalls rather than skips."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from chainbook.bench.ledger_bench import Session
from chainbook.domain import commands as C
from chainbook.journal.backend import FsyncPolicy
from chainbook.journal.recovery import DurableEngine, recover
from chainbook.journal.segment_log import SegmentLog, list_segments
from chainbook.ledger import cli
from chainbook.ledger import schema as S
from chainbook.ledger.db import make_engine
from chainbook.ledger.reconcile import reconcile
from chainbook.ledger.service import LedgerService
from chainbook.ledger.source import JournalRewound


def _engine_balances(data: Path) -> dict[tuple[int, str], tuple[int, int]]:
    copy = data.parent / f"copy-{time.monotonic_ns()}"
    shutil.copytree(data, copy)  # recover() may rewrite; keep the session pristine
    engine, _, _ = recover(copy)
    shutil.rmtree(copy)
    return {(a, s): (c[0], c[1]) for a, assets in engine.balances.acct.items()
            for s, c in assets.items()}




def test_session_ledger_equals_engine_and_postings_balance(dump_ledger, db_url, session_dir):
    svc = LedgerService(db_url, session_dir, batch_size=700)
    n = svc.run_once()
    svc.close()
    last = SegmentLog(session_dir / "events", 2, readonly=True).last_seq
    assert n == last == svc.applied_seq
    want = _engine_balances(session_dir)
    got = {(r[0], r[1]): (r[2], r[3]) for r in dump_ledger(db_url)["balances"]}
    assert len(got) > 40
    assert got == {k: v for k, v in want.items() if k in got}
    assert all(v == (0, 0) for k, v in want.items() if k not in got)
    rows = dump_ledger(db_url)
    per_asset: dict[str, int] = {}
    per_cmd: dict[tuple[int, str], int] = {}
    for seq, _idx, _tid, _acct, asset, _b, _k, amount in rows["postings"]:
        per_asset[asset] = per_asset.get(asset, 0) + amount
        per_cmd[(seq, asset)] = per_cmd.get((seq, asset), 0) + amount
    assert per_asset and set(per_asset.values()) == {0}
    assert set(per_cmd.values()) == {0}
    assert {r[-1] for r in rows["trades"]} == {"SETTLED"}
    assert len({r[0] for r in rows["trades"]}) == len(rows["trades"]) > 300
    traded = {r[9] for r in rows["trades"]} | {r[10] for r in rows["trades"]}
    settle = {r[0]: r[13] for r in rows["orders"]}
    assert {settle[o] for o in traded} == {"SETTLED"}
    assert {s for o, s in settle.items() if o not in traded} == {"NONE"}
    assert any(r[5] is not None for r in rows["deposits"])  # chain deposits parsed
    assert {r[4] for r in rows["withdrawals"]} >= {"COMPLETED", "REFUNDED"}
    assert reconcile(db_url, session_dir).ok


def test_duplicate_delivery_is_a_no_op(dump_ledger, db_url, session_dir):
    entries = list(SegmentLog(session_dir / "events", 2, readonly=True).read(1))[:400]
    svc = LedgerService(db_url)
    assert svc.apply_batches(entries[:250]) == 250
    before = dump_ledger(db_url)
    assert svc.apply_batches(entries[:250]) == 250  # the same batch again
    assert svc.apply_batches(entries[100:200]) == 250  # an old slice
    assert dump_ledger(db_url) == before
    assert svc.apply_batches(entries[200:400]) == 400  # overlapping: only 251.. applied
    svc.close()
    fresh = LedgerService(db_url)  # and a new process sees the same
    assert fresh.applied_seq == 400
    fresh.close()


def test_rebuild_equals_incremental(dump_ledger, db_url, second_db_url, session_dir):
    inc = LedgerService(db_url, session_dir, batch_size=97)
    inc.run_once()
    inc.close()
    code = cli.main(["rebuild", "--data", str(session_dir), "--db", second_db_url])
    assert code == 0
    assert dump_ledger(db_url) == dump_ledger(second_db_url)
    again = LedgerService(db_url, session_dir)
    again.rebuild()  # over an existing ledger: dropped and recreated
    again.close()
    assert dump_ledger(db_url) == dump_ledger(second_db_url)


def test_reconcile_reports_a_corrupted_balance_row(db_url, session_dir, capsys):
    svc = LedgerService(db_url, session_dir)
    svc.run_once()
    svc.close()
    assert cli.main(["reconcile", "--data", str(session_dir), "--db", db_url]) == 0
    assert "agree" in capsys.readouterr().out
    eng = sa.create_engine(db_url)
    with eng.begin() as c:
        c.execute(sa.update(S.balances).where(S.balances.c.account == 3)
                  .where(S.balances.c.asset == "BTC")
                  .values(available=S.balances.c.available + 5))
    eng.dispose()
    assert cli.main(["reconcile", "--data", str(session_dir), "--db", db_url]) == 1
    out = capsys.readouterr().out
    assert "account 3 BTC: ledger available=" in out
    assert "its postings sum to" in out and "DIFFER" in out
    assert cli.main(["reconcile", "--data", str(session_dir), "--db", db_url,
                     "--source", "events"]) == 1


def test_a_violated_constraint_retries_then_stalls_without_advancing(db_url, tmp_path, caplog):
    data = tmp_path / "data"
    h = "0x" + "ab" * 32
    with DurableEngine(data, fsync=FsyncPolicy.OFF) as de:
        s = Session(de, 1, accounts=2)
        s.setup()
        good = de.commit()
        # the core dedups by the exact string; the ledger's UNIQUE (tx_hash, log_index)
        # sees the same chain event twice: a double credit it must refuse
        s.submit(C.Deposit(1, "USDT", 5, f"{h}:3"))
        s.submit(C.Deposit(1, "USDT", 5, f"{h.upper().replace('0X', '0x')}:3"))
        de.commit()
    svc = LedgerService(db_url, data, batch_size=good, retry_base=0.01, retry_max=0.02,
                        alert_after=3)
    deadline = time.monotonic() + 20
    while not svc.stalled and time.monotonic() < deadline:
        svc.run_once()
        time.sleep(0.005)
    assert svc.stalled and svc.alerts == 1 and svc.failures >= 3
    assert svc.applied_seq == good  # the good batch went in; the bad one never
    assert svc.store.stored_last_seq() == good
    assert "ALERT ledger stalled" in caplog.text
    err = str(svc.last_error)  # the schema itself refused the second credit
    assert "uq_deposits_chain_event" in err or "deposits.tx_hash, deposits.log_index" in err
    for _ in range(3):  # keeps retrying, never skips, alerts once
        time.sleep(0.03)
        svc.run_once()
    assert svc.applied_seq == good and svc.alerts == 1
    svc.close()


def test_database_unavailable_stalls_then_recovers(tmp_path, session_dir):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    svc = LedgerService(url, session_dir, batch_size=500, retry_base=0.01, retry_max=0.05,
                        alert_after=2)
    svc.store.engine.dispose()
    svc.store.engine = make_engine(url, busy_timeout_ms=10)  # fail fast while locked
    blocker = sqlite3.connect(tmp_path / "ledger.sqlite", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database
    th = threading.Thread(target=svc.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while not svc.stalled and time.monotonic() < deadline:
        time.sleep(0.01)
    assert svc.stalled and svc.applied_seq == 0
    blocker.execute("ROLLBACK")
    blocker.close()
    last = SegmentLog(session_dir / "events", 2, readonly=True).last_seq
    while svc.applied_seq < last and time.monotonic() < deadline:
        time.sleep(0.01)
    svc.stop()
    svc.close()
    assert svc.applied_seq == last and not svc.stalled and svc.alerts == 1


def test_service_thread_follows_a_live_writer_and_pushes(db_url, tmp_path):
    data = tmp_path / "data"
    de = DurableEngine(data, fsync=FsyncPolicy.OFF, segment_bytes=4096)
    s = Session(de, 5, accounts=6)
    s.setup()
    de.commit()
    svc = LedgerService(db_url, data, batch_size=64)
    svc.start_thread()
    try:
        for i in range(600):
            s.random_command()
            if i % 20 == 0:
                de.commit()
        de.commit()
        deadline = time.monotonic() + 20
        while svc.applied_seq < de.last_seq and time.monotonic() < deadline:
            time.sleep(0.01)
        assert svc.applied_seq == de.last_seq
        # pushed entries (what `chainbook serve` hands over) continue the same ledger
        more = []
        for i in range(50):
            seq, events = de.submit(C.Deposit(1, "BTC", 7, f"push-{i}"), s.ts)
            more.append((seq, s.ts, events))
        svc.push(more)  # not committed to the journal yet: only the push has them
        while svc.applied_seq < de.last_seq and time.monotonic() < deadline:
            time.sleep(0.01)
        assert svc.applied_seq == de.last_seq
    finally:
        svc.stop()
        svc.close()
        de.close()
    assert reconcile(db_url, data).ok


def _ledger_caught_up(tmp_path: Path) -> tuple[Path, str, int]:
    """A small session's data directory and a SQLite ledger that applied all of it."""
    data = tmp_path / "data"
    with DurableEngine(data, fsync=FsyncPolicy.OFF) as de:
        s = Session(de, 2, accounts=2)
        s.setup()
        de.commit()
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    svc = LedgerService(url, data)
    last = svc.run_once()
    svc.close()
    return data, url, last


def test_a_rewritten_journal_is_refused_at_start(tmp_path):
    data, url, last = _ledger_caught_up(tmp_path)
    events = SegmentLog(data / "events", 2)  # what a writer's recovery would do
    entries = list(events.read(last))
    events.truncate_after(last - 1)
    events.append(entries[0][1] + 1, entries[0][2])  # same events, another ts
    events.close()
    with pytest.raises(JournalRewound, match="rebuild the ledger"):
        LedgerService(url, data)


def test_logs_cut_below_the_ledger_are_refused_at_start(tmp_path):
    """Both logs cut below what the ledger applied (``--accept-data-loss`` does this):
    the next commands will reuse those seqs, so the ledger must be rebuilt, not skip
    them.  A journal that is only behind the command log (its unsynced tail lost with
    the OS; ``serve`` writes it again) is no reason to refuse."""
    data, url, last = _ledger_caught_up(tmp_path)
    assert last > 3
    events = SegmentLog(data / "events", 2)
    events.truncate_after(last - 2)
    events.close()
    LedgerService(url, data).close()  # behind the command log only: starts
    commands = SegmentLog(data / "commands", 1)
    commands.truncate_after(last - 2)
    commands.close()
    with pytest.raises(JournalRewound, match=f"command log ends before seq {last}"):
        LedgerService(url, data)


def test_journal_damage_stalls_with_an_alert_instead_of_crashing(tmp_path, caplog):
    data = tmp_path / "data"
    with DurableEngine(data, fsync=FsyncPolicy.OFF, segment_bytes=600) as de:
        for i in range(1, 60):
            de.submit(C.Deposit(1, "USDT", 10 + i, f"d{i}"), 1_700_000_000_000_000_000 + i)
            de.commit()
    gone_first, gone = list_segments(data / "events")[2]
    gone.unlink()  # acknowledged entries gone
    svc = LedgerService(f"sqlite:///{tmp_path / 'l.sqlite'}", data, retry_base=0.001,
                        retry_max=0.002, alert_after=2)
    deadline = time.monotonic() + 10
    while not svc.stalled and time.monotonic() < deadline:
        svc.run_once()
        time.sleep(0.003)
    assert svc.stalled and svc.alerts == 1
    assert svc.applied_seq == gone_first - 1  # everything before the hole, nothing after
    assert "ALERT ledger stalled" in caplog.text and "reading the journal" in caplog.text
    svc.close()
