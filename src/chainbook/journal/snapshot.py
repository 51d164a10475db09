"""Snapshots of the whole engine state: one CRC-checked, hash-verified file per seq.

File layout (little-endian)::

    magic b"CBSNAP\\0\\1" | u32 format version | u64 seq | 32-byte state hash
    | u64 body length | u32 CRC-32 of the body | u32 CRC-32 of the header so far | body

The body is the msgpack encoding of ``chainbook.engine.state.EngineSnap``.  A file is
written to a temporary name, fsynced and renamed, so a reader sees a whole snapshot or
none.  Loading checks both CRCs, decodes, and verifies that the decoded state hashes to
the header's hash; any failure raises ``CorruptSnapshotError``.

``SnapshotWriter`` writes without stopping matching for long: by default it forks, the
child encodes and writes its copy-on-write view of the state, and the parent only pays
the fork.  The child dies with its parent (``PR_SET_PDEATHSIG``), so a writer never
outlives the process that owns the directory, and it first closes every file descriptor
it inherited except 0-2 and the pipe it reports through: it must not keep the parent's
sockets, pipes or the directory's LOCK open while it writes.  ``mode="inline"`` writes
synchronously.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import os
import signal
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import msgspec

from chainbook.engine.engine import Engine
from chainbook.engine.state import EngineSnap, export_state
from chainbook.journal.segment_log import fsync_dir

SNAP_MAGIC = b"CBSNAP\x00\x01"
SNAP_VERSION = 1
SNAP_HEADER = struct.Struct("<8sIQ32sQII")
SUFFIX = ".snap"

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(EngineSnap)


class CorruptSnapshotError(RuntimeError):
    """A snapshot file failed a check: magic, CRC, decoding, or state hash."""


def snap_hash(snap: EngineSnap) -> str:
    """The ``state_hash`` of the engine ``snap`` describes, computed from ``snap`` alone.

    Mirrors ``chainbook.engine.state.state_hash`` (seq and ts zeroed, symbols sorted by
    name, BLAKE2b-256 of the msgpack encoding); a unit test pins the two together."""
    canon = msgspec.structs.replace(snap, seq=0, ts=0,
                                    symbols=sorted(snap.symbols, key=lambda s: s.spec.name))
    return hashlib.blake2b(_encoder.encode(canon), digest_size=32).hexdigest()


def encode_snapshot(snap: EngineSnap) -> bytes:
    """Header plus body for ``snap``. Pure; O(state)."""
    body = _encoder.encode(snap)
    head = SNAP_HEADER.pack(SNAP_MAGIC, SNAP_VERSION, snap.seq, bytes.fromhex(snap_hash(snap)),
                            len(body), zlib.crc32(body), 0)
    head = head[:-4] + struct.pack("<I", zlib.crc32(head[:-4]))
    return head + body


def read_header(buf: bytes, name: str = "snapshot") -> tuple[int, str, int]:
    """Check the header of a snapshot image; return (seq, state hash, body length)."""
    if len(buf) < SNAP_HEADER.size:
        raise CorruptSnapshotError(f"{name}: {len(buf)} bytes, shorter than its header")
    magic, version, seq, digest, length, _, head_crc = SNAP_HEADER.unpack_from(buf)
    if zlib.crc32(buf[:SNAP_HEADER.size - 4]) != head_crc:
        raise CorruptSnapshotError(f"{name}: header CRC mismatch")
    if magic != SNAP_MAGIC or version != SNAP_VERSION:
        raise CorruptSnapshotError(f"{name}: not a version-{SNAP_VERSION} snapshot")
    if len(buf) != SNAP_HEADER.size + length:
        raise CorruptSnapshotError(f"{name}: body is {len(buf) - SNAP_HEADER.size} bytes, "
                                   f"header says {length}")
    return seq, digest.hex(), length


def decode_snapshot(buf: bytes, name: str = "snapshot") -> EngineSnap:
    """Verify and decode a snapshot image. Raise CorruptSnapshotError on any mismatch."""
    seq, digest, _ = read_header(buf, name)
    body = memoryview(buf)[SNAP_HEADER.size:]
    if zlib.crc32(body) != SNAP_HEADER.unpack_from(buf)[5]:
        raise CorruptSnapshotError(f"{name}: body CRC mismatch")
    try:
        snap = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CorruptSnapshotError(f"{name}: body does not decode: {exc}") from exc
    if snap.seq != seq:
        raise CorruptSnapshotError(f"{name}: body seq {snap.seq} != header seq {seq}")
    if snap_hash(snap) != digest:
        raise CorruptSnapshotError(f"{name}: state hash differs from the header's")
    return snap


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot written to disk."""

    seq: int
    path: str
    state_hash: str
    size: int
    seconds: float  # export + encode + write + fsync, in the writer


