"""The settlement service as a child process of ``chainbook serve`` (``[ledger] mode =
"process"``, the default).

``LedgerProcess(url, data_dir).start()`` starts one thread, the supervisor, which

* runs ``python -m chainbook.ledger run --data DIR --db URL --max-delay-ms 10 --poll-ms 5
  --parent <serve's pid>`` (its own session, so a terminal's Ctrl-C reaches only
  ``serve``, which stops it in order); stdout and stderr are serve's;
* every ``poll_s`` (25 ms) reads the ledger's ``ledger_state.last_seq`` from its database,
  read-only (SQLite: a ``mode=ro`` connection, the file is in WAL mode; PostgreSQL: one
  autocommit connection with ``default_transaction_read_only``), into ``applied_seq``, a
  plain int the gateway reads (orders traded at or below it are SETTLED);
* raises an alert when settlement falls behind: if a command the core had made durable
  ``lag_alert_s`` (30 s) ago is still not applied (a hung or failing ledger, or one that
  cannot keep up), an ``ERROR`` line starting ``ALERT ledger lagging``, ``alerts += 1``
  and ``lagging = True``; cleared, with an INFO line, once the ledger catches up with what
  was durable when the alert started;
* restarts the child when it exits (a warning with its status; backoff 0.5 s doubling to
  30 s, back to 0.5 s once a child ran 30 s);
* on ``stop(durable_seq)`` (after the core committed everything it acknowledged) gives the
  ledger ``grace_s`` to reach ``durable_seq``, sends SIGTERM (the ledger commits its current
  batch and exits), waits ``term_s``, then SIGKILL.  Whatever was not applied is read from
  the journal by the next ledger.

The child must not outlive the server: ``--parent`` makes it set
``prctl(PR_SET_PDEATHSIG, SIGTERM)`` on Linux (``ledger/cli.py``; a ``os.getppid()`` poll
elsewhere).  The kernel sends that signal when the *thread* that forked the child exits,
so the child is started, and stopped, by the supervisor thread, which lives until the
child is gone.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

POLL_S = 0.025  # how often serve reads the ledger's last_seq (the added settlement delay)
RESTART_BASE_S = 0.5
RESTART_MAX_S = 30.0
STABLE_S = 30.0  # a child that ran this long restarts after RESTART_BASE_S again
GRACE_S = 5.0  # at shutdown: how long the ledger may take to reach the durable seq
TERM_S = 10.0  # SIGTERM -> SIGKILL
LAG_ALERT_S = 30.0  # a durable command not settled after this long raises the alert
RECONNECT_S = 1.0  # a failing seq reader is reopened at most this often
READ_TIMEOUT_MS = 2000  # PostgreSQL statement_timeout of the seq reader
SEQ_QUERY = "SELECT last_seq FROM ledger_state WHERE id = 1"
# The child's batching and journal polling (``ledger run --max-delay-ms --poll-ms``; the
# thread's are 2 and 2): serve reads the seq only every POLL_S, so a partial batch may wait
# longer and take more commands per commit: at 500 orders/s the child used 2.3 s of CPU
# per 10 s with 10 ms, 4.0-4.3 s with 2 ms (docs/gateway-performance.md)
MAX_DELAY_MS = 10
TAIL_POLL_MS = 5  # idle: 55-58 CPU ticks per 10 s with 5 ms, 63-78 with 2 ms


class SeqReader(Protocol):
    def read(self) -> int | None:
        """The ledger's last_seq now, or None if it cannot be read (yet)."""

    def close(self) -> None: ...


def ledger_url(url: str, data_dir: Path) -> str:
    """``url``, or the embedded ``sqlite:///<data>/ledger.sqlite`` when empty."""
    if url:
        return url
    from chainbook.ledger.db import default_url

    return default_url(data_dir)


class _PollingReader:
    """Reads ``last_seq`` through one connection, opened lazily and reopened (at most
    every ``retry_s``) after any database error: the ledger may not have created its
    database or table yet, or may be migrating it."""

    retry_s = RECONNECT_S
    errors: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self._conn: Any = None
        self._retry_at = 0.0
        self._warned = False

    def _connect(self) -> Any:
        raise NotImplementedError

    def read(self) -> int | None:
        now = time.monotonic()
        try:
            if self._conn is None:
                if now < self._retry_at:
                    return None
                self._conn = self._connect()
            row = self._conn.execute(SEQ_QUERY).fetchone()
        except self.errors as exc:
            if not self._warned:  # the ledger process reports its own database trouble
                log.info("cannot read the ledger's last_seq yet: %s", exc)
                self._warned = True
            self.close()
            self._retry_at = now + self.retry_s
            return None
        self._warned = False
        return int(row[0]) if row is not None else None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class SqliteSeqReader(_PollingReader):
    """``last_seq`` from a SQLite ledger file, through a read-only connection."""

    retry_s = RECONNECT_S / 10
    errors = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.uri = Path(path).resolve().as_uri() + "?mode=ro"

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.uri, uri=True, isolation_level=None,
                               check_same_thread=False, timeout=0.1)


