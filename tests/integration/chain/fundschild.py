"""Child of test_chain_withdrawals_crash: run the watcher and the processor until done.

argv: anvil url, token address, work dir, number of deposits expected.  Prints "done"
once every deposit is credited and every withdrawal is final, then exits 0.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fundsrig import Rig

from chainbook.chain.anvil import Anvil


class _Node(Anvil):
    def __init__(self, url: str) -> None:  # an already running node: nothing to start
        self.url = url


def main() -> int:
    url, token, work, deposits = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    rig = Rig(_Node(url), work, confirmations=2, usdt=token)
    w = rig.watcher(restart_margin=5)
    p = rig.processor()
    print("ready", flush=True)
    while True:
        w.step()
        open_ = p.step()
        credited = sum(1 for r in rig.store.deposits() if r.state == "CREDITED")
        if credited == deposits and open_ == 0:
            print("done", flush=True)
            rig.close()
            return 0
        rig.client.mine(1)
        time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())
