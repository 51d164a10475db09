"""The chain settler's persistent state: SQLite ``<data>/chain.sqlite`` (stdlib sqlite3).

Tables: ``batches`` (one row per batch, its state and current transaction),
``trades`` (trade id -> batch id, leaf index, packed trade, state; the primary key makes
a trade belong to one batch only), ``submissions`` (every transaction ever signed for a
batch) and ``meta`` (which chain and contract the rows refer to).  Each state change is
one SQLite transaction, committed before the settler acts on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chainbook.chain.batches import Batch
from chainbook.chain.sqlitedb import SqliteStore

PREPARED, SUBMITTED, CONFIRMED, FAILED = "PREPARED", "SUBMITTED", "CONFIRMED", "FAILED"
ANCHORED = "ANCHORED"  # a trade whose batch is CONFIRMED
FILENAME = "chain.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    trade_count INTEGER NOT NULL,
    first_trade_id INTEGER NOT NULL,
    last_trade_id INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('PREPARED', 'SUBMITTED', 'CONFIRMED', 'FAILED')),
    tx_hash BLOB, nonce INTEGER, raw_tx BLOB,
    included_block INTEGER, included_hash BLOB,
    submissions INTEGER NOT NULL DEFAULT 0,
    reorgs INTEGER NOT NULL DEFAULT 0,
    prepared_ms INTEGER NOT NULL,
    confirmed_ms INTEGER,
    note TEXT
);
CREATE TABLE IF NOT EXISTS trades (
    trade_id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES batches (batch_id),
    leaf_index INTEGER NOT NULL,
    packed BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('PREPARED', 'ANCHORED')),
    UNIQUE (batch_id, leaf_index)
);
CREATE TABLE IF NOT EXISTS submissions (
    tx_hash BLOB PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES batches (batch_id),
    nonce INTEGER NOT NULL,
    sent_ms INTEGER NOT NULL
);
"""


class StoreChainMismatch(RuntimeError):
    """The store holds batches of another chain or contract."""


@dataclass(frozen=True, slots=True)
class BatchRow:
    batch_id: int
    root: bytes
    count: int
    state: str
    tx_hash: bytes | None
    nonce: int | None
    raw_tx: bytes | None
    included_block: int | None
    included_hash: bytes | None
    submissions: int
    reorgs: int
    prepared_ms: int
    confirmed_ms: int | None


@dataclass(frozen=True, slots=True)
class TradeRow:
    trade_id: int
    batch_id: int
    leaf_index: int
    packed: bytes
    state: str


_BATCH_COLS = ("batch_id, root, trade_count, state, tx_hash, nonce, raw_tx, included_block, "
               "included_hash, submissions, reorgs, prepared_ms, confirmed_ms")