class PgSeqReader(_PollingReader):
    """``last_seq`` from a PostgreSQL ledger: one autocommit, read-only connection."""

    def __init__(self, url: str) -> None:
        super().__init__()
        import psycopg
        from sqlalchemy import make_url

        from chainbook.ledger.db import pg_params

        self.errors = (psycopg.Error,)
        u = make_url(url)
        self.params: dict[str, Any] = {
            k: v for k, v in (("host", u.host), ("port", u.port), ("user", u.username),
                              ("password", u.password), ("dbname", u.database)) if v}
        for k, v in u.query.items():  # e.g. options=-csearch_path=ledger
            self.params[k] = v if isinstance(v, str) else v[-1]
        # socket limits and server timeouts (ledger/db.py): a hung read fails in 2 s and
        # the connection is reopened, rather than freezing the settlement state
        self.params.update(pg_params(u.query, statement_timeout_ms=READ_TIMEOUT_MS))
        if "connect_timeout" not in u.query:
            self.params["connect_timeout"] = "2"

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(autocommit=True, **self.params)
        try:
            conn.execute("SET default_transaction_read_only = on")
        except BaseException:
            conn.close()
            raise
        return conn


def seq_reader(url: str) -> SeqReader:
    """The reader for a ledger URL (sqlite:// file or postgresql://)."""
    from sqlalchemy import make_url

    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        if not u.database or u.database == ":memory:":
            raise ValueError("[ledger] mode = \"process\" needs a ledger file or server, "
                             f"not an in-memory SQLite ({url!r})")
        return SqliteSeqReader(Path(u.database))
    if backend == "postgresql":
        return PgSeqReader(url)
    raise ValueError(f"unsupported ledger database {backend!r}: use sqlite:// or "
                     "postgresql+psycopg://")


