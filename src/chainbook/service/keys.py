"""Accounts and API keys in SQLite (``<data>/gateway.sqlite``).

The server and the CLI may use the same file at the same time: the database runs in WAL
mode and every write is its own transaction. ``get_key`` serves active keys from a cache:
a key not in the cache is looked up at once (so a key created by ``chainbook apikey
create`` works immediately), and the cache is dropped when another connection changed the
file (``PRAGMA data_version``), checked at most every ``recheck_s`` (1 s by default), so a
revocation by another process takes effect within that interval. The check is a SQLite
call that releases the GIL; on every signed request it cost a GIL hand-off to the core
thread (docs/gateway-performance.md).
Account ids start at 1 (account 0 collects fees and has no keys).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import string
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PERMS = frozenset({"read", "trade", "withdraw"})
_ALPHABET = string.ascii_letters + string.digits
_KEY_LEN = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    account INTEGER NOT NULL REFERENCES accounts(id),
    perms TEXT NOT NULL,
    created INTEGER NOT NULL,
    revoked INTEGER
);
CREATE INDEX IF NOT EXISTS api_keys_account ON api_keys(account);
"""


class KeyStoreError(ValueError):
    """A request the key store refuses (unknown account, bad name or permissions)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An active API key (``gateway.context.ApiKeyInfo``)."""

    key: str
    secret: str
    account: int
    perms: frozenset[str]


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    created_ms: int


def _token() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(_KEY_LEN))


def parse_perms(text: str) -> frozenset[str]:
    """``"read,trade"`` -> frozenset; raise KeyStoreError for unknown or no permissions."""
    perms = frozenset(p.strip() for p in text.split(",") if p.strip())
    _check_perms(perms)
    return perms


def _check_perms(perms: frozenset[str]) -> None:
    if not perms:
        raise KeyStoreError("an API key needs at least one permission "
                            f"({', '.join(sorted(PERMS))})")
    bad = perms - PERMS
    if bad:
        raise KeyStoreError(f"unknown permission(s) {', '.join(sorted(bad))}; "
                            f"allowed: {', '.join(sorted(PERMS))}")


class KeyStore:
    """Accounts and API keys on one SQLite file; safe to share between processes."""

    def __init__(self, path: str | os.PathLike[str], recheck_s: float = 1.0) -> None:
        if recheck_s < 0:
            raise ValueError("recheck_s must not be negative")
        self.path = Path(path)
        self.recheck_s = recheck_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # it holds every API secret: the owner's alone (SQLite gives its -wal and -shm
        # files the same mode); a store made by an older version is tightened too
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        elif self.path.stat().st_mode & 0o077:
            os.chmod(self.path, 0o600)
        self._db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)  # idempotent; the busy timeout covers a race
        self._cache: dict[str, ApiKey] = {}
        self._version = self._data_version()
        self._checked = time.monotonic()

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- accounts --------------------------------------------------------------------

    def create_account(self, name: str) -> int:
        """Create account ``name``; return its id (from 1). KeyStoreError if taken."""
        if not name or len(name) > 64 or name.isdigit() or not all(
                c.isascii() and (c.isalnum() or c in "_.-@") for c in name):
            raise KeyStoreError(f"bad account name {name!r}: 1-64 letters, digits or _.-@, "
                                "not only digits")
        try:
            with self._lock:
                cur = self._db.execute("INSERT INTO accounts(name, created) VALUES (?, ?)",
                                       (name, _now_ms()))
        except sqlite3.IntegrityError:
            raise KeyStoreError(f"account {name!r} already exists") from None
        rowid = cur.lastrowid
        if rowid is None:  # pragma: no cover - an INSERT always sets it
            raise KeyStoreError("account insert returned no id")
        return rowid

    def account_id(self, name: str) -> int | None:
        """The id of account ``name``, or None."""
        with self._lock:
            row = self._db.execute("SELECT id FROM accounts WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def account(self, id_or_name: str | int) -> Account | None:
        """The account with this id (int or digits) or name, or None."""
        by_id = isinstance(id_or_name, int) or (id_or_name.isascii() and id_or_name.isdigit())
        q = f"SELECT id, name, created FROM accounts WHERE {'id' if by_id else 'name'} = ?"
        arg: int | str = int(id_or_name) if by_id else id_or_name
        with self._lock:
            row = self._db.execute(q, (arg,)).fetchone()
        return None if row is None else Account(int(row[0]), row[1], int(row[2]))

    def accounts(self) -> list[Account]:
        """Every account, by id."""
        with self._lock:
            rows = self._db.execute("SELECT id, name, created FROM accounts ORDER BY id")
            return [Account(int(r[0]), r[1], int(r[2])) for r in rows]

    # --- keys ------------------------------------------------------------------------

    def create_key(self, account: int, perms: set[str] | frozenset[str]) -> ApiKey:
        """Create a key for ``account`` with ``perms`` (subset of read, trade, withdraw)."""
        fperms = frozenset(perms)
        _check_perms(fperms)
        if self.account(account) is None:
            raise KeyStoreError(f"unknown account {account}")
        key = ApiKey(_token(), _token(), account, fperms)
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys(key, secret, account, perms, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (key.key, key.secret, account, ",".join(sorted(fperms)), _now_ms()))
        return key

    def get_key(self, key: str) -> ApiKey | None:
        """The active key ``key`` or None; cached, the cache dropped when another
        connection changed the file (checked at most every ``recheck_s``)."""
        now = time.monotonic()
        if now - self._checked >= self.recheck_s:
            self._checked = now
            version = self._data_version()
            if version != self._version:
                self._cache.clear()
                self._version = version
        found = self._cache.get(key)
        if found is not None:
            return found
        with self._lock:
            row = self._db.execute(
                "SELECT key, secret, account, perms FROM api_keys "
                "WHERE key = ? AND revoked IS NULL", (key,)).fetchone()
        if row is None:
            return None
        found = ApiKey(row[0], row[1], int(row[2]), frozenset(row[3].split(",")))
        self._cache[key] = found
        return found

    def revoke_key(self, key: str) -> bool:
        """Revoke ``key``; return False if it was unknown or already revoked."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE api_keys SET revoked = ? WHERE key = ? AND revoked IS NULL",
                (_now_ms(), key))
        self._cache.pop(key, None)
        return cur.rowcount > 0

    def keys(self, account: int | None = None) -> list[ApiKey]:
        """Active keys of ``account`` (every account when None), oldest first."""
        q = "SELECT key, secret, account, perms FROM api_keys WHERE revoked IS NULL"
        args: tuple[int, ...] = ()
        if account is not None:
            q += " AND account = ?"
            args = (account,)
        with self._lock:
            rows = self._db.execute(q + " ORDER BY created, rowid", args).fetchall()
        return [ApiKey(r[0], r[1], int(r[2]), frozenset(r[3].split(","))) for r in rows]

    def _data_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
