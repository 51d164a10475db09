"""Crash test: SIGKILL a process trading through the durable log at random points.

A child (``python -m chainbook.journal.crashchild``) trades a seeded stream in random
group-commit batches, printing each acknowledged seq, and snapshots in a forked writer
every few commits.  The test kills it at random moments (during startup and recovery,
mid-batch, while a snapshot is being written), recovers the directory and checks:

* nothing acknowledged is lost: the recovered seq >= the last acknowledged seq;
* nothing is applied twice or out of order: the recovered state hash equals an
  in-process replay of exactly that many commands of the same stream;
* the event journal holds one entry per command, 1..seq, with the same events;
* the snapshot writer died with its parent, and the core's invariants hold.

Then it restarts the child on the same directory and does it again, with each fsync
policy in turn, and finally lets a child run to a clean exit.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec

from chainbook.engine import Engine
from chainbook.engine.state import check, state_hash
from chainbook.journal.codec import RecordType
from chainbook.journal.crashchild import command_stream
from chainbook.journal.recovery import recover
from chainbook.journal.segment_log import SegmentLog

SEED = 20240601
ROUNDS = [  # (fsync policy, how to pick the moment of the kill); "+bg": helper thread
    ("every", "random"), ("every", "snapshot"), ("interval", "random"), ("off", "random"),
    ("every", "early"), ("interval+bg", "snapshot"), ("every+bg", "random"),
    ("off", "snapshot"), ("every", "random"), ("every+bg", "snapshot"),
]
_enc = msgspec.msgpack.Encoder()


class Child:
    """A crash child and the lines it printed so far."""

    def __init__(self, directory: Path, fsync: str, max_commands: int = 10**7) -> None:
        policy, _, bg = fsync.partition("+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chainbook.journal.crashchild", str(directory),
             str(SEED), "--fsync", policy, "--snapshot-every", "8", "--max-batch", "300",
             "--segment-bytes", str(96 << 10), "--max-commands", str(max_commands)]
            + (["--background"] if bg else []),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a line cut by the kill is not an ack
                self.lines.append(line.split())

    def wait_for(self, word: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(ln[0] == word for ln in list(self.lines)):
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.001)
        return False

    def kill(self) -> str:
        """SIGKILL the child; return what it wrote to stderr."""
        self.proc.send_signal(signal.SIGKILL)
        return self.finish()

    def finish(self, timeout: float = 30) -> str:
        """Wait for the child to end, close its pipes; return its stderr."""
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=30)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return err

    def acked(self) -> int:
        return max((int(ln[1]) for ln in self.lines if ln[0] == "ack"), default=0)

    def writers(self) -> list[int]:
        return [int(ln[2]) for ln in self.lines if ln[0] == "snap"]


def _dead(pid: int, timeout: float = 10.0) -> bool:
    """True once ``pid`` is gone or a zombie (killed, waiting for a reaper)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.01)
    return False


class Reference:
    """The same stream applied in process, advanced as far as asked."""

    def __init__(self) -> None:
        self.engine = Engine()
        self.stream = command_stream(SEED)
        self.events: list[list[bytes]] = []

    def advance(self, seq: int) -> None:
        while self.engine.last_seq < seq:
            cmd, ts = next(self.stream)
            evs = self.engine.apply(cmd, self.engine.last_seq + 1, ts)
            self.events.append(sorted(_enc.encode(e) for e in evs))


def _verify(directory: Path, ref: Reference, acked: int) -> int:
    engine, seq, report = recover(directory)
    assert seq >= acked, f"acknowledged seq {acked} lost: recovered {seq} ({report})"
    ref.advance(seq)
    assert state_hash(engine) == state_hash(ref.engine), f"state differs at seq {seq}"
    check(engine)
    journal = list(SegmentLog(directory / "events", RecordType.EVENTS, readonly=True).read())
    assert [s for s, _, _ in journal] == list(range(1, seq + 1))
    # per command, the same events; their order after a snapshot restore is pinned by
    # tests/unit/journal/test_journal_restore_fidelity.py
    for s, _, evs in journal[-3000:]:
        assert sorted(_enc.encode(e) for e in evs) == ref.events[s - 1], s
    assert not [p for p in (directory / "snapshots").glob(".*.tmp")]
    return seq


def test_sigkill_at_random_points_loses_nothing_acknowledged(tmp_path):
    rng = random.Random(SEED)
    directory = tmp_path / "exchange"
    ref = Reference()
    acked = 0
    seqs = []
    snapshot_kills = 0
    for fsync, when in ROUNDS:
        child = Child(directory, fsync)
        if when == "early":
            time.sleep(rng.uniform(0.0, 0.4))  # during interpreter start or recovery
        elif when == "snapshot":
            child.wait_for("start", 30)
            n_before = len(child.writers())
            deadline = time.monotonic() + 30
            while len(child.writers()) == n_before and time.monotonic() < deadline:
                time.sleep(0.0005)
            snapshot_kills += len(child.writers()) > n_before
            time.sleep(rng.uniform(0.0, 0.01))  # somewhere in the writer's short life
        else:
            child.wait_for("start", 30)
            time.sleep(rng.uniform(0.02, 0.6))
        alive = child.proc.poll() is None
        err = child.kill()
        assert alive, f"child exited by itself: {err}"
        acked = max(acked, child.acked())
        for pid in child.writers():
            assert _dead(pid), f"snapshot writer {pid} outlived its parent"
        seqs.append(_verify(directory, ref, acked))
    assert seqs == sorted(seqs) and seqs[-1] > 1000
    assert snapshot_kills >= 3
    # a last child picks up where the others left off and stops cleanly
    final = Child(directory, "every", max_commands=seqs[-1] + 3000)
    err = final.finish(timeout=120)
    assert final.proc.returncode == 0, err
    assert final.lines[-1] == ["done", str(seqs[-1] + 3000)]
    assert _verify(directory, ref, final.acked()) == seqs[-1] + 3000
    assert os.path.isdir(directory / "snapshots")