class LedgerProcess:
    """The ledger child of ``serve`` and its supervisor thread (module docstring)."""

    def __init__(self, url: str, data_dir: str | os.PathLike[str], *,
                 poll_s: float = POLL_S, grace_s: float = GRACE_S,
                 term_s: float = TERM_S, durable_seq: Callable[[], int] | None = None,
                 lag_alert_s: float = LAG_ALERT_S) -> None:
        self.data_dir = Path(data_dir)
        self.url = ledger_url(url, self.data_dir)
        self.reader = seq_reader(self.url)
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.term_s = term_s
        self.applied_seq = 0  # what the gateway reads: a plain int, set by the supervisor
        self.restarts = 0
        self.spawns = 0
        self.durable_seq = durable_seq  # the core's durable seq, for the lag alert
        self._rewound: int | None = None  # the logs' end when the ledger was found ahead
        self.lag_alert_s = lag_alert_s
        self.alerts = 0
        self.lagging = False
        self._lag_mark: tuple[float, int] | None = None  # (when, durable seq) seen behind
        self.proc: subprocess.Popen[bytes] | None = None
        self._failures = 0  # consecutive short-lived children
        self._started_at = 0.0
        self._restart_at = 0.0
        self._target = 0  # the seq the ledger should reach before it is stopped
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def command(self) -> list[str]:
        """The child's command line."""
        return [sys.executable, "-m", "chainbook.ledger", "run", "--data",
                str(self.data_dir), "--db", self.url, "--max-delay-ms", f"{MAX_DELAY_MS:g}",
                "--poll-ms", f"{TAIL_POLL_MS:g}", "--parent", str(os.getpid())]

    @property
    def pid(self) -> int | None:
        """The running child's pid (None between a death and its restart)."""
        proc = self.proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def start(self) -> None:
        """Read the current seq, start the supervisor (it starts the child)."""
        if self._thread is not None:
            raise RuntimeError("the ledger process is already running")
        self._check_rewound()
        self._poll_seq()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="ledger-supervisor")
        self._thread.start()

    def stop(self, durable_seq: int) -> None:
        """Let the ledger reach ``durable_seq`` (at most ``grace_s``), stop the child
        (SIGTERM, SIGKILL after ``term_s``) and the supervisor.  Blocking; idempotent."""
        self._target = durable_seq
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(self.grace_s + self.term_s + 5.0)
            if thread.is_alive():
                log.error("the ledger supervisor did not stop")
        self.reader.close()

    # --- the supervisor thread -----------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._poll_seq()
                self._watch_lag(time.monotonic())
                self._supervise()
                self._stop.wait(self.poll_s)
        except Exception:  # noqa: BLE001 - never leave the child behind
            log.exception("the ledger supervisor failed")
        finally:
            self._shutdown()

    def _check_rewound(self) -> None:
        """At start only, before the core takes new commands: a ledger whose last_seq is
        above the recovered logs' end was left behind by --accept-data-loss (it refuses
        to go on: JournalRewound) and names commands that are gone; the new ones reusing
        those seqs are not settled.  (Later, the ledger may legitimately run ahead of
        the core's durable seq: under fsync "interval" a snapshot writes the events of
        applied, not yet fsynced commands.)"""
        seq = self.reader.read()
        if seq is None or self.durable_seq is None:
            return
        durable = self.durable_seq()
        if seq > durable:
            self._rewound = durable
            log.error("the ledger applied up to seq %d but the logs end at %d (cut with "
                      "--accept-data-loss): nothing after %d counts as settled until the "
                      "ledger is rebuilt", seq, durable, durable)

    def _poll_seq(self) -> None:
        seq = self.reader.read()
        if seq is None:
            return
        if self._rewound is not None:
            seq = min(seq, self._rewound)
        self.applied_seq = seq

    def _watch_lag(self, now: float) -> None:
        """The lag alert (module docstring): ``_lag_mark`` is the first moment the ledger
        was seen behind and the durable seq then; the alert fires when that seq is still
        not applied ``lag_alert_s`` later."""
        if self.durable_seq is None:
            return
        applied = self.applied_seq
        mark = self._lag_mark
        if mark is not None and applied >= mark[1]:
            if self.lagging:
                log.info("ledger caught up: applied seq %d (alert cleared)", applied)
                self.lagging = False
            mark = self._lag_mark = None
        if mark is None:
            durable = self.durable_seq()
            if applied < durable:
                self._lag_mark = (now, durable)
            return
        if not self.lagging and now - mark[0] >= self.lag_alert_s:
            self.lagging = True
            self.alerts += 1
            log.error("ALERT ledger lagging: seq %d was durable %.0f s ago and is not "
                      "settled (applied seq %d, ledger process %s)", mark[1], now - mark[0],
                      applied, self.pid or "not running")

    def _supervise(self) -> None:
        now = time.monotonic()
        proc = self.proc
        if proc is not None:
            code = proc.poll()
            if code is None:
                return
            self.proc = None
            if now - self._started_at >= STABLE_S:
                self._failures = 0
            self._failures += 1
            delay = min(RESTART_MAX_S, RESTART_BASE_S * 2 ** (self._failures - 1))
            self._restart_at = now + delay
            log.warning("ledger process %d exited with status %s at seq %d; restarting in "
                        "%.1f s", proc.pid, code, self.applied_seq, delay)
            return
        if now >= self._restart_at:
            self._spawn(now)

    def _spawn(self, now: float) -> None:
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        except OSError as exc:
            self._failures += 1
            delay = min(RESTART_MAX_S, RESTART_BASE_S * 2 ** (self._failures - 1))
            self._restart_at = now + delay
            log.error("cannot start the ledger process: %s; retrying in %.1f s", exc, delay)
            return
        if self.spawns:
            self.restarts += 1
        self.spawns += 1
        self._started_at = now
        log.info("ledger process %d started (%s)", self.proc.pid, self.url)

    def _shutdown(self) -> None:
        proc = self.proc
        if proc is None:
            return
        deadline = time.monotonic() + self.grace_s
        while proc.poll() is None and time.monotonic() < deadline:
            self._poll_seq()
            if self.applied_seq >= self._target:
                break
            time.sleep(0.01)
        if self.applied_seq < self._target:
            log.warning("ledger stopped at seq %d of %d (the next start reads the rest from "
                        "the journal)", self.applied_seq, self._target)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.term_s)
            except subprocess.TimeoutExpired:
                log.warning("ledger process %d ignored SIGTERM for %.0f s: SIGKILL", proc.pid,
                            self.term_s)
                proc.kill()
                proc.wait()
        self._poll_seq()
        if proc.returncode not in (0, -signal.SIGTERM):
            log.warning("ledger process %d exited with status %s", proc.pid, proc.returncode)
