"""Database engines for the ledger: SQLite (embedded default) and PostgreSQL, one code path.

SQLite needs two fixes to behave like a transactional database under the stdlib driver
(Python 3.11 has no ``autocommit`` attribute): the driver's own BEGIN handling is turned
off and SQLAlchemy emits ``BEGIN`` itself, so DDL and reads are inside the transaction
too.  WAL mode lets ``reconcile`` read while the service writes; ``synchronous=NORMAL``
keeps every committed batch across a process crash (a power loss may drop the newest
batches, and ``last_seq`` goes with them, so they are simply applied again).

PostgreSQL connections get limits, so that a hung server or network fails a batch (which
is retried, and alerts after a few failures) instead of stalling settlement silently:
``statement_timeout`` (a batch's COPY takes ~0.1 s; 60 s is a server in trouble),
``lock_timeout`` (only another writer or a migration can hold the ledger's locks),
``idle_in_transaction_session_timeout`` (a writer that died mid-transaction releases its
locks), TCP keepalives and ``tcp_user_timeout`` (a peer that vanished, or sent data that is
never acknowledged, is noticed in ~30 s rather than after the kernel's ~15 minutes).  A
setting already in the URL (``options=-c...`` or a libpq parameter) wins over these.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url

DEFAULT_DB_NAME = "ledger.sqlite"
STATEMENT_TIMEOUT_MS = 60_000
LOCK_TIMEOUT_MS = 10_000
IDLE_IN_TRANSACTION_MS = 60_000
# libpq connection parameters: keepalive probes after 10 s idle, every 5 s, 3 lost = dead;
# unacknowledged data for 30 s = dead (Linux TCP_USER_TIMEOUT)
PG_SOCKET_PARAMS = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5",
                    "keepalives_count": "3", "tcp_user_timeout": "30000",
                    "connect_timeout": "10"}


def default_url(data_dir: str | os.PathLike[str]) -> str:
    """The embedded ledger of a data directory: ``sqlite:///<data>/ledger.sqlite``."""
    return f"sqlite:///{Path(data_dir).resolve() / DEFAULT_DB_NAME}"


def pg_params(query: Mapping[str, str | Sequence[str]], *,
              statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> dict[str, str]:
    """libpq parameters to add to a connection whose URL has ``query``: the socket
    limits and, in ``options``, the server-side timeouts (0 = no statement timeout), each
    only where the URL does not set it already."""
    out = {k: v for k, v in PG_SOCKET_PARAMS.items() if k not in query}
    given = query.get("options", "")
    opts = given if isinstance(given, str) else " ".join(given)
    extra = [f"-c {name}={value}" for name, value in (
        ("statement_timeout", statement_timeout_ms), ("lock_timeout", LOCK_TIMEOUT_MS),
        ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_MS))
        if name not in opts]
    out["options"] = " ".join([opts, *extra]).strip()
    return out


def make_engine(url: str, *, busy_timeout_ms: int = 5000,
                statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> Engine:
    """An Engine for ``url`` set up for the ledger (see the module docstring);
    ``statement_timeout_ms`` applies to PostgreSQL (0: none, for long audit reads)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        engine = create_engine(u)
        _sqlite_hooks(engine, busy_timeout_ms)
        return engine
    if u.get_backend_name() == "postgresql":
        return create_engine(u, pool_pre_ping=True, connect_args=pg_params(
            u.query, statement_timeout_ms=statement_timeout_ms))
    raise ValueError(f"unsupported ledger database {u.get_backend_name()!r}: use sqlite:// "
                     "or postgresql+psycopg://")


def _sqlite_hooks(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")
