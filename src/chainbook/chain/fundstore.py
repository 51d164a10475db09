"""Deposits and withdrawals state: SQLite ``<data>/chain-funds.sqlite`` (stdlib sqlite3).

Tables: ``addresses`` (account -> deposit address, both unique), ``blocks`` (the
watcher's recent canonical blocks: number, hash, parent hash), ``deposits`` (one row per
transfer seen, UNIQUE (chain, tx hash, log index)), ``withdrawals`` (one row per
request and its current transaction) and ``meta`` (chain key, last processed height).
Each transition is one SQLite transaction, committed before the caller acts on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chainbook.chain.sqlitedb import SqliteStore

FILENAME = "chain-funds.sqlite"
# deposit states
PENDING, CREDITED, DUST, REJECTED = "PENDING", "CREDITED", "DUST", "REJECTED"
# withdrawal states (docs/chain.md "Withdrawals")
W_STATES = ("REQUESTED", "HELD", "SIGNED", "SENT", "CONFIRMED", "COMPLETED", "FAILED",
            "REFUNDED", "REJECTED")
W_OPEN = ("REQUESTED", "HELD", "SIGNED", "SENT", "CONFIRMED", "FAILED")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS addresses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account INTEGER NOT NULL UNIQUE,
    address TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY, hash BLOB NOT NULL, parent BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS deposits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chain TEXT NOT NULL,
    tx_hash BLOB NOT NULL,
    log_index INTEGER NOT NULL,
    account INTEGER NOT NULL,
    asset TEXT NOT NULL,
    address TEXT NOT NULL,
    raw_amount TEXT NOT NULL,
    units INTEGER NOT NULL,
    dust TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    block_hash BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('PENDING', 'CREDITED', 'DUST', 'REJECTED')),
    external_id TEXT NOT NULL,
    seen_ms INTEGER NOT NULL,
    credited_ms INTEGER,
    orphaned INTEGER NOT NULL DEFAULT 0,
    note TEXT,
    UNIQUE (chain, tx_hash, log_index)
);
CREATE INDEX IF NOT EXISTS deposits_account ON deposits (account, id);
CREATE TABLE IF NOT EXISTS withdrawals (
    id TEXT PRIMARY KEY,
    account INTEGER NOT NULL,
    asset TEXT NOT NULL,
    units INTEGER NOT NULL,
    raw_amount TEXT NOT NULL,
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    chain TEXT,
    tx_hash BLOB, nonce INTEGER, raw_tx BLOB,
    included_block INTEGER, included_hash BLOB,
    sends INTEGER NOT NULL DEFAULT 0,
    apply_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    note TEXT
);
CREATE INDEX IF NOT EXISTS withdrawals_account ON withdrawals (account, apply_ms);
CREATE INDEX IF NOT EXISTS withdrawals_state ON withdrawals (state);
"""


@dataclass(frozen=True, slots=True)
class DepositRow:
    id: int
    chain: str
    tx_hash: bytes
    log_index: int
    account: int
    asset: str
    address: str
    raw_amount: int
    units: int
    dust: int
    block_number: int
    block_hash: bytes
    state: str
    external_id: str
    seen_ms: int
    credited_ms: int | None
    orphaned: int
    note: str | None


@dataclass(frozen=True, slots=True)
class WithdrawalRow:
    id: str
    account: int
    asset: str
    units: int
    raw_amount: int
    address: str
    state: str
    chain: str | None
    tx_hash: bytes | None
    nonce: int | None
    raw_tx: bytes | None
    included_block: int | None
    included_hash: bytes | None
    sends: int
    apply_ms: int
    updated_ms: int
    note: str | None


_D_COLS = ("id, chain, tx_hash, log_index, account, asset, address, raw_amount, units, dust, "
           "block_number, block_hash, state, external_id, seen_ms, credited_ms, orphaned, note")
_W_COLS = ("id, account, asset, units, raw_amount, address, state, chain, tx_hash, nonce, "
           "raw_tx, included_block, included_hash, sends, apply_ms, updated_ms, note")


def _deposit(r: Any) -> DepositRow:
    r = list(r)
    r[7], r[9] = int(r[7]), int(r[9])
    return DepositRow(*r)


def _withdrawal(r: Any) -> WithdrawalRow:
    r = list(r)
    r[4] = int(r[4])
    return WithdrawalRow(*r)


