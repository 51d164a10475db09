"""``python -m chainbook.bench gas``: gas per trade of settlement batches on anvil.

For batch sizes 1, 10, 100 and 1,000 it submits one ``submitBatch`` with only the Merkle
root and one with the packed trades as calldata, next to one ``settle`` transaction per
trade (the "transaction per trade" baseline), and with ``--latency`` measures
trade-to-ANCHORED latency of the settler on an interval-mining anvil.  Prints one JSON
line.  Needs the anvil binary (``bash scripts/build-contracts.sh``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

from chainbook.chain.anvil import ANVIL_CHAIN_ID, DEV_KEY, Anvil, find_anvil
from chainbook.chain.batches import Batch
from chainbook.chain.client import ChainClient
from chainbook.chain.merkle import TradeLeaf
from chainbook.chain.settler import ChainSettler
from chainbook.chain.store import ChainStore
from chainbook.domain.events import Trade

SIZES = (1, 10, 100, 1000)
TARGET_GAS_PER_TRADE = 100


def _leaves(n: int, first: int) -> tuple[TradeLeaf, ...]:
    return tuple(TradeLeaf(first + i, "BTCUSDT", 6_500_000 + i % 97, 1 + i % 13,
                           1 + i % 50, 51 + i % 50, i % 2, first + i) for i in range(n))


def _gas(client: ChainClient, batch: Batch, packed: bool) -> int:
    tx = client.sign_submit(batch.batch_id, batch.root, batch.count,
                            batch.packed() if packed else b"", client.nonce())
    client.send(tx)
    r = client.wait_receipt(tx.tx_hash)
    if r.status != 1:
        raise RuntimeError(f"batch {batch.batch_id} reverted")
    return r.gas_used


def measure_gas(client: ChainClient, settle_n: int) -> dict[str, Any]:
    """Gas of batches of each size (root only, root + packed) and of ``settle``."""
    client.deploy_settlement()
    rows = []
    next_id, first = 1, 1
    for size in SIZES:
        row: dict[str, Any] = {"size": size}
        for mode in ("root_only", "packed"):
            batch = Batch.build(next_id, _leaves(size, first))
            gas = _gas(client, batch, packed=mode == "packed")
            row[mode] = gas
            row[f"{mode}_per_trade"] = round(gas / size, 1)
            next_id, first = next_id + 1, first + size
        rows.append(row)
    settle = []
    for t in _leaves(settle_n, first):
        tx = client.sign_settle(t, client.nonce())
        client.send(tx)
        settle.append(client.wait_receipt(tx.tx_hash).gas_used)
    per_trade = statistics.mean(settle)
    for row in rows:
        row["x_cheaper_root_only"] = round(per_trade / row["root_only_per_trade"], 1)
        row["x_cheaper_packed"] = round(per_trade / row["packed_per_trade"], 1)
    at_1000 = next(r for r in rows if r["size"] == 1000)
    return {"settle_per_trade": round(per_trade), "settle_min": min(settle),
            "settle_max": max(settle), "batches": rows,
            "target_gas_per_trade_at_1000": TARGET_GAS_PER_TRADE,
            "meets_target": at_1000["root_only_per_trade"] < TARGET_GAS_PER_TRADE}


def measure_latency(binary: Any, trades: int, block_time_s: int,
                    confirmations: int) -> dict[str, Any]:
    """Trade-to-ANCHORED latency on an anvil mining a block every ``block_time_s``."""
    with Anvil(binary, extra=("--block-time", str(block_time_s))) as node, \
            tempfile.TemporaryDirectory() as tmp:
        client = ChainClient(node.url, ANVIL_CHAIN_ID, DEV_KEY, confirmations)
        client.deploy_settlement()
        store = ChainStore.in_data_dir(tmp)
        settler = ChainSettler(client, store, max_trades=1000, max_age_ms=200)
        fed: dict[int, float] = {}
        anchored: dict[int, float] = {}
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                settler.step()
                now = time.monotonic()
                for tid in [t for t in list(fed) if t not in anchored]:
                    if settler.trade_state(tid) == "ANCHORED":
                        anchored[tid] = now
                time.sleep(0.02)

        worker = threading.Thread(target=loop, daemon=True)
        worker.start()
        for i in range(1, trades + 1):
            fed[i] = time.monotonic()
            settler.add_trades([(i, Trade(i, "BTCUSDT", 100, 1, 100, 0, 1, 2, 1, 2,
                                          0, 0, 0, 0))])
            time.sleep(0.005)
        deadline = time.monotonic() + 10 * block_time_s * (confirmations + 2)
        while len(anchored) < trades and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        worker.join()
        store.close()
    lat = sorted(anchored[t] - fed[t] for t in anchored)
    if not lat:
        return {"anchored": 0, "trades": trades}
    return {"trades": trades, "anchored": len(lat), "block_time_s": block_time_s,
            "confirmations": confirmations, "max_age_ms": 200,
            "p50_ms": round(1000 * lat[len(lat) // 2]), "max_ms": round(1000 * lat[-1])}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gas benchmark (and optionally the latency one); print one JSON line."""
    ap = argparse.ArgumentParser(prog="python -m chainbook.bench gas", description=__doc__)
    ap.add_argument("--settle-trades", type=int, default=20,
                    help="settle transactions for the per-trade baseline")
    ap.add_argument("--latency", action="store_true",
                    help="also measure trade-to-ANCHORED latency (about 5 s)")
    ap.add_argument("--confirmations", type=int, default=2)
    ap.add_argument("--block-time", type=int, default=1, help="seconds, for --latency")
    args = ap.parse_args(list(argv or []))
    binary = find_anvil()
    if binary is None:
        print("anvil not found: run `bash scripts/build-contracts.sh`", file=sys.stderr)
        return 2
    with Anvil(binary) as node:
        client = ChainClient(node.url, ANVIL_CHAIN_ID, DEV_KEY, 1)
        out: dict[str, Any] = {"bench": "gas", "node": "anvil", **measure_gas(
            client, args.settle_trades)}
    if args.latency:
        out["latency"] = measure_latency(binary, 200, args.block_time, args.confirmations)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
