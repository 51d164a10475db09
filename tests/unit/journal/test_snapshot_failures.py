"""Forked snapshot writers: failures are reaped, logged and counted at once; the child
keeps none of the parent's file descriptors.  Real forks, real files, no mocks.

Where a test needs the child to stay alive at a known point, its store (a test-side
``SnapshotStore`` subclass) first opens a FIFO for reading: the child blocks there, after
it has closed the inherited descriptors, until the test opens and closes the write end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chainbook.domain.commands import Deposit
from chainbook.engine.state import EngineSnap
from chainbook.journal.recovery import DurableEngine
from chainbook.journal.snapshot import SnapshotInfo, SnapshotStore
from chainbook.service.core import CoreService

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or not Path("/proc/self/fd").is_dir(),
                                reason="needs fork and /proc (Linux)")

REC = "chainbook.journal.recovery"


def _until(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _state(pid: int) -> str | None:
    """The /proc state letter of ``pid`` (``Z`` for a zombie), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat[stat.rindex(")") + 2]


def _reaped(pid: int) -> bool:
    """True if ``pid`` is no child of ours any more (waited for: no zombie left)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def _fd_targets(pid: int) -> dict[int, str]:
    out = {}
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out[int(entry.name)] = os.readlink(entry)
        except FileNotFoundError:  # closed while we looked
            pass
    return out


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == REC and r.levelno >= logging.ERROR]


class GatedStore(SnapshotStore):
    """A real store whose ``write`` first waits (in the writer) until ``Gate.open``."""

    def __init__(self, directory: Path, fifo: Path) -> None:
        super().__init__(directory)
        self.fifo = fifo

    def write(self, snap: EngineSnap) -> SnapshotInfo:
        with open(self.fifo, "rb") as f:  # blocks until the test opens the write end
            f.read()  # ... and until it closes it
        return super().write(snap)


class Gate:
    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.fd = -1

    def wait_for_reader(self, timeout: float = 20.0) -> None:
        """Return once the writer child sits in ``GatedStore.write`` (it then blocks in
        ``read`` until ``release``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
                return
            except OSError:  # ENXIO: nobody has it open for reading yet
                if time.monotonic() > deadline:
                    raise AssertionError("the writer never reached the gate") from None
                time.sleep(0.002)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _deposit(de: DurableEngine, n: int, tag: str) -> None:
    for i in range(n):
        de.submit(Deposit(1, "USDT", 100, f"{tag}{i}"), ts=de.engine.last_ts + 1)
    de.commit()


# --- (1) failures are reaped, logged once and counted --------------------------------


def test_core_reaps_logs_and_counts_a_failed_snapshot_without_waiting_for_another(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chainbook")
    data = tmp_path / "data"
    data.mkdir()
    blocker = data / "snapshots"
    blocker.write_text("not a directory")  # every snapshot write fails: no mkdir here

    async def main() -> None:
        core = CoreService(data, {"USDT": 8}, snapshot_every=5, snapshot_mode="fork")
        await core.start()
        de = core._de
        assert de is not None
        seq = 0

        async def deposit() -> None:
            nonlocal seq
            seq += 1
            applied = await core.submit(Deposit(1, "USDT", 100, f"x{seq}"))
            assert applied.seq == seq

        def started_after(prev: object) -> Callable[[], bool]:
            # the future resolves before the core thread looks at the snapshot threshold
            return lambda: de.writer.job is not prev and de.writer.job is not None

        pids = []
        # a snapshot starts after every 5th command; 3 more follow each failure
        for failures, to_threshold in ((1, 5), (2, 2)):
            prev = de.writer.job
            for _ in range(to_threshold):
                await deposit()
            # the batch that reached the threshold starts a writer; it fails on its own
            _until(started_after(prev), "a snapshot to start")
            job = de.writer.job
            assert job is not None and job.seq == seq and job.pid > 0
            pids.append(job.pid)
            # no further command: the idle core thread still reaps, logs and counts it
            # (counted, then logged, on the core thread: wait for both)
            _until(lambda n=failures: de.snapshot_failures == n and len(_errors(caplog)) == n,
                   "the failure to be counted and logged")
            assert _reaped(job.pid) and _state(job.pid) != "Z"
            assert job.done and job.info is None and "snapshots" in (job.error or "")
            errs = _errors(caplog)
            assert len(errs) == failures  # once each, not once per poll
            assert f"seq {job.seq} failed" in errs[-1].getMessage()
            assert "File exists" in errs[-1].getMessage()  # the cause
            for _ in range(3):  # later batches do not report it again
                await deposit()
            assert len(_errors(caplog)) == failures and de.snapshot_failures == failures
            assert not core.failed

        blocker.unlink()  # remove the cause: the next snapshot succeeds
        prev = de.writer.job
        for _ in range(2):
            await deposit()
        _until(started_after(prev), "a snapshot to start")
        job = de.writer.job
        assert job is not None and job.seq == seq == 15 and job.pid not in pids
        _until(lambda: de.snapshots_written == 1 and any(
            r.name == REC and r.levelno == logging.INFO and "written" in r.getMessage()
            for r in caplog.records), "the success to be counted and logged")
        assert _reaped(job.pid)
        assert job.info is not None and Path(job.info.path).is_file()
        assert de.snapshot_failures == 2 and len(_errors(caplog)) == 2
        assert any(r.name == REC and r.levelno == logging.INFO
                   and f"snapshot at seq {job.seq} written" in r.getMessage()
                   for r in caplog.records)
        assert all(_reaped(p) for p in pids)
        await core.stop()
        assert core.last_seq == seq

    asyncio.run(main())
    with DurableEngine(data, snapshot_mode="inline") as de:
        assert de.report.snapshot_seq == 15 and de.last_seq == 15
        assert de.engine.balances.available(1, "USDT") == 100 * de.last_seq


def test_engine_poll_reports_each_outcome_once_and_keeps_working(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chainbook")
    (tmp_path / "snapshots").write_text("in the way")
    with DurableEngine(tmp_path, snapshot_mode="fork") as de:
        _deposit(de, 20, "a")
        job = de.snapshot()
        assert job is not None
        _until(lambda: _state(job.pid) == "Z", "the writer to exit")
        assert de.poll_snapshot() is job
        assert _reaped(job.pid) and job.error and de.snapshot_failures == 1
        assert de.poll_snapshot() is None and de.snapshot_failures == 1
        assert len(_errors(caplog)) == 1

        # waiting on a failing snapshot raises, and it is still logged and counted once
        _deposit(de, 5, "b")
        with pytest.raises(RuntimeError, match="failed"):
            de.snapshot(wait=True)
        assert de.writer.job is not None and _reaped(de.writer.job.pid)
        assert de.snapshot_failures == 2 and len(_errors(caplog)) == 2
        assert de.poll_snapshot() is None

        (tmp_path / "snapshots").unlink()
        _deposit(de, 5, "c")
        ok = de.snapshot(wait=True)
        assert ok is not None and ok.info is not None and ok.info.seq == 30
        assert de.snapshots_written == 1 and de.snapshot_failures == 2
        assert de.poll_snapshot() is None
    assert len(_errors(caplog)) == 2
    with DurableEngine(tmp_path, snapshot_mode="inline") as de:
        assert de.report.snapshot_seq == 30 and de.last_seq == 30


def test_a_killed_writer_is_reported_with_its_signal(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chainbook")
    gate = Gate(tmp_path / "gate")
    with DurableEngine(tmp_path / "data", snapshot_mode="fork") as de:
        de.writer.store = GatedStore(de.store.dir, gate.path)
        _deposit(de, 10, "k")
        job = de.snapshot()
        assert job is not None
        gate.wait_for_reader()
        assert de.poll_snapshot() is None  # still running: nothing to report
        os.kill(job.pid, signal.SIGKILL)  # as the OOM killer would
        _until(lambda: _state(job.pid) == "Z", "the killed writer to exit")
        gate.release()
        assert de.poll_snapshot() is job and _reaped(job.pid)
        assert de.snapshot_failures == 1
        assert "signal 9" in (job.error or "")
        errs = _errors(caplog)
        assert len(errs) == 1 and "signal 9" in errs[0].getMessage()
        _deposit(de, 1, "after")
        assert de.durable_seq == 11


def test_close_reports_a_failure_it_waited_for(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chainbook")
    (tmp_path / "snapshots").write_text("in the way")
    de = DurableEngine(tmp_path, snapshot_mode="fork")
    _deposit(de, 3, "z")
    job = de.snapshot()
    assert job is not None
    de.close()
    assert job.done and _reaped(job.pid)
    assert de.snapshot_failures == 1 and len(_errors(caplog)) == 1


# --- (2) the child holds none of the parent's descriptors -----------------------------


def test_the_writer_child_keeps_no_inherited_fd(tmp_path: Path) -> None:
    gate = Gate(tmp_path / "gate")
    a, b = socket.socketpair()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    r, w = os.pipe()  # like subprocess.Popen's error pipe, mid-spawn in another thread
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with DurableEngine(tmp_path / "data", snapshot_mode="fork") as de:
            de.writer.store = GatedStore(de.store.dir, gate.path)
            _deposit(de, 50, "f")
            parent_fds = _fd_targets(os.getpid())
            job = de.snapshot()
            assert job is not None and job.pid > 0
            try:
                gate.wait_for_reader()
                # the child now returns from opening the FIFO, then blocks reading it
                _until(lambda: str(gate.path) in _fd_targets(job.pid).values(),
                       "the child to hold the FIFO")
                assert _state(job.pid) not in (None, "Z")

                child = _fd_targets(job.pid)
                kept = {fd: t for fd, t in child.items() if fd > 2}
                # what is left: the report pipe and the FIFO the store opened itself
                assert len(kept) == 2, kept
                assert sum(t.startswith("pipe:") for t in kept.values()) == 1, kept
                assert sum(t == str(gate.path) for t in kept.values()) == 1, kept
                for fd in (a.fileno(), b.fileno(), listener.fileno(), r, w):
                    assert child.get(fd) != parent_fds[fd], (fd, parent_fds[fd])
                assert not any(t.endswith("LOCK") or t.startswith("socket:")
                               for t in child.values())

                # closing the parent's ends is seen at once while the child still runs
                a.close()
                b.settimeout(10)
                assert b.recv(1) == b""  # EOF: the child does not hold ``a``
                os.close(w)
                w = -1
                ready, _, _ = select.select([r], [], [], 10)
                assert ready and os.read(r, 1) == b""  # EOF: the child does not hold ``w``
                assert not job.poll() and _state(job.pid) not in (None, "Z")
            finally:
                gate.release()  # let it write the snapshot through its own new file
            info = job.wait(timeout=60)
            assert info.seq == 50 and Path(info.path).is_file()
            assert de.poll_snapshot() is job and de.snapshots_written == 1
            assert _reaped(job.pid)
        with DurableEngine(tmp_path / "data", snapshot_mode="inline") as de2:
            assert de2.report.snapshot_seq == 50
    finally:
        gate.release()
        for s in (a, b, listener):
            s.close()
        os.close(r)
        if w >= 0:
            os.close(w)