class FundStore(SqliteStore):
    """The deposit and withdrawal tables in one SQLite file (safe to share between threads
    and with other processes: WAL mode, every write one IMMEDIATE transaction)."""

    FILENAME = FILENAME
    SCHEMA = _SCHEMA

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, foreign_keys=False)

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- meta --------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        rows = self._all("SELECT value FROM meta WHERE key = ?", (key,))
        return None if not rows else str(rows[0][0])

    def set_meta(self, key: str, value: str) -> None:
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- addresses ---------------------------------------------------------------------

    def add_address(self, account: int, address: str) -> str:
        """Record ``account``'s deposit address (idempotent); return the stored one."""
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO addresses (account, address) VALUES (?, ?)",
                       (account, address))
            row = db.execute("SELECT address FROM addresses WHERE account = ?",
                             (account,)).fetchone()
        return str(row[0])

    def addresses_after(self, seq: int) -> list[tuple[int, int, str]]:
        """(seq, account, address) of addresses recorded after ``seq``."""
        rows = self._all("SELECT seq, account, address FROM addresses WHERE seq > ? "
                         "ORDER BY seq", (seq,))
        return [(int(s), int(a), str(ad)) for s, a, ad in rows]

    # --- the watcher's blocks ----------------------------------------------------------

    def block_hash(self, number: int) -> bytes | None:
        rows = self._all("SELECT hash FROM blocks WHERE number = ?", (number,))
        return None if not rows else bytes(rows[0][0])

    def lowest_block(self) -> int | None:
        rows = self._all("SELECT MIN(number) FROM blocks")
        return None if rows[0][0] is None else int(rows[0][0])

    def last_height(self) -> int:
        """The last block the watcher processed (-1: none)."""
        v = self.meta("last_height")
        return -1 if v is None else int(v)

    def record_block(self, chain: str, number: int, block_hash: bytes, parent: bytes,
                     deposits: list[dict[str, Any]], keep: int) -> int:
        """Block ``number`` processed: store it and its deposits, move the height, drop
        blocks older than ``keep``; return the deposits newly recorded.

        A transfer already recorded keeps its row (and its external id, so the core
        never credits it twice): the deposits of one transaction are paired, in log
        order, with its recorded rows of the same asset, address and raw amount.  Not by
        log index alone: that index counts logs across the whole block, so a transaction
        re-included by a reorg behind other logs comes back with other indexes."""
        new = 0
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?)",
                       (number, block_hash, parent))
            by_tx: dict[bytes, list[dict[str, Any]]] = {}
            for d in deposits:
                by_tx.setdefault(d["tx_hash"], []).append(d)
            for tx_hash, group in by_tx.items():
                new += self._record_tx(db, chain, number, block_hash, tx_hash, group)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_height', ?)", (str(number),))
            db.execute("DELETE FROM blocks WHERE number < ?", (number - keep,))
        return new

    @staticmethod
    def _record_tx(db: Any, chain: str, number: int, block_hash: bytes, tx_hash: bytes,
                   group: list[dict[str, Any]]) -> int:
        """Record the deposits of one transaction in one block (``record_block``)."""
        rows = db.execute("SELECT id, log_index, asset, address, raw_amount FROM deposits "
                          "WHERE chain = ? AND tx_hash = ? ORDER BY log_index",
                          (chain, tx_hash)).fetchall()
        free = list(rows)
        pairs: list[tuple[dict[str, Any], int | None]] = []
        for d in sorted(group, key=lambda d: d["log_index"]):
            content = (d["asset"], d["address"], str(d["raw_amount"]))
            match = next((r for r in free if (r[2], r[3], r[4]) == content), None)
            if match is not None:
                free.remove(match)
            pairs.append((d, None if match is None else match[0]))
        # indexes may move within the transaction: clear them first (UNIQUE)
        for _d, row_id in pairs:
            if row_id is not None:
                db.execute("UPDATE deposits SET log_index = ? WHERE id = ?",
                           (-1_000_000 - row_id, row_id))
        new = 0
        for d, row_id in pairs:
            if row_id is not None:  # a rescan, or re-included after a reorg
                db.execute("UPDATE deposits SET log_index = ?, block_number = ?, "
                           "block_hash = ?, orphaned = 0 WHERE id = ?",
                           (d["log_index"], number, block_hash, row_id))
                continue
            db.execute(
                "INSERT INTO deposits (chain, tx_hash, log_index, account, asset, address,"
                " raw_amount, units, dust, block_number, block_hash, state, external_id,"
                " seen_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (chain, tx_hash, d["log_index"], d["account"], d["asset"], d["address"],
                 str(d["raw_amount"]), d["units"], str(d["dust"]), number, block_hash,
                 d["state"], d["external_id"], d["seen_ms"]))
            new += 1
        return new

    def rewind(self, chain: str, fork: int) -> tuple[int, list[DepositRow]]:
        """Blocks of ``chain`` above ``fork`` left it: forget them and their PENDING
        deposits (returns how many), flag CREDITED ones as orphaned (returned for the
        alert).  Rows of other (gone) chains are history and stay as they are."""
        with self.tx() as db:
            credited = [_deposit(r) for r in db.execute(
                f"SELECT {_D_COLS} FROM deposits WHERE chain = ? AND block_number > ? "
                "AND state = ? AND orphaned = 0", (chain, fork, CREDITED))]
            dropped = db.execute("DELETE FROM deposits WHERE chain = ? AND block_number > ? "
                                 "AND state != ?", (chain, fork, CREDITED)).rowcount
            db.execute("UPDATE deposits SET orphaned = 1 WHERE chain = ? AND block_number > ? "
                       "AND state = ?", (chain, fork, CREDITED))
            db.execute("DELETE FROM blocks WHERE number > ?", (fork,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_height', ?)", (str(fork),))
        return dropped, credited

    def restart_at(self, chain: str, height: int) -> None:
        """Rescan ``chain`` from ``height + 1`` (restart margin).  Its deposits not yet
        credited above it are forgotten with their blocks: the rescan records again those
        still on the chain, and a reorg while the watcher was stopped (which the rescan
        cannot see: it starts on a canonical block) cannot leave one behind to be
        credited.  Rows of other (gone) chains stay: DUST and REJECTED ones are history
        no rescan brings back."""
        with self.tx() as db:
            db.execute("DELETE FROM deposits WHERE chain = ? AND block_number > ? "
                       "AND state != ?", (chain, height, CREDITED))
            db.execute("DELETE FROM blocks WHERE number > ?", (height,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_height', ?)", (str(height),))

    def bind_chain(self, chain_key: str, reset: bool) -> str | None:
        """Tie the watcher's blocks to ``chain_key``; return the previous key if it was
        another chain.  Another chain is refused (ValueError) unless ``reset``: then the
        block window and height start over and its PENDING deposits are dropped
        (credited ones stay as history)."""
        with self.tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'chain'").fetchone()
            if row is not None and row[0] == chain_key:
                return None
            if row is not None and not reset:
                raise ValueError(f"{self.path} follows chain {row[0]}, not {chain_key}")
            db.execute("DELETE FROM blocks")
            db.execute("DELETE FROM deposits WHERE state = ?", (PENDING,))
            db.execute("DELETE FROM meta WHERE key = 'last_height'")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('chain', ?)", (chain_key,))
            return None if row is None else str(row[0])

    # --- deposits ----------------------------------------------------------------------

    def credited_from(self, chain: str, tx_hash: bytes) -> bool:
        """True if a deposit made by transaction ``tx_hash`` on ``chain`` was credited."""
        return bool(self._all("SELECT 1 FROM deposits WHERE chain = ? AND tx_hash = ? "
                              "AND state = ? LIMIT 1", (chain, tx_hash, CREDITED)))

    def deposits_pending(self, chain: str) -> list[DepositRow]:
        return [_deposit(r) for r in self._all(
            f"SELECT {_D_COLS} FROM deposits WHERE chain = ? AND state = ? ORDER BY id",
            (chain, PENDING))]

    def deposit_done(self, row_id: int, state: str, now_ms: int, note: str | None = None
                     ) -> None:
        """A PENDING deposit -> CREDITED or REJECTED."""
        with self.tx() as db:
            db.execute("UPDATE deposits SET state = ?, credited_ms = ?, note = ? "
                       "WHERE id = ? AND state = ?", (state, now_ms, note, row_id, PENDING))

    def deposits(self, account: int | None = None) -> list[DepositRow]:
        """Deposits (of ``account``), newest first."""
        if account is None:
            return [_deposit(r) for r in self._all(
                f"SELECT {_D_COLS} FROM deposits ORDER BY id DESC")]
        return [_deposit(r) for r in self._all(
            f"SELECT {_D_COLS} FROM deposits WHERE account = ? ORDER BY id DESC", (account,))]

    # --- withdrawals -------------------------------------------------------------------

    def new_withdrawal(self, wid: str, account: int, asset: str, units: int, raw: int,
                       address: str, now_ms: int) -> None:
        """Record a withdrawal request (REQUESTED)."""
        with self.tx() as db:
            db.execute("INSERT INTO withdrawals (id, account, asset, units, raw_amount, "
                       "address, state, apply_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, "
                       "?, ?)", (wid, account, asset, units, str(raw), address, "REQUESTED",
                                 now_ms, now_ms))

    def withdrawal(self, wid: str) -> WithdrawalRow | None:
        rows = self._all(f"SELECT {_W_COLS} FROM withdrawals WHERE id = ?", (wid,))
        return None if not rows else _withdrawal(rows[0])

    def withdrawals(self, account: int | None = None, states: tuple[str, ...] = W_STATES
                    ) -> list[WithdrawalRow]:
        """Withdrawals in ``states`` (of ``account``), oldest first."""
        marks = ",".join("?" * len(states))
        sql = f"SELECT {_W_COLS} FROM withdrawals WHERE state IN ({marks})"
        args: tuple[Any, ...] = states
        if account is not None:
            sql += " AND account = ?"
            args = (*states, account)
        return [_withdrawal(r) for r in self._all(sql + " ORDER BY apply_ms, id", args)]

    def set_withdrawal(self, wid: str, state: str, now_ms: int, *, expect: str | None = None,
                       **fields: Any) -> bool:
        """Move a withdrawal to ``state`` (only from ``expect`` if given) and set
        ``fields``; return False if it was not in ``expect``."""
        if state not in W_STATES:
            raise ValueError(f"unknown withdrawal state {state!r}")
        cols = ["state = ?", "updated_ms = ?"] + [f"{k} = ?" for k in fields]
        args: list[Any] = [state, now_ms, *fields.values(), wid]
        sql = f"UPDATE withdrawals SET {', '.join(cols)} WHERE id = ?"
        if expect is not None:
            sql += " AND state = ?"
            args.append(expect)
        with self.tx() as db:
            return db.execute(sql, args).rowcount == 1
