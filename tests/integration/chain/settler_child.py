"""Child process for the SIGKILL test: run a chain settler until every trade is anchored.

usage: python settler_child.py RPC_URL CONTRACT STORE_PATH N_TRADES
Feeds the same N trades from the start on every run (as a journal replay would), steps
and mines a block per round; prints "ready" once started and "done" at the end.
"""

from __future__ import annotations

import sys
import time

from chainfix import trades

from chainbook.chain.anvil import ANVIL_CHAIN_ID, DEV_KEY
from chainbook.chain.client import ChainClient
from chainbook.chain.settler import ChainSettler
from chainbook.chain.store import ChainStore


def main(argv: list[str]) -> int:
    url, contract, path, n = argv[0], argv[1], argv[2], int(argv[3])
    client = ChainClient(url, ANVIL_CHAIN_ID, DEV_KEY, 2, settlement=contract)
    store = ChainStore(path)
    settler = ChainSettler(client, store, max_trades=7, max_age_ms=60_000)
    print("ready", flush=True)
    feed = trades(n)
    for i in range(0, n, 3):
        settler.add_trades(feed[i:i + 3])
        settler.step()
        client.mine(1)
        time.sleep(0.005)
    settler.flush()
    while settler.step():
        client.mine(1)
        time.sleep(0.005)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
