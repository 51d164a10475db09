"""The log interface the journal shell needs, so another backend (NATS JetStream) can slot in.

A backend is an ordered, append-only sequence of entries ``(seq, ts, item)``: the log
assigns ``seq`` (contiguous from 1), the caller passes ``ts`` (the clock lives in the
shell).  ``append`` only buffers; ``commit`` is the ack point: it makes buffered entries
durable according to the backend's fsync policy and returns the highest durable seq.
Callers acknowledge nothing above that number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Any, Protocol


class FsyncPolicy(StrEnum):
    """When ``commit`` forces written data to stable storage."""

    EVERY = "every"  # fsync on every commit (= per batch): the ack survives power loss
    INTERVAL = "interval"  # fsync at most every N ms; commit returns the fsynced seq
    OFF = "off"  # never fsync: the ack survives a process crash, not an OS crash


class LogError(RuntimeError):
    """The log cannot be used (I/O failure, corruption, misuse)."""


class CorruptLogError(LogError):
    """Acknowledged data in the log is damaged; the log refuses to silently drop it."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path} @ byte {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class AcknowledgedMissing(CorruptLogError):
    """The log ends before a seq that another durable file proves was acknowledged
    (``SegmentLog(keep_seq=...)``): refused before anything is cut."""


class LogBackend(Protocol):
    """An append-only log of ``(seq, ts, item)`` entries with an explicit ack point."""

    @property
    def last_seq(self) -> int:
        """Highest seq assigned so far (buffered entries included); 0 when empty."""
        ...

    @property
    def written_seq(self) -> int:
        """Highest seq handed to the storage (visible to readers; may not be durable)."""
        ...

    @property
    def durable_seq(self) -> int:
        """Highest seq ``commit`` has made durable under the fsync policy."""
        ...

    @property
    def pending(self) -> int:
        """Entries buffered and not yet written."""
        ...

    @property
    def recovery_messages(self) -> list[str]:
        """What opening the log had to repair (tails cut), for the recovery report."""
        ...

    def append(self, ts: int, item: Any) -> int:
        """Buffer one entry; return its seq. Not durable until ``commit``."""
        ...

    def append_batch(self, entries: Iterable[tuple[int, Any]]) -> int:
        """Buffer ``(ts, item)`` entries in order; return the last seq assigned."""
        ...

    def discard_last(self) -> None:
        """Drop the newest entry if it is still only buffered (its seq is reused)."""
        ...

    def drop_pending(self) -> int:
        """Drop every buffered entry; return how many."""
        ...

    def commit(self, upto: int | None = None) -> int:
        """Write buffered entries (only those <= ``upto`` if given) and apply the fsync
        policy; return the highest durable seq: the ack point."""
        ...

    def sync(self) -> int:
        """Force everything written to stable storage now; return the durable seq."""
        ...

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """Block until ``durable_seq >= seq``; False if ``timeout`` passed first."""
        ...

    def read_batches(self, from_seq: int = 1) -> Iterator[tuple[int, list[int], list[Any]]]:
        """Yield ``(first_seq, ts_list, items)`` runs of written entries from ``from_seq``."""
        ...

    def read(self, from_seq: int = 1) -> Iterator[tuple[int, int, Any]]:
        """Yield written entries ``(seq, ts, item)`` from ``from_seq`` in order."""
        ...

    def truncate_after(self, seq: int) -> None:
        """Drop every entry above ``seq`` (used to realign a derived log on recovery)."""
        ...

    def close(self) -> None:
        """Write and sync what is buffered, then release the files."""
        ...
