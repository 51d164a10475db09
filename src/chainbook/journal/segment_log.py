"""The embedded log backend: append-only segment files with group commit and fsync policy.

A log is a directory of segment files named by the seq of their first entry
(``00000000000000000001.seg``); a segment rolls over once it reaches ``segment_bytes``.
``append`` only buffers; ``commit`` encodes the buffer as one frame per up to
``MAX_FRAME_ITEMS`` entries, writes them with one ``write`` call and applies the fsync
policy (see ``FsyncPolicy``); it returns the ack point.

With ``background=True`` the fsyncs run on a helper thread (``os.fdatasync`` releases
the GIL): ``commit`` writes and returns at once with the durable seq reached so far, the
engine keeps matching while the disk syncs, and ``durable_seq`` / ``wait_durable``
report when the ack point moves.  Under EVERY each commit requests an fsync that covers
it (requests made while one runs are coalesced: true group commit); under INTERVAL the
thread syncs on its timer, so acks advance even when no commit comes.

Opening a log checks every frame's CRC (``verify="tail"``: only the last segment's; the
others are checked whenever they are read).  A torn or corrupt record at the end of the
last segment (nothing valid after it) is what an interrupted write leaves: the file is
cut at the last good frame and the cut is reported.  Damage with valid frames after it,
or in any older segment, is damage to acknowledged data: ``CorruptLogError``, never a
silent cut.
Not thread-safe: one thread owns a writable log; any number of read-only ``SegmentLog``
instances (``readonly=True``) may tail it, from any process.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainbook.journal.backend import (
    AcknowledgedMissing,
    CorruptLogError,
    FsyncPolicy,
    LogError,
)
from chainbook.journal.codec import (
    FrameInfo,
    Record,
    RecordType,
    TornTail,
    decode_payload,
    encode_frame,
    find_valid_frame_after,
    scan_frames,
)

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".seg"
DEFAULT_SEGMENT_BYTES = 64 << 20
MAX_FRAME_ITEMS = 8192
_NAME = re.compile(r"^(\d{20})\.seg$")


class UnencodableEntry(LogError):
    """A buffered entry cannot be encoded (e.g. an integer outside 64 bits)."""


def segment_name(first_seq: int) -> str:
    """File name of the segment whose first entry has ``first_seq``."""
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(first seq, path) of every segment file in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    out = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    out.sort()
    return out


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (created, renamed, deleted files) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_datasync = getattr(os, "fdatasync", os.fsync)


@dataclass
class OpenReport:
    """What opening the log found: segments, last seq and any tail that was cut."""

    segments: int = 0
    last_seq: int = 0
    messages: list[str] = field(default_factory=list)
    cut_bytes: int = 0


class SegmentLog:
    """A ``LogBackend`` on local segment files. See the module docstring."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        record_type: RecordType,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: FsyncPolicy | str = FsyncPolicy.EVERY,
        fsync_interval_ms: float = 5.0,
        readonly: bool = False,
        background: bool = False,
        verify: str = "all",
        clock: Callable[[], float] = time.monotonic,
        keep_seq: int = 0,
    ) -> None:
        """``keep_seq``: the caller knows entries up to it were acknowledged (another
        durable file holds them): opening refuses, before cutting anything, a log whose
        valid entries end before it, as damage to acknowledged data rather than a torn
        tail."""
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be positive")
        if verify not in ("all", "tail"):
            raise ValueError("verify is 'all' (every segment on open) or 'tail'")
        self.verify_all = verify == "all"
        self.dir = Path(directory)
        self.record_type = RecordType(record_type)
        self.segment_bytes = segment_bytes
        self.policy = FsyncPolicy(fsync)
        self.interval = fsync_interval_ms / 1000.0
        self.readonly = readonly
        self._clock = clock
        self.keep_seq = keep_seq
        # the buffer, encoded in one msgspec call per frame at commit; both lists live
        # as long as the log (cleared in place, never replaced), so
        # ``pending_appenders`` can hand out their bound ``append`` methods
        self._ts: list[int] = []
        self._items: list[Any] = []
        self._written = 0  # highest seq written to a file
        self._durable = 0  # highest seq the policy counts as durable
        self._last_sync = clock()
        self._fd = -1
        self._size = 0  # bytes in the current (last) segment
        self._segments: list[tuple[int, Path]] = []
        self._failed: BaseException | None = None
        # fd changes (roll, close, truncate) and fsyncs hold _fd_lock; _synced signals
        # a new durable seq to wait_durable; _wake asks the helper thread to sync
        self._fd_lock = threading.Lock()
        self._synced = threading.Condition()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.report = self._open()
        if background and not readonly and self.policy is not FsyncPolicy.OFF:
            self._thread = threading.Thread(target=self._sync_loop, daemon=True,
                                            name=f"fsync {self.dir.name}")
            self._thread.start()

    # --- state -----------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._written + len(self._ts)

    @property
    def written_seq(self) -> int:
        """Highest seq handed to the OS (visible to readers, survives a process crash)."""
        return self._written

    @property
    def durable_seq(self) -> int:
        return self._durable

    @property
    def pending(self) -> int:
        """Entries buffered and not yet written."""
        return len(self._ts)

    @property
    def recovery_messages(self) -> list[str]:
        """The tails cut when the log was opened."""
        return self.report.messages

    # --- open and scan ---------------------------------------------------------------

    def _open(self) -> OpenReport:
        report = OpenReport()
        if not self.readonly:
            self.dir.mkdir(parents=True, exist_ok=True)
        segs = list_segments(self.dir)
        expected = segs[0][0] if segs else 1
        for i, (first, path) in enumerate(segs):
            if not self.verify_all and i < len(segs) - 1:
                expected = segs[i + 1][0]  # checked when read, not now
                continue
            if first != expected:
                raise CorruptLogError(str(path), 0, f"segment starts at seq {first}, "
                                      f"expected {expected}: entries are missing")
            data = path.read_bytes()
            frames, stop = scan_frames(data)
            expected = self._check_contiguous(path, frames, expected)
            if stop is None:
                continue
            last = i == len(segs) - 1
            later = find_valid_frame_after(data, stop.offset) if last else None
            if not last or later is not None:
                where = "an older segment" if not last else f"valid frames follow at {later}"
                raise CorruptLogError(str(path), stop.offset, f"{stop.reason}; {where}, so "
                                      "this is damage to acknowledged data, not a torn tail")
            kind = "torn" if isinstance(stop, TornTail) else "corrupt"
            if expected - 1 < self.keep_seq:
                raise AcknowledgedMissing(str(path), stop.offset, (
                    f"{kind} record ({stop.reason}): the log would end at seq "
                    f"{expected - 1}, but seq {self.keep_seq} was acknowledged, so this is "
                    "damage to acknowledged data, not a torn tail"))
            action = "left alone (read-only)" if self.readonly else "cut"
            msg = (f"{path}: {kind} tail record at byte {stop.offset} ({stop.reason}); "
                   f"{len(data) - stop.offset} bytes {action}, log ends at seq "
                   f"{expected - 1}")
            report.messages.append(msg)
            report.cut_bytes = len(data) - stop.offset
            if not self.readonly:
                log.warning("%s", msg)
                with open(path, "r+b") as f:
                    f.truncate(stop.offset)
                    f.flush()
                    os.fsync(f.fileno())
        if expected - 1 < self.keep_seq:
            where = str(segs[-1][1]) if segs else str(self.dir)
            raise AcknowledgedMissing(where, 0, f"the log ends at seq {expected - 1}, but seq "
                                  f"{self.keep_seq} was acknowledged: acknowledged entries "
                                  "are missing")
        self._segments = segs
        self._written = self._durable = expected - 1
        report.segments = len(segs)
        report.last_seq = expected - 1
        if not self.readonly:
            if segs:
                self._open_fd(segs[-1][1])
                _datasync(self._fd)  # whatever a crashed process left in the page cache
            else:
                self._new_segment(expected)
        return report

    @staticmethod
    def _check_contiguous(path: Path, frames: list[FrameInfo], expected: int) -> int:
        for f in frames:
            if f.first_seq != expected:
                raise CorruptLogError(str(path), f.offset, f"frame starts at seq "
                                      f"{f.first_seq}, expected {expected}")
            expected = f.last_seq + 1
        return expected

    def _open_fd(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _new_segment(self, first_seq: int) -> None:
        path = self.dir / segment_name(first_seq)
        self._open_fd(path)
        self._segments.append((first_seq, path))
        fsync_dir(self.dir)  # any policy: see _roll

    # --- append and commit -----------------------------------------------------------

    def _check_writable(self) -> None:
        if self.readonly:
            raise LogError(f"{self.dir}: opened read-only")
        if self._failed is not None:
            raise LogError(f"{self.dir}: an earlier write failed; reopen the log "
                           "to recover") from self._failed
        if self._fd < 0:
            raise LogError(f"{self.dir}: log is closed")

    def append(self, ts: int, item: Any) -> int:
        """Buffer one entry; return its seq. O(1)."""
        self._ts.append(ts)
        self._items.append(item)
        return self._written + len(self._ts)

    def pending_appenders(self) -> tuple[Callable[[int], None], Callable[[Any], None]]:
        """``(ts_append, item_append)``: calling ``ts_append(ts)`` then
        ``item_append(item)`` buffers one entry exactly as ``append(ts, item)`` does (seq
        ``last_seq + 1``), with two C-level list appends instead of a Python call (the
        ``DurableEngine.submit`` hot path). Valid for the life of the log."""
        return self._ts.append, self._items.append

    def append_batch(self, entries: Iterable[tuple[int, Any]]) -> int:
        """Buffer ``(ts, item)`` entries; return the last seq assigned. O(n)."""
        ts, items = self._ts, self._items
        for t, item in entries:
            ts.append(t)
            items.append(item)
        return self._written + len(ts)

    def discard_last(self) -> None:
        """Drop the newest buffered entry (e.g. its command crashed the engine)."""
        if not self._ts:
            raise LogError("nothing buffered to discard: the last entry is already written")
        self._ts.pop()
        self._items.pop()

    def drop_pending(self) -> int:
        """Drop every buffered entry (the owner gave up on them); return how many."""
        n = len(self._ts)
        self._ts.clear()
        self._items.clear()
        return n

    def commit(self, upto: int | None = None) -> int:
        """Write buffered entries (those <= ``upto`` if given), then apply the fsync
        policy. Return the durable seq: acknowledge nothing above it. O(buffer).

        Raises LogError if the write or fsync fails; the log is then unusable until
        reopened (the reopen cuts whatever partial frame the failure left)."""
        self._check_writable()
        n = len(self._ts)
        k = n if upto is None else max(0, min(n, upto - self._written))
        if k:
            self._write(k)
        return self._apply_policy()

    def _encode(self, first: int, k: int) -> bytearray:
        """The frames of the first ``k`` buffered entries (one per MAX_FRAME_ITEMS)."""
        ts, items = self._ts, self._items
        if k != len(ts):
            ts, items = ts[:k], items[:k]
        buf = bytearray()
        rtype = self.record_type
        if k <= MAX_FRAME_ITEMS:
            return encode_frame(rtype, first, ts, items, buf)
        for off in range(0, k, MAX_FRAME_ITEMS):
            encode_frame(rtype, first + off, ts[off:off + MAX_FRAME_ITEMS],
                         items[off:off + MAX_FRAME_ITEMS], buf)
        return buf

    def _consume(self, k: int) -> None:
        """Take the first ``k`` entries out of the buffer (in place)."""
        if k == len(self._ts):
            self._ts.clear()
            self._items.clear()
        else:
            del self._ts[:k]
            del self._items[:k]

    def _write(self, k: int) -> None:
        first = self._written + 1
        try:
            buf = self._encode(first, k)
        except (TypeError, ValueError, OverflowError) as exc:
            # nothing written; the buffer stays as it was for the owner to deal with
            raise UnencodableEntry(f"{self.dir}: entries {first}..{first + k - 1} cannot "
                                   f"be encoded: {exc!r}") from exc
        self._consume(k)
        try:
            if self._size and self._size + len(buf) > self.segment_bytes:
                self._roll(first)
            view = memoryview(buf)
            while view:
                done = os.write(self._fd, view)
                view = view[done:]
        except OSError as exc:
            self._failed = exc
            raise LogError(f"{self.dir}: write failed: {exc}") from exc
        self._size += len(buf)
        self._written += k

    def _roll(self, first_seq: int) -> None:
        """Close the current segment, synced, and start a new one.  Under every policy,
        OFF too (once per segment): opening treats damage in a segment that has a
        successor as damage to acknowledged data, so an older segment must be on disk
        (an event journal, written with OFF, was refused after an OS crash otherwise)."""
        with self._fd_lock:
            self._fsync_locked()
            os.close(self._fd)
            self._fd = -1
            self._new_segment(first_seq)

    def _fsync_locked(self) -> None:
        """fdatasync the current segment; everything written before it is then durable.

        Holds ``_fd_lock``. Every older segment was synced when it rolled."""
        target = self._written  # read before the sync: only what was written is covered
        try:
            _datasync(self._fd)
        except OSError as exc:
            # after a failed fsync the page cache may have dropped the data: never retry
            self._failed = exc
            with self._synced:
                self._synced.notify_all()
            raise LogError(f"{self.dir}: fsync failed: {exc}") from exc
        self._last_sync = self._clock()
        if target > self._durable:
            with self._synced:
                self._durable = target
                self._synced.notify_all()

    def _fsync(self) -> None:
        with self._fd_lock:
            self._fsync_locked()

    def _apply_policy(self) -> int:
        if self._written > self._durable:
            policy = self.policy
            if policy is FsyncPolicy.OFF:
                self._durable = self._written
            elif self._thread is not None:
                if policy is FsyncPolicy.EVERY:
                    self._wake.set()
            elif policy is FsyncPolicy.EVERY:
                self._fsync()
            elif self._clock() - self._last_sync >= self.interval:
                self._fsync()
        return self._durable

    def _sync_loop(self) -> None:
        """Helper thread: fsync on request (EVERY) or on a timer (INTERVAL)."""
        every = self.policy is FsyncPolicy.EVERY
        while not self._stopping:
            if every:
                self._wake.wait()
            else:
                self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopping:
                return
            try:
                with self._fd_lock:
                    if self._fd >= 0 and self._written > self._durable:
                        self._fsync_locked()
            except LogError:
                return  # _failed is set: the owner's next call raises

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """Block until ``durable_seq >= seq`` (True) or the timeout passes (False).

        Raises LogError if an fsync failed meanwhile."""
        if self._thread is None and self._durable < seq <= self._written:
            self._fsync()
        with self._synced:
            ok = self._synced.wait_for(
                lambda: self._durable >= seq or self._failed is not None, timeout)
        if self._failed is not None:
            raise LogError(f"{self.dir}: fsync failed") from self._failed
        return ok

    def sync(self) -> int:
        """Write the buffer and fsync now, whatever the policy; return the durable seq."""
        self._check_writable()
        if self._ts:
            self._write(len(self._ts))
        if self._written > self._durable or self.policy is FsyncPolicy.OFF:
            self._fsync()
        return self._durable

    # --- read ------------------------------------------------------------------------

    def read_records(self, from_seq: int = 1) -> Iterator[Record]:
        """Yield the written frames that hold entries >= ``from_seq``, in order.

        Raises CorruptLogError on damage; a torn frame at the very end is only skipped
        for a read-only log (a writer may be in the middle of it)."""
        segs = self._segments if not self.readonly else list_segments(self.dir)
        if not segs:
            return
        i = max(0, bisect.bisect_right([s for s, _ in segs], from_seq) - 1)
        for j in range(i, len(segs)):
            path = segs[j][1]
            last = j == len(segs) - 1
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                if self.readonly:  # truncated away under us by the writer's recovery
                    return
                raise
            end = self._size if last and not self.readonly else len(data)
            frames, stop = scan_frames(data, 0, end)
            for f in frames:
                if f.last_seq < from_seq:
                    continue
                rec = decode_payload(data, f)
                if not isinstance(rec, Record):
                    raise CorruptLogError(str(path), rec.offset, rec.reason)
                yield rec
            if stop is not None:
                if last and self.readonly and isinstance(stop, TornTail):
                    return
                raise CorruptLogError(str(path), stop.offset, stop.reason)

    def read_batches(self, from_seq: int = 1) -> Iterator[tuple[int, list[int], list[Any]]]:
        """Yield ``(first_seq, ts_list, items)`` runs of written entries from ``from_seq``."""
        for rec in self.read_records(from_seq):
            if rec.first_seq >= from_seq:
                yield rec.first_seq, rec.ts, rec.items
            else:
                k = from_seq - rec.first_seq
                yield from_seq, rec.ts[k:], rec.items[k:]

    def read(self, from_seq: int = 1) -> Iterator[tuple[int, int, Any]]:
        """Yield written entries ``(seq, ts, item)`` from ``from_seq`` in order."""
        for first, ts, items in self.read_batches(from_seq):
            for k, item in enumerate(items):
                yield first + k, ts[k], item

    # --- maintenance -----------------------------------------------------------------

    def truncate_after(self, seq: int) -> None:
        """Drop every written entry above ``seq``; nothing may be buffered. O(segment)."""
        self._check_writable()
        if self._ts:
            raise LogError("truncate_after needs an empty buffer; commit or discard first")
        if seq >= self._written:
            return
        if seq < 0:
            raise ValueError("seq must be >= 0")
        with self._fd_lock:
            self._truncate_locked(seq)

    def _truncate_locked(self, seq: int) -> None:
        os.close(self._fd)
        self._fd = -1
        keep = [(s, p) for s, p in self._segments if s <= seq]
        for s, p in self._segments:
            if s > seq:
                p.unlink()
        if not keep:  # everything goes: start over with an empty first segment
            first = self._segments[0][0] if self._segments else 1
            self._segments = []
            self._written = self._durable = min(first - 1, seq)
            self._new_segment(self._written + 1)
            fsync_dir(self.dir)
            return
        self._segments = keep
        path = keep[-1][1]
        data = path.read_bytes()
        frames, _ = scan_frames(data)
        cut, rest = len(data), None
        for f in frames:
            if f.last_seq > seq:
                cut = f.offset
                if f.first_seq <= seq:
                    rec = decode_payload(data, f)
                    if not isinstance(rec, Record):
                        raise CorruptLogError(str(path), rec.offset, rec.reason)
                    k = seq - f.first_seq + 1
                    rest = encode_frame(self.record_type, f.first_seq, rec.ts[:k],
                                        rec.items[:k])
                break
        with open(path, "r+b") as fh:
            fh.truncate(cut)
            if rest is not None:
                fh.seek(cut)
                fh.write(rest)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(self.dir)
        self._written = self._durable = seq
        self._open_fd(path)

    def close(self) -> None:
        """Write and sync what is buffered (unless the policy is OFF), release the file."""
        if self._fd < 0:
            return
        if self._thread is not None:
            self._stopping = True
            self._wake.set()
            self._thread.join()
            self._thread = None
        try:
            if self._failed is None:
                self.commit()
                if self.policy is not FsyncPolicy.OFF:
                    self.sync()
        finally:
            with self._fd_lock:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> SegmentLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
