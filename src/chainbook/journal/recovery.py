"""Recovery and the durable shell around the core: log first, apply, ack on commit.

Directory layout: ``commands/`` (the command log, the redo log and the truth),
``events/`` (the event journal, derived), ``snapshots/`` and a ``LOCK`` file that keeps a
second process from writing the same directory.

Ordering (docs/journal.md has the full argument):

1. ``submit`` appends the command to the command log's buffer, which assigns its seq;
2. only then the engine applies it; its events go to the event journal's buffer;
3. ``commit`` writes and syncs the command log and returns the durable seq: the ack
   point; only then does it write the events of commands up to that seq, so the event
   journal never holds an event whose command is not durable.  Events are a pure
   function of the durable command prefix, so the journal is written without fsync and
   rebuilt on recovery wherever it falls short.

Recovery: cut torn tails, drop journal entries beyond the command log, load the newest
snapshot that verifies and is not ahead of either log (fall back to older ones), replay
the command log after it, and rewrite the events the journal is missing.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainbook.book.book import OrderBook
from chainbook.domain.commands import Command
from chainbook.domain.events import Event
from chainbook.engine.engine import Engine
from chainbook.engine.state import import_state, state_hash
from chainbook.journal.backend import (
    AcknowledgedMissing,
    CorruptLogError,
    FsyncPolicy,
    LogBackend,
    LogError,
)
from chainbook.journal.codec import RecordType
from chainbook.journal.segment_log import (
    DEFAULT_SEGMENT_BYTES,
    SegmentLog,
    UnencodableEntry,
    fsync_dir,
    list_segments,
)
from chainbook.journal.snapshot import (
    SnapshotJob,
    SnapshotStore,
    SnapshotWriter,
    read_header,
)

# Buffered events are tuples.  The event journal keeps each command's events until the
# commit writes them.  Kept as the engine's lists, every command would leave one more
# GC-tracked container alive: the collector then runs every ~700 commands and promotes
# the lists into the older generations, whose scans cost ~0.4 us per command on the
# benchmark mix.  A tuple of events (structs with gc=False) is untracked by the first
# collection that sees it and, when it comes from the tuple free list, is not even
# counted as an allocation; msgpack encodes it exactly like the list.

_EVENT_FLUSH = 10_000  # regenerated events are written in runs of this many commands

log = logging.getLogger(__name__)


class JournalLocked(LogError):
    """Another live process holds the directory."""


class EngineFailure(RuntimeError):
    """The engine raised while applying a command: the in-memory state is suspect."""


class RecoveryError(LogError):
    """The directory cannot be brought back to a consistent state automatically."""


@dataclass
class RecoveryReport:
    """What recovery found and did."""

    last_seq: int = 0
    snapshot_seq: int = 0
    snapshot_path: str | None = None
    skipped_snapshots: list[tuple[str, str]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # tails cut, entries dropped
    replayed: int = 0
    events_rewritten: int = 0
    events_dropped: int = 0
    load_seconds: float = 0.0
    replay_seconds: float = 0.0
    seconds: float = 0.0


class _PairAppender:
    """``(ts_append, item_append)`` over any ``LogBackend.append``: the first call keeps
    the ts, the second appends the entry."""

    def __init__(self, log: LogBackend) -> None:
        self._append = log.append
        self._ts = 0

    def ts(self, ts: int) -> None:
        self._ts = ts

    def item(self, item: Any) -> None:
        self._append(self._ts, item)


def _appenders(log: LogBackend) -> tuple[Callable[[int], None], Callable[[Any], None]]:
    """How ``submit`` buffers an entry: call the first with its ts, then the second with
    its item (a SegmentLog's own list appends, else a ``_PairAppender``)."""
    if isinstance(log, SegmentLog):
        return log.pending_appenders()
    pair = _PairAppender(log)
    return pair.ts, pair.item


def _lock(path: Path, timeout: float) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise JournalLocked(f"{path}: held by another process") from None
            time.sleep(0.01)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class DurableEngine:
    """An engine whose every acknowledged command survives a crash.

    Opening recovers ``directory`` (see ``report``).  ``fsync``/``fsync_interval_ms``/
    ``background_sync`` set the command log's ack policy (``SegmentLog``); ``verify_log``
    is "all" (check every segment's CRCs on open) or "tail" (the last one; older
    segments are checked when replay or a reader reads them); ``events``
    keeps the event journal; ``snapshot_mode`` is "fork" or "inline"; ``command_log`` /
    ``event_log`` plug in another ``LogBackend`` (e.g. JetStream) instead of the segment
    files.  Not thread-safe: one thread submits, commits and snapshots.

    A forked snapshot is checked on without blocking by ``poll_snapshot`` (the owner
    calls it after each batch; ``snapshot`` and ``close`` call it too): a finished writer
    is reaped at once, a success logged at INFO, a failure logged once at ERROR and
    counted in ``snapshot_failures`` (with snapshots that could not even start)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy | str = FsyncPolicy.EVERY,
        fsync_interval_ms: float = 5.0,
        background_sync: bool = False,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        verify_log: str = "all",
        events: bool = True,
        keep_snapshots: int = 3,
        snapshot_mode: str = "fork",
        book_factory: Callable[[], Any] = OrderBook,
        verify_import: bool = False,
        lock_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        command_log: LogBackend | None = None,
        event_log: LogBackend | None = None,
        accept_loss: bool = False,
    ) -> None:
        t0 = time.perf_counter()
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.dir / "LOCK", lock_timeout)
        self._failed: BaseException | None = None
        self._closed = False
        self.snapshot_failures = 0  # snapshots that failed (to start or to be written)
        self.snapshots_written = 0
        try:
            # events derive from durable commands: written, never fsynced (module doc)
            self.events: LogBackend | None = None
            moved_events: str | None = None
            if events and event_log is not None:
                self.events = event_log
            elif events:
                try:
                    self.events = self._open_events(segment_bytes, verify_log)
                except CorruptLogError as exc:
                    # derived data: set the damaged journal aside and write it again
                    # from the command log (a full replay, see _recover)
                    moved_events = f"{exc}; moved to {self._set_aside_events()}"
                    self.events = self._open_events(segment_bytes, verify_log)
            self.store = SnapshotStore(self.dir / "snapshots", keep=keep_snapshots)
            keep = self._keep = 0 if accept_loss else self._acknowledged(FsyncPolicy(fsync))
            try:
                self.commands: LogBackend = command_log or SegmentLog(
                    self.dir / "commands", RecordType.COMMAND, segment_bytes=segment_bytes,
                    fsync=fsync, fsync_interval_ms=fsync_interval_ms,
                    background=background_sync, verify=verify_log, clock=clock,
                    keep_seq=keep)
            except AcknowledgedMissing as exc:
                raise RecoveryError(f"{exc}. Nothing was changed. Restore the command "
                                    "log from a backup, or start with accept_loss "
                                    "(chainbook serve --accept-data-loss) to drop them "
                                    "for good") from exc
            # a forked writer closes every inherited fd (the LOCK too) but its pipe
            self.writer = SnapshotWriter(self.store, snapshot_mode)
            self.report = RecoveryReport()
            if moved_events is not None:
                self.report.messages.append(f"event journal damaged, rebuilt from the "
                                            f"command log: {moved_events}")
            self.engine = self._recover(book_factory, verify_import)
            self.report.seconds = time.perf_counter() - t0
        except BaseException:
            self._release()
            raise
        # the hot path's bound methods: a SegmentLog takes an entry with two C-level list
        # appends, no Python call; the seq is counted here (the log's last_seq + 1)
        self._seq = self.commands.last_seq
        self._cmd_ts, self._cmd_item = _appenders(self.commands)
        self._ev_ts: Callable[[int], None] | None = None
        self._ev_item: Callable[[Any], None] | None = None
        if self.events is not None:
            self._ev_ts, self._ev_item = _appenders(self.events)
        self._apply = self.engine.apply
        self._durable = self.commands.durable_seq

    # --- recovery --------------------------------------------------------------------

    def _open_events(self, segment_bytes: int, verify: str) -> SegmentLog:
        """The event journal's segment log; CorruptLogError if it is damaged, or if its
        first segments are gone (it is never pruned: it starts at seq 1)."""
        log = SegmentLog(self.dir / "events", RecordType.EVENTS, segment_bytes=segment_bytes,
                         fsync=FsyncPolicy.OFF, verify=verify)
        segs = list_segments(log.dir)
        if segs and segs[0][0] != 1:
            log.close()
            raise CorruptLogError(str(segs[0][1]), 0, f"the event journal starts at seq "
                                  f"{segs[0][0]}, not 1")
        return log

    def _set_aside_events(self) -> str:
        """Rename ``events/`` to the first free ``events.damaged-<n>``; return it."""
        n = 1
        while (self.dir / f"events.damaged-{n}").exists():
            n += 1
        dst = self.dir / f"events.damaged-{n}"
        os.replace(self.dir / "events", dst)
        fsync_dir(self.dir)
        return str(dst)

    def _acknowledged(self, policy: FsyncPolicy) -> int:
        """The highest seq other durable files prove was acknowledged: a snapshot is
        taken only after an fsync of everything applied (any policy), and with fsync
        ``every`` or ``interval`` the event journal is written only for fsynced (so
        acknowledged) commands (``_events_upto``: up to the command log's durable seq).
        The command log must reach it: a tail cut below it would drop acknowledged
        commands (and their events, and the snapshot would be skipped and later loaded
        again), so opening refuses instead, unless ``accept_loss``.  With ``off`` the
        durable seq is only what was handed to the OS, so the journal proves nothing."""
        seqs = self.store.seqs()
        keep = seqs[-1] if seqs else 0
        if policy is not FsyncPolicy.OFF and self.events is not None:
            keep = max(keep, self.events.last_seq)
        return keep

    def _recover(self, book_factory: Callable[[], Any], verify_import: bool) -> Engine:
        rep = self.report
        cmds, evs = self.commands, self.events
        rep.messages.extend(cmds.recovery_messages)
        n = cmds.last_seq
        if n < self._keep:  # a plugged-in backend that does not check keep_seq itself
            raise RecoveryError(f"the command log ends at seq {n}, but seq {self._keep} was "
                                "acknowledged (the event journal or a snapshot holds it)")
        e = n
        if evs is not None:
            rep.messages.extend(evs.recovery_messages)
            e = evs.last_seq
            if e > n:
                evs.truncate_after(n)
                rep.events_dropped = e - n
                rep.messages.append(f"event journal had {e - n} entries beyond the command "
                                    f"log (seq {n + 1}..{e}): dropped")
                e = n
        rep.messages.extend(f"removed stale temp file {p}" for p in self.store.clean_temp())
        # snapshots beyond the log (only with accept_loss): set aside, never loaded later
        rep.messages.extend(f"snapshot beyond the log's end moved aside: {p}"
                            for p in self.store.set_aside_beyond(n))
        t0 = time.perf_counter()
        snap, rep.skipped_snapshots = self.store.newest_valid(min(n, e))
        engine = Engine(book_factory)
        if snap is not None:
            engine = import_state(snap, engine)
            rep.snapshot_seq = snap.seq
            rep.snapshot_path = str(self.store.path(snap.seq))
            if verify_import:
                want = read_header(self.store.path(snap.seq).read_bytes(), "")[1]
                if state_hash(engine) != want:
                    raise RecoveryError(f"{rep.snapshot_path}: imported state hashes "
                                        "differently from the snapshot")
        rep.load_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        self._replay(engine, rep.snapshot_seq, e)
        rep.replay_seconds = time.perf_counter() - t0
        rep.last_seq = engine.last_seq
        if rep.last_seq != n:
            raise RecoveryError(f"replay ended at seq {rep.last_seq}, log ends at {n}")
        return engine

    def _replay(self, engine: Engine, after: int, events_upto: int) -> None:
        """Apply the command log after ``after``; append events above ``events_upto``."""
        apply = engine.apply
        evs = self.events
        seq = after
        for first, ts_list, items in self.commands.read_batches(after + 1):
            if first != seq + 1:
                raise RecoveryError(f"command log resumes at seq {first}, expected "
                                    f"{seq + 1} (snapshot older than the log?)")
            try:
                if evs is None or first + len(items) - 1 <= events_upto:
                    for ts, cmd in zip(ts_list, items, strict=True):
                        seq += 1
                        apply(cmd, seq, ts)
                else:
                    for ts, cmd in zip(ts_list, items, strict=True):
                        seq += 1
                        out = apply(cmd, seq, ts)
                        if seq > events_upto:
                            evs.append(ts, tuple(out))  # tuples: see the note at the top
                            self.report.events_rewritten += 1
                            if evs.pending >= _EVENT_FLUSH:
                                evs.commit()
            except Exception as exc:
                raise RecoveryError(f"replay of seq {seq} raised {exc!r}") from exc
            self.report.replayed = seq - after
        if evs is not None:
            evs.commit()

    # --- the write path --------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Seq of the last command applied (acknowledged or not)."""
        return self.engine.last_seq

    @property
    def durable_seq(self) -> int:
        """The ack point as of the last ``commit``."""
        return self._durable

    def submit(self, cmd: Command, ts: int) -> tuple[int, list[Event]]:
        """Log ``cmd`` (buffered), apply it, return ``(seq, events)``. Not acknowledged
        until ``commit()`` returns a seq >= this one.

        Raises EngineFailure if the engine raised: the command is taken back out of the
        buffer and this object refuses further work; reopen the directory to recover."""
        if self._failed is not None:
            raise EngineFailure("an earlier command broke the engine; reopen to recover")
        seq = self._seq + 1
        self._cmd_ts(ts)
        self._cmd_item(cmd)
        self._seq = seq
        try:
            events = self._apply(cmd, seq, ts)
        except BaseException as exc:
            self.commands.discard_last()
            self._seq = seq - 1
            self._failed = exc
            raise EngineFailure(f"engine raised on seq {seq}: {exc!r}") from exc
        if self._ev_item is not None:
            self._ev_ts(ts)  # type: ignore[misc]
            self._ev_item(tuple(events))  # tuples: see the note at the top
        return seq, events

    def submit_many(self, cmds: Iterable[tuple[Command, int]]) -> list[list[Event]]:
        """``submit`` each ``(cmd, ts)`` in order; return their event lists."""
        submit = self.submit
        return [submit(cmd, ts)[1] for cmd, ts in cmds]

    def commit(self) -> int:
        """Group commit: make buffered commands durable per the fsync policy, then write
        the events of durable commands. Return the durable seq (the ack point).

        With ``background_sync`` the fsync runs on a helper thread and the returned seq
        may lag the commands just written; call again (or ``wait_durable``) to see it
        move.  Raises LogError on an I/O failure and EngineFailure if a command cannot
        be encoded; either way this object then refuses work: reopen to recover."""
        try:
            durable = self.commands.commit()
        except UnencodableEntry as exc:
            self._failed = exc
            raise EngineFailure(f"applied commands cannot be logged: {exc}") from exc
        return self._events_upto(durable)

    def _events_upto(self, durable: int) -> int:
        if self.events is not None and durable > self.events.written_seq:
            self.events.commit(upto=durable)
        self._durable = durable
        return durable

    def sync(self) -> int:
        """Like ``commit`` but fsync now whatever the policy."""
        return self._events_upto(self.commands.sync())

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """Block until command ``seq`` is durable (True) or ``timeout`` passes (False);
        write the events that became publishable meanwhile."""
        ok = self.commands.wait_durable(seq, timeout)
        self._events_upto(self.commands.durable_seq)
        return ok

    # --- snapshots -------------------------------------------------------------------

    def snapshot(self, wait: bool = False) -> SnapshotJob | None:
        """Start a snapshot of the current state (None if one is still being written).

        Everything applied is synced first, so a snapshot is never ahead of the logs."""
        if self._failed is not None:
            raise EngineFailure("an earlier command broke the engine; reopen to recover")
        self.poll_snapshot()  # report the previous one before starting another
        if self.writer.busy:
            return None
        self.sync()
        if self.events is not None:
            self.events.sync()
        try:
            job = self.writer.start(self.engine)
        except (OSError, RuntimeError):  # fork failed, or an inline write did
            self.snapshot_failures += 1
            raise
        if wait:
            try:
                job.wait()
            finally:
                self.poll_snapshot()
        return job

    @property
    def snapshot_pending(self) -> bool:
        """True while the last snapshot's outcome has not been reported by
        ``poll_snapshot`` (it may be running or finished)."""
        job = self.writer.job
        return job is not None and not job.reported

    def poll_snapshot(self) -> SnapshotJob | None:
        """Non-blocking: if the last snapshot finished since the last call, reap its
        writer, log the outcome (a failure at ERROR, counted in ``snapshot_failures``)
        and return the job; else None.  Cheap enough to call after every batch: one
        ``waitpid(WNOHANG)`` while a writer runs, nothing otherwise."""
        job = self.writer.reap()
        if job is None:
            return None
        if job.info is not None:
            self.snapshots_written += 1
            log.info("snapshot at seq %d written: %s, %d bytes, %.3f s (fork %.3f s)",
                     job.seq, job.info.path, job.info.size, job.info.seconds,
                     job.fork_seconds)
        else:
            self.snapshot_failures += 1
            log.error("snapshot at seq %d failed (the log still has everything; %d "
                      "snapshot failures so far): %s", job.seq, self.snapshot_failures,
                      job.error)
        return job

    # --- shutdown --------------------------------------------------------------------

    def _release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def close(self, snapshot_timeout: float | None = 60.0) -> None:
        """Wait for a running snapshot, commit and sync what is buffered, release files."""
        if self._closed:
            return
        self._closed = True
        try:
            job = self.writer.job
            if job is not None and not job.done:
                try:
                    job.wait(snapshot_timeout)
                except TimeoutError:
                    log.warning("snapshot at seq %d still being written after %s s; "
                                "closing without it", job.seq, snapshot_timeout)
                except RuntimeError:
                    pass  # a failed snapshot loses nothing: the log has it all
            try:
                self.poll_snapshot()  # reports the outcome (once) if not reported yet
            except OSError:
                log.exception("reaping the snapshot writer failed")
            try:
                self.commit()  # after an engine failure too: the poison command is gone
            except (LogError, EngineFailure):
                self.commands.drop_pending()  # nothing more can be made durable
                if self.events is not None:
                    self.events.drop_pending()
            self.commands.close()
            if self.events is not None:
                self.events.close()
        finally:
            self._release()

    def __enter__(self) -> DurableEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def recover(directory: str | os.PathLike[str], **options: Any) -> tuple[Engine, int,
                                                                         RecoveryReport]:
    """Recover ``directory``: return (engine, last seq, report). See ``DurableEngine``."""
    options.setdefault("snapshot_mode", "inline")
    de = DurableEngine(directory, **options)
    try:
        return de.engine, de.last_seq, de.report
    finally:
        de.close()
