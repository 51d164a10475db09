"""A chain settler killed with SIGKILL at random points resumes without a double batch."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from chainbook.chain.store import CONFIRMED, FAILED, PREPARED, SUBMITTED, ChainStore

CHILD = Path(__file__).with_name("settler_child.py")
N_TRADES = 60


def _spawn(url: str, contract: str, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(CHILD), url, contract, str(path),
                             str(N_TRADES)], stdout=subprocess.PIPE, text=True,
                            cwd=CHILD.parent)


def test_sigkill_at_random_points_never_doubles_a_batch(anvil, client, tmp_path):
    path = tmp_path / "chain.sqlite"
    contract = client.settlement.address
    rng = random.Random(20240605)
    kills = 0
    for _ in range(6):
        proc = _spawn(anvil.url, contract, path)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.25))
        proc.kill()
        proc.wait()
        kills += proc.returncode == -9
        proc.stdout.close()
    final = _spawn(anvil.url, contract, path)
    out, _ = final.communicate(timeout=60)
    assert final.returncode == 0 and out.split()[-1] == "done", out
    assert kills >= 3  # most runs were killed before finishing

    store = ChainStore(path)
    rows = store.batches((PREPARED, SUBMITTED, CONFIRMED, FAILED))
    assert [r.state for r in rows] == [CONFIRMED] * len(rows)
    assert [r.batch_id for r in rows] == list(range(1, len(rows) + 1))
    assert sum(r.count for r in rows) == N_TRADES
    assert store.trade_states() == {"ANCHORED": N_TRADES}
    events = client.batch_events()
    assert [e[0] for e in events] == [r.batch_id for r in rows]  # each batch id once
    assert [(e[1], e[2]) for e in events] == [(r.root, r.count) for r in rows]
    for trade_id in (1, N_TRADES // 2, N_TRADES):
        proof = store.trade(trade_id)
        assert proof is not None and proof.state == "ANCHORED"
    store.close()
