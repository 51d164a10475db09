"""A small versioned-migration runner for the ledger (chosen over alembic; docs/ledger.md).

``MIGRATIONS`` is an ordered list of ``(version, description, step)``; ``migrate`` applies
the ones above the version recorded in ``ledger_schema``, all in ONE transaction with the
version rows, so a crash leaves the schema at the old version or the new one, never in
between (SQLite and PostgreSQL both have transactional DDL; ``connect.make_engine`` makes
the sqlite3 driver honour it).  PostgreSQL takes an advisory lock first so two processes
starting at once do not both migrate.

Rules for new steps: never edit a released step; write explicit DDL (``ALTER TABLE``...)
rather than ``create_all`` of the current metadata, which only the first step may use.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    select,
)

from chainbook.ledger import schema as S

_meta = MetaData()
ledger_schema = Table(
    "ledger_schema", _meta,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
)

_PG_LOCK_KEY = 0x63686C6564  # "chled": serialises migrations across processes


def _v1_initial(conn: Connection) -> None:
    """Create every table, the fee and world accounts and the ledger_state row."""
    S.metadata.create_all(conn)
    conn.execute(insert(S.accounts), [
        {"account": S.WORLD_ACCOUNT, "kind": "world", "first_seq": 0, "kill_switch": False},
        {"account": S.FEE_ACCOUNT, "kind": "fee", "first_seq": 0, "kill_switch": False},
    ])
    conn.execute(insert(S.ledger_state).values(id=1, last_seq=0, last_ts=0))


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial schema: accounts, symbols, balances, orders, trades, deposits, "
        "withdrawals, postings, ledger_state", _v1_initial),
]

LATEST = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    """The schema version recorded in the database (0 when the ledger does not exist)."""
    if not inspect(conn).has_table("ledger_schema"):
        return 0
    got = conn.execute(select(ledger_schema.c.version).order_by(
        ledger_schema.c.version.desc()).limit(1)).scalar()
    return int(got or 0)


def migrate(engine: Engine) -> list[int]:
    """Bring the schema to ``LATEST``; return the versions applied (empty if current).

    Raises RuntimeError if the database is newer than this build."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        _meta.create_all(conn)
        have = current_version(conn)
        if have > LATEST:
            raise RuntimeError(f"the ledger schema is version {have}; this build knows up "
                               f"to {LATEST}: upgrade chainbook")
        done = []
        for version, description, step in MIGRATIONS:
            if version > have:
                step(conn)
                conn.execute(insert(ledger_schema).values(version=version,
                                                          description=description))
                done.append(version)
        return done


def drop_all(engine: Engine) -> None:
    """Drop every ledger table and the version table (used by ``rebuild``)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        S.metadata.drop_all(conn)
        _meta.drop_all(conn)
