"""The ledger's only writer: one batch of commands -> one transaction, exactly once.

``LedgerStore.apply(entries)`` drops the entries at or below the stored ``last_seq``
(a duplicate delivery is a no-op), folds the rest into a ``Batch`` and writes it in ONE
transaction that also moves ``ledger_state.last_seq`` (guarded by ``WHERE last_seq =
<previous>``, so a second writer can never apply the same seqs).  A crash anywhere
before COMMIT leaves the previous ledger untouched; after COMMIT the effects and the new
``last_seq`` are there together.  Rows go in with one bulk statement per table
(``bulk``: executemany on SQLite, COPY on PostgreSQL).  Settlement: trades are inserted
SETTLED and their orders marked SETTLED in the same transaction (docs/ledger.md,
"States").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, select, update

from chainbook.ledger import schema as S
from chainbook.ledger.batch import Batch, Entry, LedgerState, build_batch
from chainbook.ledger.bulk import LedgerConflict, bulk_writer
from chainbook.ledger.db import make_engine
from chainbook.ledger.migrate import drop_all, migrate
from chainbook.ledger.postings import SymbolInfo

_withdrawals_upd = (
    update(S.withdrawals)
    .where(S.withdrawals.c.external_id == bindparam("p_external_id"))
    .where(S.withdrawals.c.state == "HELD")
    .values(state=bindparam("p_state"), closed_seq=bindparam("p_closed_seq"))
)


def _bind(rows: Any) -> list[dict[str, Any]]:
    """Rows keyed by column name -> keyed by the ``p_`` bind names of the updates above
    (SQLAlchemy reserves a column's own name for its SET clause)."""
    return [{f"p_{k}": v for k, v in r.items()} for r in rows]


def _tuples(table: Table, rows: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Dict rows -> tuples in ``table``'s column order."""
    get = itemgetter(*table.columns.keys())
    return [get(r) for r in rows]


def _check_rows(result: Any, want: int, what: str) -> None:
    got = result.rowcount
    if got is not None and got >= 0 and got != want:
        raise LedgerConflict(f"{what}: {got} rows updated, expected {want}")


__all__ = ["LedgerConflict", "LedgerStore"]


class LedgerStore:
    """The SQL ledger behind ``url`` (created or migrated on open)."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)
        self._bulk = bulk_writer(self.engine.dialect.name)
        migrate(self.engine)
        self.state = self.load_state()
        # what the database holds; ``state`` (the builder's) may run ahead of it while a
        # pipelined write is in flight (``pipeline.WritePipeline``)
        self.committed_seq, self.committed_ts = self.state.last_seq, self.state.last_ts

    # --- state ---------------------------------------------------------------------------

    def load_state(self) -> LedgerState:
        """Read last_seq, balances, symbols and accounts from the database. O(rows)."""
        st = LedgerState()
        with self.engine.begin() as conn:
            row = conn.execute(select(S.ledger_state.c.last_seq, S.ledger_state.c.last_ts)
                               ).one()
            st.last_seq, st.last_ts = int(row[0]), int(row[1])
            for acct, asset, a, f in conn.execute(select(
                    S.balances.c.account, S.balances.c.asset, S.balances.c.available,
                    S.balances.c.frozen)):
                st.balances[(int(acct), asset)] = (int(a), int(f))
            for name, base, quote, lot, k in conn.execute(select(
                    S.symbols.c.symbol, S.symbols.c.base, S.symbols.c.quote,
                    S.symbols.c.lot_units, S.symbols.c.quote_per_tick_lot)):
                st.symbols[name] = SymbolInfo(base, quote, int(lot), int(k))
            st.accounts = {int(a) for (a,) in conn.execute(select(S.accounts.c.account))}
        return st

    @property
    def last_seq(self) -> int:
        """Seq of the last command applied to the ledger (committed)."""
        return self.committed_seq

    def stored_last_seq(self) -> int:
        """``last_seq`` as the database has it now (a fresh read)."""
        with self.engine.begin() as conn:
            return int(conn.execute(select(S.ledger_state.c.last_seq)).scalar_one())

    # --- write ---------------------------------------------------------------------------

    def apply(self, entries: Sequence[Entry]) -> Batch | None:
        """Apply the entries above ``last_seq`` in one transaction; return the Batch
        written (None if there was nothing new).

        Raises SequenceGap, LedgerMismatch, LedgerConflict or a SQLAlchemy error; the
        database is then unchanged and the in-memory state is reloaded."""
        try:
            batch = self.build(entries)
            if batch is not None:
                self.write(batch)
        except BaseException:
            self.reload()
            raise
        return batch

    def build(self, entries: Sequence[Entry]) -> Batch | None:
        """Fold the entries above the built state's ``last_seq`` into a Batch, advancing
        ``state`` (not ``last_seq``, which moves when ``write`` commits).  None if there
        is nothing new.  If it raises, ``state`` is half-updated: call ``reload``."""
        last = self.state.last_seq
        fresh = [e for e in entries if e[0] > last]
        if not fresh:
            return None
        return build_batch(fresh, self.state)

    def write(self, batch: Batch) -> None:
        """Write ``batch`` and move ``ledger_state.last_seq`` from ``batch.first_seq - 1``
        to ``batch.last_seq`` in ONE transaction, then ``last_seq``.  Any thread may call
        it (one at a time, in seq order); it reads nothing but the batch."""
        with self.engine.begin() as conn:
            self._write(conn, batch, batch.first_seq - 1)
        self.committed_ts = batch.last_ts
        self.committed_seq = batch.last_seq

    def reload(self) -> None:
        """Read the state back from the database (after a failure)."""
        self.state = self.load_state()
        self.committed_seq, self.committed_ts = self.state.last_seq, self.state.last_ts

    def _write(self, conn: Connection, b: Batch, prev_seq: int) -> None:
        ex = conn.execute
        put = self._bulk.insert
        if b.accounts:
            put(conn, S.accounts, _tuples(S.accounts, b.accounts))
        if b.kill_switch:
            ex(update(S.accounts).where(S.accounts.c.account == bindparam("p_acct"))
               .values(kill_switch=bindparam("p_on")),
               [{"p_acct": a, "p_on": on} for a, on in b.kill_switch.items()])
        if b.symbols:
            put(conn, S.symbols, _tuples(S.symbols, b.symbols))
        if b.symbol_status:
            ex(update(S.symbols).where(S.symbols.c.symbol == bindparam("p_sym"))
               .values(status=bindparam("p_st")),
               [{"p_sym": s, "p_st": st} for s, st in b.symbol_status.items()])
        if b.balances_new:
            put(conn, S.balances, [(k[0], k[1], *v) for k, v in b.balances_new.items()])
        if b.balances_upd:
            self._bulk.update_balances(conn, [(k[0], k[1], *v) for k, v in
                                              b.balances_upd.items()])
        if b.orders_new:
            put(conn, S.orders, _tuples(S.orders, b.orders_new.values()))
        if b.orders_upd:
            self._bulk.update_orders(conn, list(b.orders_upd.values()))
        if b.trades:
            put(conn, S.trades, b.trades)
        if b.deposits:
            put(conn, S.deposits, _tuples(S.deposits, b.deposits))
        if b.withdrawals_new:
            put(conn, S.withdrawals, _tuples(S.withdrawals, b.withdrawals_new.values()))
        if b.withdrawals_upd:
            rows = _bind(b.withdrawals_upd.values())
            _check_rows(ex(_withdrawals_upd, rows), len(rows), "withdrawals")
        if b.transfers:
            put(conn, S.transfers, b.transfers)
        res = ex(update(S.ledger_state).where(S.ledger_state.c.id == 1)
                 .where(S.ledger_state.c.last_seq == prev_seq)
                 .values(last_seq=b.last_seq, last_ts=b.last_ts))
        if res.rowcount != 1:
            raise LedgerConflict(f"ledger_state.last_seq is no longer {prev_seq}: another "
                                 "writer applied entries; this batch is rolled back")

    # --- maintenance ---------------------------------------------------------------------

    def reset(self) -> None:
        """Drop every ledger table and create an empty ledger (seq 0)."""
        drop_all(self.engine)
        migrate(self.engine)
        self.reload()

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()