class SnapshotStore:
    """The snapshot directory: write, list, load and prune (keep the newest ``keep``)."""

    def __init__(self, directory: str | os.PathLike[str], keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        self.dir = Path(directory)
        self.keep = keep

    def path(self, seq: int) -> Path:
        return self.dir / f"{seq:020d}{SUFFIX}"

    def seqs(self) -> list[int]:
        """Seqs of the snapshot files present, oldest first."""
        if not self.dir.is_dir():
            return []
        out = []
        for p in self.dir.iterdir():
            stem = p.name[:-len(SUFFIX)]
            if p.name.endswith(SUFFIX) and stem.isascii() and stem.isdigit():
                out.append(int(stem))
        return sorted(out)

    def write(self, snap: EngineSnap) -> SnapshotInfo:
        """Write ``snap`` atomically (temp file, fsync, rename, fsync dir), then prune."""
        t0 = time.perf_counter()
        self.dir.mkdir(parents=True, exist_ok=True)
        image = encode_snapshot(snap)
        final = self.path(snap.seq)
        tmp = self.dir / f".{final.name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(image)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fsync_dir(self.dir)
        self.prune()
        digest = SNAP_HEADER.unpack_from(image)[3].hex()
        return SnapshotInfo(snap.seq, str(final), digest, len(image), time.perf_counter() - t0)

    def load(self, seq: int) -> EngineSnap:
        """Read and verify the snapshot at ``seq``. Raise CorruptSnapshotError if bad."""
        path = self.path(seq)
        return decode_snapshot(path.read_bytes(), str(path))

    def newest_valid(self, max_seq: int) -> tuple[EngineSnap | None, list[tuple[str, str]]]:
        """The newest snapshot with seq <= ``max_seq`` that verifies, and why each newer
        one was passed over as ``(path, reason)``."""
        skipped: list[tuple[str, str]] = []
        for seq in reversed(self.seqs()):
            path = str(self.path(seq))
            if seq > max_seq:
                skipped.append((path, f"seq {seq} is beyond the log's end {max_seq}"))
                continue
            try:
                return self.load(seq), skipped
            except (CorruptSnapshotError, OSError) as exc:
                skipped.append((path, str(exc)))
        return None, skipped

    def set_aside_beyond(self, last_seq: int) -> list[str]:
        """Rename the snapshots with a seq above ``last_seq`` (a log that lost its tail)
        to ``<name>.beyond-log`` so that no later start loads them; return their new
        paths."""
        moved = []
        for seq in self.seqs():
            if seq > last_seq:
                src = self.path(seq)
                dst = src.with_name(src.name + ".beyond-log")
                os.replace(src, dst)
                moved.append(str(dst))
        if moved:
            fsync_dir(self.dir)
        return moved

    def prune(self) -> None:
        """Delete all but the newest ``keep`` snapshots."""
        for seq in self.seqs()[:-self.keep]:
            self.path(seq).unlink(missing_ok=True)

    def clean_temp(self) -> list[str]:
        """Delete temp files left by writers that died; only call while no writer runs."""
        gone = []
        if self.dir.is_dir():
            for p in self.dir.iterdir():
                if p.name.startswith(".") and p.name.endswith(".tmp"):
                    p.unlink(missing_ok=True)
                    gone.append(str(p))
        return gone


_PR_SET_PDEATHSIG = 1


def _close_inherited_fds(keep: int) -> None:
    """Close every file descriptor but 0, 1, 2 and ``keep``.

    CPython's ``os.closerange`` is one ``close_range`` system call on Linux >= 5.9 with
    a glibc that has it, whatever the upper bound; elsewhere it closes one by one."""
    top = max(os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 0, 65536, keep + 1)
    if keep > 2:
        os.closerange(3, keep)
    os.closerange(max(3, keep + 1), top)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class SnapshotJob:
    """One snapshot being written; ``poll``/``wait`` for its ``SnapshotInfo``.

    ``poll`` never blocks: once the writer has exited it reaps it (no zombie) and closes
    the pipe.  ``reported`` is for the owner: ``SnapshotWriter.reap`` sets it when it
    hands the finished job out, so an outcome is reported once."""

    def __init__(self, seq: int, pid: int = 0, rfd: int = -1,
                 info: SnapshotInfo | None = None, error: str | None = None) -> None:
        self.seq = seq
        self.pid = pid
        self._rfd = rfd
        self.info = info
        self.error = error
        self.done = pid == 0
        self.reported = False
        self.fork_seconds = 0.0  # what the parent paid

    def poll(self) -> bool:
        """Reap the writer if it finished; return True once done (ok or failed)."""
        if self.done:
            return True
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # someone else reaped it: judge by what it reported
            self._finish(None)
            return True
        if pid == 0:
            return False
        self._finish(status)
        return True

    def wait(self, timeout: float | None = None) -> SnapshotInfo:
        """Block until the writer ends; return its info or raise RuntimeError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.poll():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"snapshot {self.seq} still being written")
            time.sleep(0.002)
        if self.info is None:
            raise RuntimeError(f"snapshot {self.seq} failed: {self.error}")
        return self.info

    def _finish(self, status: int | None) -> None:
        """Read the writer's report; ``status`` is None if its exit status is lost."""
        self.done = True
        chunks = []
        try:
            while True:
                chunk = os.read(self._rfd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(self._rfd)
        raw = b"".join(chunks)
        code = None if status is None else os.waitstatus_to_exitcode(status)
        if code in (0, None) and raw:
            try:
                self.info = msgspec.json.decode(raw, type=SnapshotInfo)
                return
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass  # an error message (or garbage): reported below
        if raw:
            self.error = raw.decode(errors="replace")
        elif code is None:
            self.error = "writer was reaped elsewhere and reported nothing"
        elif code < 0:
            self.error = f"writer killed by signal {-code}"
        else:
            self.error = f"writer exited with {code} and reported nothing"


class SnapshotWriter:
    """Start snapshot writes: in a forked child (default) or inline; one at a time.

    A forked child closes every inherited file descriptor but 0-2 and its report pipe
    before it does anything else."""

    def __init__(self, store: SnapshotStore, mode: str = "fork") -> None:
        if mode not in ("fork", "inline"):
            raise ValueError("mode is 'fork' or 'inline'")
        if mode == "fork" and not hasattr(os, "fork"):
            mode = "inline"
        self.store = store
        self.mode = mode
        self.job: SnapshotJob | None = None

    @property
    def busy(self) -> bool:
        """True while a forked writer is still running."""
        return self.job is not None and not self.job.poll()

    def reap(self) -> SnapshotJob | None:
        """Non-blocking: the last job if it has finished (reaped, ok or failed) and was
        not handed out by ``reap`` before; else None.  Each job is handed out once."""
        job = self.job
        if job is None or job.reported or not job.poll():
            return None
        job.reported = True
        return job

    def start(self, engine: Engine) -> SnapshotJob:
        """Snapshot ``engine`` as of its ``last_seq``. Raise RuntimeError if one is running.

        The caller must make sure every command up to ``engine.last_seq`` is durable in
        the log first: a snapshot must never be ahead of the log."""
        if self.busy:
            raise RuntimeError("a snapshot is already being written")
        seq = engine.last_seq
        if self.mode == "inline":
            self.job = SnapshotJob(seq, info=self.store.write(export_state(engine)))
            return self.job
        rfd, wfd = os.pipe()
        parent = os.getpid()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # child: never returns
            self._child(engine, parent, rfd, wfd)
        os.close(wfd)
        self.job = SnapshotJob(seq, pid=pid, rfd=rfd)
        self.job.fork_seconds = time.perf_counter() - t0
        return self.job

    def _child(self, engine: Engine, parent: int, rfd: int, wfd: int) -> None:
        code = 1
        try:
            # first of all: drop the parent's sockets, pipes, LOCK (and ``rfd``) so that
            # nothing the parent closes stays open here while the snapshot is written
            _close_inherited_fds(wfd)
            _die_with_parent(parent)
            gc.disable()  # a collection would touch (and copy) pages for nothing
            info = self.store.write(export_state(engine))
            os.write(wfd, msgspec.json.encode(info))
            code = 0
        except BaseException as exc:  # report anything, then leave without cleanup
            try:
                os.write(wfd, f"{type(exc).__name__}: {exc}".encode()[:4000])
            except OSError:
                pass
        finally:
            os._exit(code)
