"""Database engines for the ledger: SQLite (embedded default) and PostgreSQL, one code path.

SQLite needs two fixes to behave like a transactional database under the stdlib driver
(Python 3.11 has no ``autocommit`` attribute): the driver's own BEGIN handling is turned
off and SQLAlchemy emits ``BEGIN`` itself, so DDL and reads are inside the transaction
too.  WAL mode lets ``reconcile`` read while the service writes; ``synchronous=NORMAL``
keeps every committed batch across a process crash (a power loss may drop the newest
batches, and ``last_seq`` goes with them, so they are simply applied again).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url

DEFAULT_DB_NAME = "ledger.sqlite"


def default_url(data_dir: str | os.PathLike[str]) -> str:
    """The embedded ledger of a data directory: ``sqlite:///<data>/ledger.sqlite``."""
    return f"sqlite:///{Path(data_dir).resolve() / DEFAULT_DB_NAME}"


def make_engine(url: str, *, busy_timeout_ms: int = 5000) -> Engine:
    """An Engine for ``url`` set up for the ledger (see the module docstring)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        engine = create_engine(u)
        _sqlite_hooks(engine, busy_timeout_ms)
        return engine
    if u.get_backend_name() == "postgresql":
        return create_engine(u, pool_pre_ping=True)
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
