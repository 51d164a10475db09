"""Watcher and processor killed with SIGKILL at random points: no double credit, no lost
or doubled withdrawal (checked on the recovered core's balances and on-chain)."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from fundsrig import Rig

from chainbook.chain.anvil import Anvil

CHILD = Path(__file__).with_name("fundschild.py")
DEPOSITS = 6
WITHDRAWALS = 4


def _spawn(url: str, token: str, work: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(CHILD), url, token, str(work),
                             str(DEPOSITS)], stdout=subprocess.PIPE, text=True,
                            cwd=CHILD.parent)


def test_sigkill_never_doubles_a_credit_or_a_withdrawal(anvil: Anvil, tmp_path) -> None:
    rig = Rig(anvil, tmp_path, confirmations=2)
    usdt = rig.usdt
    for i in range(DEPOSITS):  # 1..6 USDT to accounts 1 and 2
        rig.client.pay(usdt, rig.addresses.address(1 + i % 2), (i + 1) * 10**6)
    rig.fund(3, "USDT", 100 * 10**8, "seed")
    p = rig.processor()
    dests = ["0x" + f"{0x10 + i:02x}" * 20 for i in range(WITHDRAWALS)]
    wids = [p.request(3, "USDT", (i + 1) * 10**8, d).id for i, d in enumerate(dests)]
    rig.close()  # the child owns the core and the store from now on

    rng = random.Random(20240607)
    kills = 0
    for _ in range(6):
        proc = _spawn(anvil.url, usdt, tmp_path)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() in ("ready", "")
        time.sleep(rng.uniform(0.0, 0.25))  # somewhere in the work
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
        proc.stdout.close()
    proc = _spawn(anvil.url, usdt, tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "done" in out
    assert kills >= 1

    rig = Rig(anvil, tmp_path, confirmations=2, usdt=usdt)  # recovers the core from its log
    try:
        assert rig.available(1, "USDT") == (1 + 3 + 5) * 10**8
        assert rig.available(2, "USDT") == (2 + 4 + 6) * 10**8
        assert len(rig.store.deposits()) == DEPOSITS
        paid = 0
        for i, (wid, dest) in enumerate(zip(wids, dests, strict=True)):
            row = rig.store.withdrawal(wid)
            assert row is not None and row.state in ("COMPLETED", "REFUNDED")
            on_chain = rig.client.token_balance(usdt, dest)
            assert on_chain == ((i + 1) * 10**6 if row.state == "COMPLETED" else 0)
            paid += (i + 1) * 10**8 if row.state == "COMPLETED" else 0
        assert rig.frozen(3, "USDT") == 0
        assert rig.available(3, "USDT") == 100 * 10**8 - paid
        assert paid > 0
    finally:
        rig.close()
