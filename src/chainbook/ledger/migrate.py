"""A small versioned-migration runner for the ledger (chosen over alembic; docs/ledger.md).

``MIGRATIONS`` is an ordered list of ``(version, description, step)``; ``migrate`` applies
the ones above the version recorded in ``ledger_schema``, all in ONE transaction with the
version rows, so a crash leaves the schema at the old version or the new one, never in
between (SQLite and PostgreSQL both have transactional DDL; ``connect.make_engine`` makes
the sqlite3 driver honour it).  PostgreSQL takes an advisory lock first so two processes
starting at once do not both migrate.

Rules for new steps: never edit a released step; write explicit DDL (``ALTER TABLE``...)
or create a new table from the current metadata.  Step 1 creates the tables as they were
at version 1: from the current metadata those no later step changed, from the frozen
copies kept here the others (the old ``postings`` table, ``orders`` with its foreign key),
so a fresh ledger goes through every step, as an old one does.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    Engine,
    ForeignKeyConstraint,
    MetaData,
    PrimaryKeyConstraint,
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


# version 1's postings table, frozen here: version 2 replaced it (``_v2_transfers_and_trade_legs``)
_v1_meta = MetaData()
_v1_postings = Table(
    "postings", _v1_meta,
    Column("seq", BigInteger, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("trade_id", BigInteger),
    Column("account", BigInteger, nullable=False),
    Column("asset", String(16), nullable=False),
    Column("bucket", String(9), nullable=False),
    Column("kind", String(17), nullable=False),
    Column("amount", BigInteger, nullable=False),
    PrimaryKeyConstraint("seq", "idx", name="pk_postings"),
    CheckConstraint("amount <> 0", name="ck_postings_amount"),
    CheckConstraint("bucket IN ('available', 'frozen')", name="ck_postings_bucket"),
    CheckConstraint("kind IN ('deposit', 'withdrawal_hold', 'withdrawal', "
                    "'withdrawal_refund', 'trade', 'fee', 'reserve')", name="ck_postings_kind"),
    CheckConstraint("account >= -1", name="ck_postings_account"),
)
# version 1's orders: with a foreign key on account (version 2 dropped it)
S.accounts.to_metadata(_v1_meta)
_v1_orders = S.orders.to_metadata(_v1_meta)
_v1_orders.append_constraint(ForeignKeyConstraint(["account"], ["accounts.account"]))
# tables that a later step creates or changes: version 1 makes them as they were then
_LATER = {"transfers", "orders"}


def _v1_initial(conn: Connection) -> None:
    """Create every table, the fee and world accounts and the ledger_state row."""
    S.metadata.create_all(conn, tables=[t for t in S.metadata.sorted_tables
                                        if t.name not in _LATER])
    _v1_meta.create_all(conn, tables=[_v1_orders, _v1_postings])
    conn.execute(insert(S.accounts), [
        {"account": S.WORLD_ACCOUNT, "kind": "world", "first_seq": 0, "kill_switch": False},
        {"account": S.FEE_ACCOUNT, "kind": "fee", "first_seq": 0, "kill_switch": False},
    ])
    conn.execute(insert(S.ledger_state).values(id=1, last_seq=0, last_ts=0))


def _v2_transfers_and_trade_legs(conn: Connection) -> None:
    """Postings become a view: trade legs computed from ``trades``, every other pair of
    postings one ``transfers`` row; ``orders.account`` loses its foreign key."""
    S.transfers.create(conn)
    # the old rows without trade legs, numbered 0.. per seq in their order, come in
    # pairs (a move out of one bucket, the same amount into another): one transfer each
    conn.exec_driver_sql(
        "WITH p AS (SELECT seq, ROW_NUMBER() OVER (PARTITION BY seq ORDER BY idx) - 1 AS n, "
        "account, asset, bucket, kind, amount FROM postings WHERE trade_id IS NULL) "
        "INSERT INTO transfers (seq, idx, kind, asset, src_account, src_bucket, dst_account, "
        "dst_bucket, amount) "
        "SELECT a.seq, a.n / 2, a.kind, a.asset, "
        "CASE WHEN a.amount < 0 THEN a.account ELSE b.account END, "
        "CASE WHEN a.amount < 0 THEN a.bucket ELSE b.bucket END, "
        "CASE WHEN a.amount < 0 THEN b.account ELSE a.account END, "
        "CASE WHEN a.amount < 0 THEN b.bucket ELSE a.bucket END, "
        "ABS(a.amount) FROM p AS a JOIN p AS b ON b.seq = a.seq AND b.n = a.n + 1 "
        "AND b.amount = -a.amount AND b.asset = a.asset AND b.kind = a.kind "
        "WHERE a.n / 2 * 2 = a.n")
    n_old = conn.exec_driver_sql(
        "SELECT COUNT(*) FROM postings WHERE trade_id IS NULL").scalar_one()
    n_new = conn.exec_driver_sql("SELECT COUNT(*) FROM transfers").scalar_one()
    if n_old != 2 * n_new:
        raise RuntimeError(f"migration 2: {n_old} non-trade postings are not {n_new} pairs "
                           "(two legs of one kind and asset that cancel out): reconcile "
                           "the version-1 ledger, or rebuild it from the journal")
    _v1_postings.drop(conn)
    conn.exec_driver_sql(S.POSTINGS_VIEW)
    fks = inspect(conn).get_foreign_keys("orders")
    if fks:
        _drop_orders_foreign_keys(conn, [str(fk["name"]) for fk in fks])


def _drop_orders_foreign_keys(conn: Connection, names: list[str]) -> None:
    if conn.dialect.name == "postgresql":
        for name in names:
            conn.exec_driver_sql(f'ALTER TABLE orders DROP CONSTRAINT "{name}"')
        return
    # SQLite cannot drop a constraint: copy the table (its documented procedure)
    new = S.orders.to_metadata(MetaData(), name="orders_new")
    new.create(conn)
    cols = ", ".join(S.orders.columns.keys())
    conn.exec_driver_sql(f"INSERT INTO orders_new ({cols}) SELECT {cols} FROM orders")
    conn.exec_driver_sql("DROP TABLE orders")
    conn.exec_driver_sql("ALTER TABLE orders_new RENAME TO orders")


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial schema: accounts, symbols, balances, orders, trades, deposits, "
        "withdrawals, postings, ledger_state", _v1_initial),
    (2, "postings view: trade legs from trades, other postings as transfers; no foreign "
        "key on orders.account", _v2_transfers_and_trade_legs),
]

LATEST = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    """The schema version recorded in the database (0 when the ledger does not exist)."""
    if not inspect(conn).has_table("ledger_schema"):
        return 0
    got = conn.execute(select(ledger_schema.c.version).order_by(
        ledger_schema.c.version.desc()).limit(1)).scalar()
    return int(got or 0)


def migrate(engine: Engine, *, upto: int = LATEST) -> list[int]:
    """Bring the schema to ``upto`` (default ``LATEST``); return the versions applied
    (empty if current).

    Raises RuntimeError if the database is newer than this build."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # a step may rewrite a big ledger: no statement timeout for this transaction
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        _meta.create_all(conn)
        have = current_version(conn)
        if have > LATEST:
            raise RuntimeError(f"the ledger schema is version {have}; this build knows up "
                               f"to {LATEST}: upgrade chainbook")
        done = []
        for version, description, step in MIGRATIONS:
            if have < version <= upto:
                step(conn)
                conn.execute(insert(ledger_schema).values(version=version,
                                                          description=description))
                done.append(version)
        return done


def drop_all(engine: Engine) -> None:
    """Drop every ledger table and the version table (used by ``rebuild``)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        insp = inspect(conn)
        if "postings" in insp.get_view_names():
            conn.exec_driver_sql("DROP VIEW postings")
        S.metadata.drop_all(conn)
        _v1_meta.drop_all(conn, tables=[_v1_postings])
        _meta.drop_all(conn)
