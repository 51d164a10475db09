"""A read-only tail of the event journal that a live server is appending to.

``JournalTail(events_dir, from_seq)`` never takes ``<data>/LOCK``, never opens a file for
writing and never truncates: it opens segment files read-only, checks frames with
``codec.scan_frames`` and decodes them with ``codec.decode_payload``.  What it may see:

* a frame still being written at the end of the newest segment (``TornTail``, or a CRC
  that does not match yet): it stops there and tries again at the next ``poll``;
* a segment rollover: once the current segment ends cleanly it moves to the segment that
  starts at the next seq.  The writer only creates a new segment after the old one is
  complete, so a stop in a segment that has a successor is re-read once (it may have
  been read just before the writer finished) and then reported as damage;
* the file shrinking below what was already read (a writer's recovery cut entries the
  ledger had applied, which only an fsync-off power loss can cause): ``JournalRewound``.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path

from chainbook.journal.backend import CorruptLogError, LogError
from chainbook.journal.codec import Record, RecordType, decode_payload, scan_frames
from chainbook.journal.segment_log import list_segments
from chainbook.ledger.batch import Entry

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 8 << 20


class JournalRewound(LogError):
    """The journal no longer holds entries this reader already returned."""


class JournalTail:
    """Entries ``(seq, ts, events)`` of an event journal from ``from_seq`` on, as written."""

    def __init__(self, directory: str | os.PathLike[str], from_seq: int = 1, *,
                 chunk_bytes: int = DEFAULT_CHUNK) -> None:
        if from_seq < 1:
            raise ValueError("seq starts at 1")
        self.dir = Path(directory)
        self.next_seq = from_seq
        self.chunk = chunk_bytes
        self._seg: tuple[int, Path] | None = None
        self._offset = 0  # bytes of the current segment already consumed
        self._ready: deque[Entry] = deque()  # decoded, not yet returned
        self.waits = 0  # polls that stopped at an unfinished frame

    def seek(self, seq: int) -> None:
        """Continue from ``seq`` (forward: skips without decoding; backward: rescans)."""
        if seq < self.next_seq:
            self._seg, self._offset = None, 0
            self._ready.clear()
        self.next_seq = seq
        while self._ready and self._ready[0][0] < seq:
            self._ready.popleft()

    def poll(self, max_entries: int = 10_000) -> list[Entry]:
        """Up to ``max_entries`` new entries in seq order (empty when caught up)."""
        out: list[Entry] = []
        while len(out) < max_entries:
            try:
                if not self._ready and not self._read():
                    break
            except LogError:
                if out:
                    return out  # hand over what precedes the damage; the next poll raises
                raise
            while self._ready and len(out) < max_entries:
                e = self._ready.popleft()
                if e[0] == self.next_seq:
                    out.append(e)
                    self.next_seq += 1
        return out

    # --- reading -----------------------------------------------------------------------

    def _locate(self) -> bool:
        segs = list_segments(self.dir)
        if not segs:
            return False
        cands = [s for s in segs if s[0] <= self.next_seq]
        if not cands:
            raise CorruptLogError(str(segs[0][1]), 0, f"journal starts at seq {segs[0][0]}; "
                                  f"seq {self.next_seq} is not there")
        self._seg, self._offset = cands[-1], 0
        return True

    def _read(self) -> bool:
        """Decode the next frames into ``_ready``; False if nothing new is there yet."""
        if self._seg is None and not self._locate():
            return False
        retried = False
        while True:
            got, advanced, stop = self._read_segment()
            if got:
                return True
            if advanced:
                continue  # skipped frames below next_seq, or read one chunk of many
            successor = self._successor()
            if successor is None:
                if stop is not None:
                    self.waits += 1
                return False
            if stop is None and successor[0] == self.next_seq:
                self._seg, self._offset = successor, 0
                retried = False
                continue
            if retried:
                assert self._seg is not None
                raise CorruptLogError(str(self._seg[1]), self._offset, (
                    stop or "clean end") + f" after seq {self.next_seq - 1}, but the next "
                    f"segment starts at seq {successor[0]}")
            retried = True  # the writer may have finished this segment just now

    def _successor(self) -> tuple[int, Path] | None:
        assert self._seg is not None
        later = [s for s in list_segments(self.dir) if s[0] > self._seg[0]]
        return later[0] if later else None

    def _read_segment(self) -> tuple[bool, bool, str | None]:
        """Read frames of the current segment from the offset: (entries added, offset
        moved, why it stopped before the end of the file or None)."""
        assert self._seg is not None
        path = self._seg[1]
        chunk = self.chunk
        while True:
            try:
                with open(path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    if size < self._offset:
                        raise JournalRewound(f"{path}: shrank to {size} bytes, {self._offset} "
                                             "were already read (the writer cut entries "
                                             "the ledger applied)")
                    f.seek(self._offset)
                    data = f.read(chunk)
            except FileNotFoundError:
                raise JournalRewound(f"{path}: segment disappeared while being read") from None
            frames, stop = scan_frames(data)
            limited = self._offset + len(data) < size
            if not frames and limited:
                chunk *= 2  # one frame bigger than the chunk
                continue
            break
        got = False
        nxt = self.next_seq + len(self._ready)
        for fr in frames:
            if fr.last_seq < nxt:
                continue
            if fr.first_seq > nxt:
                raise CorruptLogError(str(path), self._offset + fr.offset,
                                      f"frame starts at seq {fr.first_seq}, expected {nxt}")
            rec = decode_payload(data, fr)
            if not isinstance(rec, Record):
                raise CorruptLogError(str(path), self._offset + rec.offset, rec.reason)
            if rec.type is not RecordType.EVENTS:
                raise CorruptLogError(str(path), self._offset + rec.offset,
                                      f"a {rec.type.name} frame in the event journal")
            for k in range(nxt - rec.first_seq, len(rec.items)):
                self._ready.append((rec.first_seq + k, rec.ts[k], rec.items[k]))
            nxt = rec.last_seq + 1
            got = True
        advanced = bool(frames)
        if frames:
            self._offset += frames[-1].end
        if stop is None or limited:
            return got, advanced, None
        return got, advanced, f"{stop.kind} frame: {stop.reason}"