class ChainStore(SqliteStore):
    """The settler's tables in one SQLite file (safe to share between threads)."""

    FILENAME = FILENAME
    SCHEMA = _SCHEMA

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, foreign_keys=True)

    # --- meta --------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def bind(self, chain_key: str, contract: str, reset: bool = False) -> bool:
        """Tie the store to ``chain_key`` and ``contract``; return True if it was reset.

        A store holding batches of another chain raises StoreChainMismatch, unless
        ``reset`` (the embedded chain, new at every start) empties it first."""
        want = f"{chain_key}/{contract.lower()}"
        with self.tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'chain'").fetchone()
            if row is not None and row[0] == want:
                return False
            used = db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
            if row is not None and used and not reset:
                raise StoreChainMismatch(
                    f"{self.path} holds batches for {row[0]}, not {want}")
            for table in ("submissions", "trades", "batches"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
            db.execute("INSERT OR REPLACE INTO meta VALUES ('chain', ?)", (want,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('contract', ?)", (contract,))
            return bool(used)

    # --- reads -------------------------------------------------------------------------

    def next_batch_id(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(batch_id) FROM batches").fetchone()
        return int(row[0] or 0) + 1

    def last_trade_id(self) -> int:
        """The highest trade id in any batch (0 if none)."""
        with self._lock:
            row = self._db.execute("SELECT MAX(trade_id) FROM trades").fetchone()
        return int(row[0] or 0)

    def batch(self, batch_id: int) -> BatchRow | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_BATCH_COLS} FROM batches WHERE batch_id = ?",
                                   (batch_id,)).fetchone()
        return None if row is None else BatchRow(*row)

    def batches(self, states: tuple[str, ...] = (PREPARED, SUBMITTED)) -> list[BatchRow]:
        """Batches in ``states``, by id."""
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_BATCH_COLS} FROM batches WHERE state IN ({marks}) "
                "ORDER BY batch_id", states).fetchall()
        return [BatchRow(*r) for r in rows]

    def trade(self, trade_id: int) -> TradeRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT trade_id, batch_id, leaf_index, packed, state FROM trades "
                "WHERE trade_id = ?", (trade_id,)).fetchone()
        return None if row is None else TradeRow(*row)

    def batch_packed(self, batch_id: int) -> list[bytes]:
        """The packed trades of a batch in leaf order."""
        with self._lock:
            rows = self._db.execute("SELECT packed FROM trades WHERE batch_id = ? "
                                    "ORDER BY leaf_index", (batch_id,)).fetchall()
        return [bytes(r[0]) for r in rows]

    def submissions(self, batch_id: int) -> list[tuple[bytes, int]]:
        """(tx hash, nonce) of every transaction signed for a batch, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT tx_hash, nonce FROM submissions WHERE batch_id = ? "
                                    "ORDER BY sent_ms, nonce", (batch_id,)).fetchall()
        return [(bytes(h), int(n)) for h, n in rows]

    def trade_states(self) -> dict[str, int]:
        """Number of trades per state."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM trades GROUP BY state")
            return {str(s): int(n) for s, n in rows}

    # --- transitions -------------------------------------------------------------------

    def prepare(self, batch: Batch, now_ms: int) -> None:
        """Record ``batch`` and its trades (state PREPARED) in one transaction."""
        with self.tx() as db:
            db.execute("INSERT INTO batches (batch_id, root, trade_count, first_trade_id, "
                       "last_trade_id, state, prepared_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (batch.batch_id, batch.root, batch.count, batch.trades[0].trade_id,
                        batch.last_trade_id, PREPARED, now_ms))
            db.executemany("INSERT INTO trades VALUES (?, ?, ?, ?, ?)",
                           [(t.trade_id, batch.batch_id, i, t.pack(), PREPARED)
                            for i, t in enumerate(batch.trades)])

    def submitted(self, batch_id: int, tx_hash: bytes, nonce: int, raw: bytes,
                  now_ms: int) -> None:
        """Batch -> SUBMITTED with this signed transaction (recorded before sending)."""
        with self.tx() as db:
            db.execute("UPDATE batches SET state = ?, tx_hash = ?, nonce = ?, raw_tx = ?, "
                       "submissions = submissions + 1 WHERE batch_id = ?",
                       (SUBMITTED, tx_hash, nonce, raw, batch_id))
            db.execute("INSERT OR IGNORE INTO submissions VALUES (?, ?, ?, ?)",
                       (tx_hash, batch_id, nonce, now_ms))

    def adopted(self, batch_id: int, note: str) -> None:
        """Batch -> SUBMITTED without a transaction of ours: it is already on-chain."""
        with self.tx() as db:
            db.execute("UPDATE batches SET state = ?, note = ? WHERE batch_id = ?",
                       (SUBMITTED, note, batch_id))

    def included(self, batch_id: int, block: int | None, block_hash: bytes | None,
                 reorg: bool = False) -> None:
        """Record (or clear, with None) the block holding the batch; count a reorg."""
        with self.tx() as db:
            db.execute("UPDATE batches SET included_block = ?, included_hash = ?, "
                       "reorgs = reorgs + ? WHERE batch_id = ?",
                       (block, block_hash, int(reorg), batch_id))

    def confirmed(self, batch_id: int, now_ms: int) -> None:
        """Batch -> CONFIRMED and its trades -> ANCHORED, in one transaction."""
        with self.tx() as db:
            db.execute("UPDATE batches SET state = ?, confirmed_ms = ?, raw_tx = NULL "
                       "WHERE batch_id = ?", (CONFIRMED, now_ms, batch_id))
            db.execute("UPDATE trades SET state = ? WHERE batch_id = ?", (ANCHORED, batch_id))

    def failed(self, batch_id: int, note: str) -> None:
        """Batch -> FAILED (needs an operator): ``note`` says why."""
        with self.tx() as db:
            db.execute("UPDATE batches SET state = ?, note = ? WHERE batch_id = ?",
                       (FAILED, note, batch_id))
