"""Bulk writes per dialect, inside the caller's transaction.

SQLAlchemy Core builds every statement except the two hot ones, which go to the driver
directly because per-row parameter processing cost more than the database did
(docs/ledger.md, "Figures"):

* inserts: SQLite gets one ``executemany`` of positional tuples; PostgreSQL gets a
  binary ``COPY ... FROM STDIN`` through psycopg 3 on the same connection (so in the
  same transaction);
* order and balance updates: SQLite runs one ``executemany`` UPDATE; PostgreSQL copies
  the deltas (new values) into a temporary table and runs one ``UPDATE ... FROM`` joined
  on the key (one statement instead of one per row: 300 balance rows per batch took
  ~25 ms as an executemany).

Both check that every update hit exactly one row (``LedgerConflict`` otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any, Protocol

from sqlalchemy import BigInteger, Boolean, Connection, String, Table, bindparam, func, update

from chainbook.ledger import schema as S


class LedgerConflict(RuntimeError):
    """The stored ``last_seq`` moved under this writer (another writer is running) or a
    row the batch updates is missing."""


ORDER_FIELDS = ("open_qty", "status", "price", "qty", "last_trade_seq", "settlement")
_UPD_KEYS = ("oid", "d_filled", *ORDER_FIELDS, "updated_seq")

_orders_upd = (
    update(S.orders)
    .where(S.orders.c.order_id == bindparam("p_oid"))
    .values(
        filled=S.orders.c.filled + bindparam("p_d_filled"),
        updated_seq=bindparam("p_updated_seq"),
        **{f: func.coalesce(bindparam(f"p_{f}"), S.orders.c[f]) for f in ORDER_FIELDS},
    )
)


_balances_upd = (
    update(S.balances)
    .where(S.balances.c.account == bindparam("p_account"))
    .where(S.balances.c.asset == bindparam("p_asset"))
    .values(available=bindparam("p_available"), frozen=bindparam("p_frozen"),
            updated_seq=bindparam("p_updated_seq"))
)
_BAL_KEYS = ("p_account", "p_asset", "p_available", "p_frozen", "p_updated_seq")
BalanceRow = tuple[int, str, int, int, int]  # account, asset, available, frozen, updated_seq


def _check(n: int, want: int, what: str) -> None:
    if n is not None and n >= 0 and n != want:
        raise LedgerConflict(f"{what}: {n} rows updated, expected {want}")


def _update_orders_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    res = conn.execute(_orders_upd, [{f"p_{k}": v for k, v in r.items()} for r in rows])
    _check(res.rowcount, len(rows), "orders")


def _update_balances_many(conn: Connection, rows: Sequence[BalanceRow]) -> None:
    res = conn.execute(_balances_upd, [dict(zip(_BAL_KEYS, r, strict=True)) for r in rows])
    _check(res.rowcount, len(rows), "balances")


class BulkWriter(Protocol):
    def insert(self, conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (tuples in the table's column order)."""
        ...

    def update_orders(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Apply order deltas (keys ``oid``, ``d_filled`` and ORDER_FIELDS, None = keep)."""
        ...

    def update_balances(self, conn: Connection, rows: Sequence[BalanceRow]) -> None:
        """Set existing balance rows to new values."""
        ...


def _pg_type(t: Any) -> str:
    """The PostgreSQL type name binary COPY must be told for a column type."""
    if isinstance(t, BigInteger):
        return "int8"
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, String):
        return "varchar"
    raise TypeError(f"no binary COPY type for {t!r}")


def _columns(table: Table) -> str:
    return ", ".join(table.columns.keys())


class SQLiteBulk:
    """executemany with positional parameters."""

    def __init__(self) -> None:
        self._sql: dict[str, str] = {}

    def insert(self, conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
        sql = self._sql.get(table.name)
        if sql is None:
            marks = ", ".join("?" for _ in table.columns)
            sql = self._sql[table.name] = (f"INSERT INTO {table.name} ({_columns(table)}) "
                                           f"VALUES ({marks})")
        conn.exec_driver_sql(sql, list(rows))

    def update_orders(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        _update_orders_many(conn, rows)

    def update_balances(self, conn: Connection, rows: Sequence[BalanceRow]) -> None:
        _update_balances_many(conn, rows)


class PostgresBulk:
    """COPY into the tables; order deltas through a temporary table."""

    _TEMP = (
        "CREATE TEMPORARY TABLE IF NOT EXISTS ledger_order_delta (oid BIGINT, d_filled BIGINT,"
        " open_qty BIGINT, status VARCHAR(20), price BIGINT, qty BIGINT, last_trade_seq "
        "BIGINT, settlement VARCHAR(8), updated_seq BIGINT) ON COMMIT DELETE ROWS")
    _BAL_TEMP = (
        "CREATE TEMPORARY TABLE IF NOT EXISTS ledger_balance_new (account BIGINT, asset "
        "VARCHAR(16), available BIGINT, frozen BIGINT, updated_seq BIGINT) "
        "ON COMMIT DELETE ROWS")
    _BAL_UPDATE = (
        "UPDATE balances AS b SET available = n.available, frozen = n.frozen, "
        "updated_seq = n.updated_seq FROM ledger_balance_new AS n "
        "WHERE b.account = n.account AND b.asset = n.asset")
    _UPDATE = (
        "UPDATE orders AS o SET filled = o.filled + d.d_filled, updated_seq = d.updated_seq, "
        + ", ".join(f"{f} = COALESCE(d.{f}, o.{f})" for f in ORDER_FIELDS)
        + " FROM ledger_order_delta AS d WHERE o.order_id = d.oid")

    def insert(self, conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cur.copy(f"COPY {table.name} ({_columns(table)}) FROM STDIN (FORMAT BINARY)"
                      ) as cp:
            cp.set_types([_pg_type(c.type) for c in table.columns])
            write = cp.write_row
            for r in rows:
                write(r)

    def update_orders(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if len(rows) < 50:
            return _update_orders_many(conn, rows)
        conn.exec_driver_sql(self._TEMP)
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        get = itemgetter(*_UPD_KEYS)
        with cur.copy(f"COPY ledger_order_delta ({', '.join(_UPD_KEYS)}) FROM STDIN "
                      "(FORMAT BINARY)") as cp:
            cp.set_types(["int8", "int8", "int8", "varchar", "int8", "int8", "int8", "varchar",
                          "int8"])
            for r in rows:
                cp.write_row(get(r))
        n = conn.exec_driver_sql(self._UPDATE).rowcount
        conn.exec_driver_sql("DELETE FROM ledger_order_delta")
        _check(n, len(rows), "orders")

    def update_balances(self, conn: Connection, rows: Sequence[BalanceRow]) -> None:
        if len(rows) < 20:
            return _update_balances_many(conn, rows)
        conn.exec_driver_sql(self._BAL_TEMP)
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cur.copy("COPY ledger_balance_new (account, asset, available, frozen, "
                      "updated_seq) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "varchar", "int8", "int8", "int8"])
            for r in rows:
                cp.write_row(r)
        n = conn.exec_driver_sql(self._BAL_UPDATE).rowcount
        conn.exec_driver_sql("DELETE FROM ledger_balance_new")
        _check(n, len(rows), "balances")


def bulk_writer(dialect: str) -> BulkWriter:
    """The writer for a dialect name ("sqlite" or "postgresql")."""
    return PostgresBulk() if dialect == "postgresql" else SQLiteBulk()
