"""Build batch N+1 while batch N is being written: a writer thread behind a short queue.

Building a batch is Python work (postings, rows); writing it is mostly the database's
work, which PostgreSQL does in its own process and SQLite partly without the GIL, so the
two overlap on a multi-core machine (docs/ledger.md, "Figures").

``WritePipeline(store)``: ``submit(entries)`` builds the batch in the caller's thread
(advancing ``store.state``, the builder's view) and queues it; one writer thread writes
the queued batches strictly in order, each in its own transaction that also moves
``ledger_state.last_seq`` (``LedgerStore.write``), so exactly-once is the store's, as
without the pipeline.  ``store.last_seq`` moves only at COMMIT.

A write that fails stops the line: the batches queued behind it are dropped unwritten,
the failure is raised by the next ``submit``, ``drain`` or ``check`` as ``WriteFailed``
carrying the entries of the failed batch first and of the dropped ones after it, in seq
order, for the caller to apply again; before building anything else the pipeline reloads
``store.state`` from the database (which holds exactly the batches before the failed one).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence

from chainbook.ledger.batch import Batch, Entry
from chainbook.ledger.store import LedgerStore

log = logging.getLogger(__name__)

# The GIL switch interval for a process that runs only the ledger (``ledger run`` /
# ``rebuild``, the benchmark): the writer thread gives the GIL up at every socket send of
# a COPY (~32 KB) and then waits up to the interval (default 5 ms) for the builder to hand
# it back, so PostgreSQL sits idle; at 0.5 ms the apply measured 51k -> 57-60k trades/s
# (docs/ledger.md, "Figures").  Not set inside ``serve`` (its threads have other needs).
SWITCH_INTERVAL_S = 0.0005


def tune_process() -> None:
    """Set the switch interval above; call in a process that runs only the ledger."""
    import sys

    sys.setswitchinterval(SWITCH_INTERVAL_S)

OnCommit = Callable[[Batch, Sequence[Entry]], None]


class WriteFailed(RuntimeError):
    """A queued batch failed to write; ``batches`` are the entry lists not written (the
    failed batch first), ``cause`` what the write raised."""

    def __init__(self, cause: BaseException, batches: list[Sequence[Entry]]) -> None:
        super().__init__(f"ledger write failed: {cause!r}")
        self.cause = cause
        self.batches = batches


class WritePipeline:
    """One builder (the callers, one at a time) and one writer thread. See the module
    docstring."""

    def __init__(self, store: LedgerStore, *, depth: int = 1,
                 on_commit: OnCommit | None = None,
                 on_room: Callable[[], None] | None = None) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.store = store
        self.depth = depth  # built batches that may wait behind the one being written
        self.on_commit = on_commit  # called in the writer thread after each COMMIT
        self.on_room = on_room  # called when a queued batch starts or a write fails
        self._cv = threading.Condition()
        self._queue: deque[tuple[Batch, Sequence[Entry]]] = deque()
        self._writing = False
        self._failed: WriteFailed | None = None
        self._stale = False  # store.state ran ahead of a failed write: reload it
        self._closed = False
        self._thread: threading.Thread | None = None

    # --- the builder's side --------------------------------------------------------------

    @property
    def base_seq(self) -> int:
        """The seq the next submitted entries must follow."""
        with self._cv:
            if self._stale or self._failed is not None:
                return self.store.committed_seq
            return self.store.state.last_seq

    def idle(self) -> bool:
        """Nothing queued or being written."""
        with self._cv:
            return not self._queue and not self._writing

    def has_room(self) -> bool:
        """A submit would not wait (or would raise a failure at once)."""
        with self._cv:
            return len(self._queue) < self.depth or self._failed is not None

    def check(self) -> None:
        """Raise WriteFailed if a write failed since the last check (once)."""
        with self._cv:
            failed, self._failed = self._failed, None
        if failed is not None:
            raise failed

    def submit(self, entries: Sequence[Entry]) -> Batch | None:
        """Build the entries above the built seq into a batch and queue it (waiting for
        room); return it, or None if there was nothing new.

        Raises WriteFailed if an earlier batch failed, with these entries appended to its
        ``batches`` (apply them all again, in that order), or what building raised
        (SequenceGap, LedgerMismatch), after the queued batches are written and the
        state reloaded."""
        try:
            with self._cv:
                while len(self._queue) >= self.depth and self._failed is None:
                    self._cv.wait()
            self.check()
            if self._stale:
                self.store.reload()
                self._stale = False
            try:
                batch = self.store.build(entries)
            except BaseException:
                self._stale = True
                self.drain()  # a write failure before this batch is raised instead
                self.store.reload()
                self._stale = False
                raise
            if batch is None:
                return None
            with self._cv:
                if self._closed:
                    raise RuntimeError("the write pipeline is closed")
                self.check()  # a write that failed while this batch was being built
                self._queue.append((batch, entries))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="ledger-writer")
                    self._thread.start()
                self._cv.notify_all()
            return batch
        except WriteFailed as failed:
            failed.batches.append(entries)
            raise

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued batch is committed; raise WriteFailed if one failed.
        False if ``timeout`` ran out first."""
        with self._cv:
            ok = self._cv.wait_for(lambda: self._failed is not None or not (
                self._queue or self._writing), timeout)
        self.check()
        return ok

    def close(self, timeout: float | None = 10.0) -> None:
        """Let the writer finish what is queued, then stop it."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # --- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        cv = self._cv
        while True:
            with cv:
                while not self._queue and not self._closed:
                    cv.wait()
                if not self._queue:
                    return
                batch, entries = self._queue.popleft()
                self._writing = True
                cv.notify_all()
            if self.on_room is not None:
                self.on_room()
            try:
                self.store.write(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the builder
                with cv:
                    dropped = [e for _, e in self._queue]
                    self._queue.clear()
                    self._failed = WriteFailed(exc, [entries, *dropped])
                    self._stale = True
                    self._writing = False
                    cv.notify_all()
                if self.on_room is not None:
                    self.on_room()
                continue
            if self.on_commit is not None:  # before drain() returns
                try:
                    self.on_commit(batch, entries)
                except Exception:  # noqa: BLE001 - an observer must not stop the writer
                    log.exception("ledger: the commit observer failed")
            with cv:
                self._writing = False
                cv.notify_all()


__all__ = ["OnCommit", "WriteFailed", "WritePipeline"]
