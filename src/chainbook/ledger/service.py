"""The settlement service: tails the event journal and applies it to the SQL ledger.

``LedgerService(db_url, data_dir)`` reads ``<data>/events`` from the ledger's
``last_seq + 1`` (``JournalTail``, read-only, no lock) and applies it in batches: a batch
is written when it holds ``batch_size`` commands or its oldest entry has waited
``max_delay`` seconds.  Entries can also be pushed in-process (``push`` / ``on_batch``,
a ``service.applied.Listener``): the service thread uses them when they continue the
ledger and falls back to the journal for any gap.

Failures: a batch that fails is retried, the same entries in the same order, after
``retry_base * 2**(n-1)`` seconds (capped at ``retry_max``).  After ``alert_after``
consecutive failures the service raises an alert (an error log, ``alerts`` += 1,
``stalled = True``) and keeps retrying at the capped interval; it never skips a batch,
so ``last_seq`` does not move until the batch goes in.  A success clears ``stalled``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from chainbook.journal.codec import RecordType
from chainbook.journal.segment_log import SegmentLog
from chainbook.ledger.batch import Batch, Entry
from chainbook.ledger.db import default_url
from chainbook.ledger.pipeline import WriteFailed, WritePipeline
from chainbook.ledger.source import JournalRewound, JournalTail
from chainbook.ledger.store import LedgerStore
from chainbook.service.applied import Applied

log = logging.getLogger(__name__)

Observer = Callable[[Batch, Sequence[Entry]], None]


class LedgerService:
    """Journal -> ledger, exactly once. See the module docstring."""

    def __init__(self, db_url: str | None = None, data_dir: str | os.PathLike[str] | None = None,
                 *, batch_size: int = 5000, max_delay: float = 0.002,
                 poll_interval: float = 0.002, retry_base: float = 0.05,
                 retry_max: float = 5.0, alert_after: int = 5,
                 observer: Observer | None = None) -> None:
        if db_url is None:
            if data_dir is None:
                raise ValueError("give a database URL or a data directory")
            db_url = default_url(data_dir)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.store = LedgerStore(db_url)
        self.batch_size = batch_size
        self.max_delay = max_delay
        self.poll_interval = poll_interval
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.alert_after = alert_after
        self.observer = observer
        self.push_limit = 100_000
        self.alerts = 0
        self.stalled = False
        self.failures = 0  # consecutive
        self.last_error: BaseException | None = None
        self.tail: JournalTail | None = None
        if self.data_dir is not None:
            self.check_journal()
            self.tail = JournalTail(self.data_dir / "events", self.store.last_seq + 1)
        # batch N+1 is built in the service thread while a writer thread writes batch N
        self.pipe = WritePipeline(self.store, on_commit=self._on_commit,
                                  on_room=self._wake_up)
        self._pending: list[Entry] = []  # the next batch (kept across retries)
        self._first_seen = 0.0
        self._caught_up = False  # the last read found nothing new
        self._retry_at = 0.0
        self._pushed: deque[Entry] = deque()
        self._lock = threading.Lock()  # one writer: the thread or apply_batches
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- state ---------------------------------------------------------------------------

    @property
    def applied_seq(self) -> int:
        """Seq of the last command the ledger holds (committed: settled)."""
        return self.store.last_seq

    def _wake_up(self) -> None:
        self._wake.set()

    def _on_commit(self, batch: Batch, entries: Sequence[Entry]) -> None:
        if self.observer is not None:
            self.observer(batch, entries)

    def check_journal(self) -> None:
        """Raise JournalRewound unless the exchange's logs still hold, at the ledger's
        ``last_seq``, the entry the ledger applied (same seq and ts).  Either log ending
        before it, or another ts there, means commands the ledger holds were dropped
        (``--accept-data-loss``, or an OS crash with fsync off) and the seqs will be
        reused by other commands: the ledger must be rebuilt.  The event journal is read
        first; when it ends before ``last_seq`` (its unsynced tail can be lost with the
        OS, and ``serve`` writes it again from the command log), the command log, fsynced
        before any acknowledgement, decides."""
        st = self.store.state
        if self.data_dir is None or st.last_seq == 0:
            return
        got = JournalTail(self.data_dir / "events", st.last_seq).poll(1)
        where, ts = "journal", got[0][1] if got else None
        if ts is None:
            where, ts = "command log", self._command_ts(st.last_seq)
            if ts is None:
                return  # no command log here (a copied journal): nothing else to check
            if ts < 0:
                raise JournalRewound(f"the command log ends before seq {st.last_seq}, which "
                                     "the ledger applied: commands were dropped; rebuild "
                                     "the ledger")
        if ts != st.last_ts:
            raise JournalRewound(f"{where} seq {st.last_seq} has ts {ts}, the ledger "
                                 f"applied ts {st.last_ts}: the journal was rewritten; "
                                 "rebuild the ledger")

    def _command_ts(self, seq: int) -> int | None:
        """The ts of command ``seq``; -1 if the command log ends before it, None if the
        data directory has no command log (or no longer holds ``seq`` but later ones)."""
        if self.data_dir is None or not (self.data_dir / "commands").is_dir():
            return None
        log = SegmentLog(self.data_dir / "commands", RecordType.COMMAND, readonly=True,
                         verify="tail")
        try:
            for got, ts, _ in log.read(seq):
                return ts if got == seq else None
            return -1
        finally:
            log.close()

    # --- in-process input ----------------------------------------------------------------

    def apply_batches(self, entries: Sequence[Entry]) -> int:
        """Apply ``(seq, ts, events)`` entries now, in one transaction, after whatever the
        service thread has in flight; entries at or below ``applied_seq`` are ignored.
        Return ``applied_seq``. Raises what the store raises."""
        with self._lock:
            try:
                self.pipe.drain()
            except WriteFailed as wf:  # the thread's batch: it retries it
                self._requeue(wf)
                raise wf.cause from None
            try:
                self.pipe.submit(entries)
                self.pipe.drain()
            except WriteFailed as wf:  # only these entries were in flight
                raise wf.cause from None
            return self.store.last_seq

    def push(self, entries: Sequence[Entry]) -> None:
        """Hand entries to the service thread without blocking (it applies them in order)."""
        self._pushed.extend(entries)
        self._wake.set()

    def on_batch(self, batch: list[Applied], live: bool) -> None:
        """``service.applied.Listener``: queue a committed batch for the ledger.

        With a journal to tail, the start-up history (``live`` False) and anything past
        ``push_limit`` queued entries only wake the thread, which reads them from the
        journal instead (bounded memory); without one, everything is queued."""
        if self.tail is not None and (not live or len(self._pushed) >= self.push_limit):
            self._wake.set()
            return
        self.push([(a.seq, a.ts, a.events) for a in batch])

    # --- the loop ------------------------------------------------------------------------

    def _next_entries(self, room: int) -> list[Entry]:
        base = self.pipe.base_seq
        if self._pending and self._pending[0][0] <= base:  # apply_batches went past them
            self._pending = [e for e in self._pending if e[0] > base]
        nxt = base + 1 + len(self._pending)
        pushed = self._pushed
        while pushed and pushed[0][0] < nxt:
            pushed.popleft()
        out: list[Entry] = []
        while pushed and len(out) < room and pushed[0][0] == nxt + len(out):
            out.append(pushed.popleft())
        if out or self.tail is None:
            if out and self.tail is not None:
                self.tail.seek(nxt + len(out))
            return out
        if self.tail.next_seq != nxt:
            self.tail.seek(nxt)
        return self.tail.poll(room)

    def step(self, force: bool = False) -> int:
        """Gather entries and hand a batch to the writer if it is due; return how many
        commands were handed over (0 if none were due, none came, the writer is busy
        with two batches, or a batch failed).  ``applied_seq`` moves when they commit."""
        try:
            self.pipe.check()
        except WriteFailed as wf:
            self._write_failed(wf)
            return 0
        now = time.monotonic()
        if now < self._retry_at:
            return 0
        if not force and not self.pipe.has_room():
            return 0  # the writer wakes the thread when it takes the queued batch
        room = self.batch_size - len(self._pending)
        if room > 0:
            try:
                got = self._next_entries(room)
            except Exception as exc:  # noqa: BLE001 - journal damage: alert, retry, never skip
                self._failed(exc)
                return 0
            self._caught_up = not got
            if not got and not self._pending and self.failures and self.pipe.idle():
                self._recovered("the journal reads again")
            if got:
                if not self._pending:
                    self._first_seen = now
                self._pending.extend(got)
        if not self._pending:
            return 0
        due = (force or len(self._pending) >= self.batch_size or self.failures
               or now - self._first_seen >= self.max_delay)
        if not due:
            return 0
        return self._apply_pending()

    def _apply_pending(self) -> int:
        entries = self._pending
        try:
            with self._lock:
                self.pipe.submit(entries)
                if self.failures:
                    self.pipe.drain()  # recovering: confirm this batch before the next
        except WriteFailed as wf:
            self._write_failed(wf)
            return 0
        except Exception as exc:  # noqa: BLE001 - every failure is retried, never skipped
            self._failed(exc)
            return 0
        self._pending = []
        if self.failures:
            self._recovered(f"batch up to seq {entries[-1][0]} applied")
        return len(entries)

    def _requeue(self, wf: WriteFailed) -> None:
        """Put the entries of unwritten batches back: the failed one becomes the pending
        batch (retried as it was), the rest go in front of the pushed entries."""
        batches = [b for b in wf.batches if b]
        if not batches:
            return
        rest = [e for b in batches[1:] for e in b]
        if self._pending and self._pending is not batches[-1]:
            rest.extend(self._pending)
        self._pending = list(batches[0])
        self._pushed.extendleft(reversed(rest))
        if self.tail is not None:
            self.tail.seek(self.pipe.base_seq + 1 + len(self._pending))

    def _write_failed(self, wf: WriteFailed) -> None:
        self._requeue(wf)
        self._failed(wf.cause)

    def _recovered(self, what: str) -> None:
        log.info("ledger: %s after %d failures", what, self.failures)
        self.failures = 0
        self.stalled = False
        self.last_error = None

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = exc
        delay = min(self.retry_max, self.retry_base * 2 ** (self.failures - 1))
        self._retry_at = time.monotonic() + delay
        what = (f"batch {self._pending[0][0]}..{self._pending[-1][0]}" if self._pending
                else "reading the journal")
        if self.failures >= self.alert_after and not self.stalled:
            self.stalled = True
            self.alerts += 1
            log.error("ALERT ledger stalled at seq %d: %s failed %d times in a row (last: %r); "
                      "retrying every %.3gs, nothing is skipped", self.store.last_seq, what,
                      self.failures, exc, self.retry_max)
        else:
            log.warning("ledger: %s failed (%r), retry %d in %.3fs", what, exc, self.failures,
                        delay)

    def run_once(self) -> int:
        """Apply everything available now (stopping at the first failure) and wait for it
        to commit; return how many commands were applied."""
        before = self.store.last_seq
        while self.step(force=True):
            pass
        self._settle()
        return self.store.last_seq - before

    def _settle(self) -> bool:
        """Wait for the batches in flight; False (and the failure handled) if one failed."""
        try:
            with self._lock:
                self.pipe.drain()
        except WriteFailed as wf:
            self._write_failed(wf)
            return False
        return True

    def run(self, stop_event: threading.Event | None = None, *,
            until_idle: bool = False) -> None:
        """Apply batches until ``stop_event`` is set (or, with ``until_idle``, until the
        journal has nothing more and no batch is pending, in flight or failing); the
        batches in flight are committed before it returns."""
        stop = stop_event or self._stop
        try:
            while not stop.is_set():
                n = self.step()
                if n:
                    continue
                if (until_idle and self._caught_up and not self._pending and not self.failures
                        and self._settle() and not self._pending and not self.failures):
                    return
                if not self.pipe.has_room():
                    wait = 1.0  # the writer wakes us when it takes the queued batch
                elif self._pending and not self.failures:
                    wait = max(0.0, self.max_delay - (time.monotonic() - self._first_seen))
                elif self.failures:
                    wait = max(0.0, self._retry_at - time.monotonic())
                else:
                    wait = self.poll_interval
                if self._wake.wait(min(wait, 1.0) if wait else 0.0):
                    self._wake.clear()
        finally:
            self._settle()

    # --- thread --------------------------------------------------------------------------

    def start_thread(self) -> threading.Thread:
        """Run the service on a daemon thread until ``stop()``."""
        if self._thread is not None:
            raise RuntimeError("the ledger thread is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(self._stop,), daemon=True,
                                        name="ledger")
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread (after its current batch) and release the database."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        """Stop, let the writer finish, and release the database connections."""
        self.stop()
        self._settle()
        self.pipe.close()
        self.store.close()

    # --- rebuild -------------------------------------------------------------------------

    def rebuild(self) -> int:
        """Drop the ledger and apply the whole journal again; return the applied seq."""
        if self.tail is None:
            raise RuntimeError("rebuild needs the data directory's event journal")
        if self._thread is not None:
            raise RuntimeError("stop the ledger thread before rebuilding")
        self._settle()
        with self._lock:
            self.store.reset()
            self.failures = 0
            self._pending = []
            self._pushed.clear()
            self.tail = JournalTail(self.tail.dir, 1)
        while self.run_once():
            pass
        if self.failures:
            raise RuntimeError(f"rebuild stopped at seq {self.applied_seq}: "
                               f"{self.last_error!r}") from self.last_error
        return self.applied_seq
