"""``[ledger] mode``: parsing, and how serve reads the ledger's seq in process mode."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from chainbook.ledger.db import default_url
from chainbook.ledger.store import LedgerStore
from chainbook.service.config import DEFAULT_TOML, ConfigError, default_config, parse_config
from chainbook.service.ledgerproc import (
    LedgerProcess,
    PgSeqReader,
    SqliteSeqReader,
    ledger_url,
    seq_reader,
)


def _with_ledger(body: str) -> str:
    text, n = re.subn(r"(?ms)^\[ledger\].*?(?=^\[rate_limits\])", f"[ledger]\n{body}\n\n",
                      DEFAULT_TOML)
    assert n == 1
    return text


def test_process_is_the_default_mode() -> None:
    cfg = default_config()
    assert (cfg.ledger, cfg.ledger_mode, cfg.ledger_url) == (True, "process", "")
    assert parse_config(_with_ledger("enabled = true")).ledger_mode == "process"


def test_thread_mode_and_url_parse() -> None:
    cfg = parse_config(_with_ledger('mode = "thread"\nurl = "sqlite:////tmp/x.sqlite"'))
    assert (cfg.ledger_mode, cfg.ledger_url) == ("thread", "sqlite:////tmp/x.sqlite")


@pytest.mark.parametrize("value", ['"proc"', '"THREAD"', "1", "true", '["process"]'])
def test_a_bad_mode_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r'\[ledger\] mode: "process" or "thread"'):
        parse_config(_with_ledger(f"mode = {value}"), "x.toml")


def test_unknown_ledger_key_names_mode_among_the_allowed() -> None:
    with pytest.raises(ConfigError, match="allowed: enabled, mode, url"):
        parse_config(_with_ledger('modes = "thread"'))


def test_sqlite_reader_follows_the_ledger_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    reader = SqliteSeqReader(path)
    try:
        assert reader.read() is None  # no file yet: the child has not created it
        store = LedgerStore(f"sqlite:///{path}")  # creates and migrates it, last_seq 0
        try:
            reader._retry_at = 0.0  # the reader waits 0.1 s before it reopens
            assert reader.read() == 0
            with sqlite3.connect(path) as conn:
                conn.execute("UPDATE ledger_state SET last_seq = 42")
            assert reader.read() == 42
        finally:
            store.close()
        with sqlite3.connect(path) as conn:  # the writer is gone, the reader still reads
            conn.execute("UPDATE ledger_state SET last_seq = 43")
        assert reader.read() == 43
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._conn.execute("UPDATE ledger_state SET last_seq = 0")  # type: ignore[union-attr]
    finally:
        reader.close()


def test_a_ledger_ahead_of_the_logs_settles_nothing_new(tmp_path: Path) -> None:
    """After --accept-data-loss cut the logs below what the ledger applied, the ledger
    refuses to go on and its last_seq names commands that are gone: serve's settled seq
    stays at the logs' end, so new orders reusing those seqs never show SETTLED.  Only
    at start: later the ledger may run ahead of the core's durable seq (fsync
    "interval": a snapshot writes the events of commands not yet fsynced)."""
    path = tmp_path / "ledger.sqlite"
    store = LedgerStore(f"sqlite:///{path}")
    durable = [30]
    lp = LedgerProcess(f"sqlite:///{path}", tmp_path, durable_seq=lambda: durable[0])
    healthy = LedgerProcess(f"sqlite:///{path}", tmp_path, durable_seq=lambda: durable[0])
    try:
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE ledger_state SET last_seq = 49")
        lp._check_rewound()  # what start() does first
        lp._poll_seq()
        assert lp.applied_seq == 30  # not 49: seqs 31..49 are new commands now
        durable[0] = 60
        lp._poll_seq()
        assert lp.applied_seq == 30  # still refusing: nothing after the cut is settled
        durable[0] = 70  # a healthy start: the ledger behind the logs
        healthy._check_rewound()
        durable[0] = 40  # later, ahead of the durable seq for a moment: no latch
        healthy._poll_seq()
        assert healthy.applied_seq == 49
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE ledger_state SET last_seq = 75")
        healthy._poll_seq()
        assert healthy.applied_seq == 75
    finally:
        lp.reader.close()
        healthy.reader.close()
        store.close()


def test_reader_choice_and_urls(tmp_path: Path) -> None:
    assert ledger_url("", tmp_path) == default_url(tmp_path)
    assert isinstance(seq_reader(default_url(tmp_path)), SqliteSeqReader)
    pg = seq_reader("postgresql+psycopg://u:pw@db.example:5433/led?options=-csearch_path%3Dl")
    assert isinstance(pg, PgSeqReader)
    assert pg.params == {
        "host": "db.example", "port": 5433, "user": "u", "password": "pw", "dbname": "led",
        # the URL's options first, then the reader's server-side limits (ledger/db.py)
        "options": "-csearch_path=l -c statement_timeout=2000 -c lock_timeout=10000 "
                   "-c idle_in_transaction_session_timeout=60000",
        "connect_timeout": "2", "keepalives": "1", "keepalives_idle": "10",
        "keepalives_interval": "5", "keepalives_count": "3", "tcp_user_timeout": "30000"}
    # a limit the URL sets is left alone
    own = seq_reader("postgresql+psycopg://u@h/led?options=-c%20statement_timeout%3D9"
                     "&connect_timeout=7&keepalives=0")
    assert own.params["options"] == ("-c statement_timeout=9 -c lock_timeout=10000 "
                                     "-c idle_in_transaction_session_timeout=60000")
    assert (own.params["connect_timeout"], own.params["keepalives"]) == ("7", "0")
    with pytest.raises(ValueError, match="in-memory"):
        seq_reader("sqlite://")
    with pytest.raises(ValueError, match="unsupported"):
        seq_reader("mysql://x/y")


def test_child_command_names_the_parent(tmp_path: Path) -> None:
    lp = LedgerProcess("", tmp_path)
    cmd = lp.command()
    assert cmd[1:4] == ["-m", "chainbook.ledger", "run"]
    assert cmd[cmd.index("--db") + 1] == default_url(tmp_path)
    assert int(cmd[cmd.index("--parent") + 1]) > 1
    assert lp.pid is None and lp.applied_seq == 0
    lp.stop(0)  # never started: nothing to stop


def test_ledger_run_stops_at_once_when_parent_is_not_its_parent(tmp_path: Path) -> None:
    # pid 1 is not this child's parent: as if serve had died before the child started
    out = subprocess.run([sys.executable, "-m", "chainbook.ledger", "run", "--data",
                          str(tmp_path), "--parent", "1"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ledger at seq 0", out.stderr
