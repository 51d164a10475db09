"""The chain side's small SQLite stores: one file in WAL mode with full fsync, one
connection shared by the chain worker thread and the API under a lock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

S = TypeVar("S", bound="SqliteStore")


class SqliteStore:
    """Base of ``ChainStore`` and ``FundStore``: subclasses set ``FILENAME`` and
    ``SCHEMA`` (idempotent DDL, run at every open)."""

    FILENAME = ""
    SCHEMA = ""

    def __init__(self, path: str | Path, *, foreign_keys: bool = False,
                 timeout: float = 10.0) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=timeout)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        if foreign_keys:
            self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(self.SCHEMA)

    @classmethod
    def in_data_dir(cls: type[S], data_dir: str | Path) -> S:
        """The store at ``<data_dir>/<FILENAME>``."""
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        return cls(Path(data_dir) / cls.FILENAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction (committed on exit, rolled back on error)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
