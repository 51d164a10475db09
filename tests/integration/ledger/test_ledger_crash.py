"""A ledger process killed with SIGKILL at random points and restarted ends with exactly
the ledger an uninterrupted run builds (every table compared)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from chainbook.ledger import schema as S
from chainbook.ledger.service import LedgerService


def _stored_seq(url: str) -> int:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            if not sa.inspect(c).has_table("ledger_state"):
                return 0
            return int(c.execute(sa.select(S.ledger_state.c.last_seq)).scalar() or 0)
    except sa.exc.OperationalError:
        return 0  # the database is being created right now
    finally:
        eng.dispose()


def _run(data: Path, url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "chainbook.ledger", "run", "--data", str(data), "--db", url,
         "--batch", "4", "--until-idle"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def test_sigkill_at_random_points_then_restart_equals_uninterrupted(
        dump_ledger, db_url, second_db_url, session_dir):
    ref = LedgerService(second_db_url, session_dir, batch_size=1000)
    final = ref.run_once()
    ref.close()
    rng = random.Random(2024)
    killed_at: list[int] = []
    deadline = time.monotonic() + 25
    while len(killed_at) < 4 and time.monotonic() < deadline:
        proc = _run(session_dir, db_url)
        start = killed_at[-1] if killed_at else 0
        while _stored_seq(db_url) <= start and proc.poll() is None:
            time.sleep(0.01)  # wait until this run has committed something
        time.sleep(rng.uniform(0.0, 0.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
        seq = _stored_seq(db_url)
        if seq >= final:
            break  # it finished before the kill landed
        killed_at.append(seq)
    assert len(killed_at) >= 2, "the ledger finished too fast to be interrupted"
    assert killed_at == sorted(killed_at) and len(set(killed_at)) == len(killed_at)
    proc = _run(session_dir, db_url)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert _stored_seq(db_url) == final
    assert dump_ledger(db_url) == dump_ledger(second_db_url)


def test_a_burst_of_sigterms_stops_the_ledger_cleanly(session_dir, tmp_path):
    """Signals arriving while the handler of an earlier one runs must not wedge the
    process (a handler that took a lock once deadlocked inside ``Event.set``)."""
    for attempt in range(5):
        url = f"sqlite:///{tmp_path / f'ledger{attempt}.sqlite'}"  # seq 0: not started yet
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "chainbook.ledger", "run", "--data", str(session_dir),
             "--db", url, "--poll-ms", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        while _stored_seq(url) == 0 and proc.poll() is None:
            time.sleep(0.01)
        for _ in range(300):
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError(
                f"attempt {attempt}: the ledger hung after a SIGTERM burst") from None
        assert proc.returncode == 0, err.decode()
        assert f"ledger at seq {_stored_seq(url)}" in out.decode()
