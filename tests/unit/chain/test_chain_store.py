"""The settler's SQLite store (chain/store.py) and proofs built from it (chain/proofs.py)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from chainbook.chain.batches import Batch
from chainbook.chain.merkle import TradeLeaf, verify
from chainbook.chain.proofs import TradeProof, TreeCache, build_proof
from chainbook.chain.store import (
    ANCHORED,
    CONFIRMED,
    PREPARED,
    SUBMITTED,
    ChainStore,
    StoreChainMismatch,
)


def batch(batch_id: int, first: int, n: int) -> Batch:
    return Batch.build(batch_id, tuple(TradeLeaf(i, "ETHUSDT", 10 * i, 2, 1, 2, 0, i)
                                       for i in range(first, first + n)))


@pytest.fixture
def store(tmp_path):
    s = ChainStore.in_data_dir(tmp_path)
    s.bind("31337:0xabc", "0xC0FFEE")
    yield s
    s.close()


def test_batch_states_are_persisted_across_reopen(store, tmp_path):
    store.prepare(batch(1, 1, 3), now_ms=10)
    store.prepare(batch(2, 4, 2), now_ms=11)
    store.submitted(1, b"\x01" * 32, 7, b"raw", now_ms=12)
    store.included(1, 40, b"\x02" * 32)
    store.close()
    s = ChainStore(tmp_path / "chain.sqlite")
    assert s.next_batch_id() == 3 and s.last_trade_id() == 5
    rows = s.batches()
    assert [(r.batch_id, r.state) for r in rows] == [(1, SUBMITTED), (2, PREPARED)]
    assert rows[0].nonce == 7 and rows[0].raw_tx == b"raw" and rows[0].included_block == 40
    s.confirmed(1, now_ms=20)
    assert s.trade_states() == {ANCHORED: 3, PREPARED: 2}
    assert s.batch(1).state == CONFIRMED and s.batch(1).raw_tx is None
    assert s.submissions(1) == [(b"\x01" * 32, 7)]
    s.close()


def test_a_trade_can_be_in_one_batch_only(store):
    store.prepare(batch(1, 1, 3), now_ms=0)
    with pytest.raises(sqlite3.IntegrityError):
        store.prepare(batch(2, 3, 2), now_ms=0)  # trade 3 again
    with pytest.raises(sqlite3.IntegrityError):
        store.prepare(batch(1, 10, 2), now_ms=0)  # batch id 1 again
    assert store.next_batch_id() == 2 and store.trade_states() == {PREPARED: 3}


def test_a_store_of_another_chain_is_refused_unless_reset(store):
    assert store.bind("31337:0xabc", "0xc0ffee") is False  # same chain, same contract
    store.prepare(batch(1, 1, 2), now_ms=0)
    with pytest.raises(StoreChainMismatch):
        store.bind("31337:0xdef", "0xC0FFEE")
    assert store.bind("31337:0xdef", "0xC0FFEE", reset=True) is True
    assert store.batches() == [] and store.next_batch_id() == 1
    assert store.meta("contract") == "0xC0FFEE"


def test_proofs_from_the_store_verify_and_round_trip_json(store):
    store.prepare(batch(1, 1, 5), now_ms=0)
    assert build_proof(store, 99) is None
    for trade_id in range(1, 6):
        p = build_proof(store, trade_id)
        assert p is not None and p.leaf_index == trade_id - 1 and p.leaf_count == 5
        assert verify(p.root, p.leaf_count, p.leaf_index, p.leaf, p.proof)
        back = TradeProof.from_json(json.loads(json.dumps(p.to_json())))
        assert back == p
    bad = build_proof(store, 2).to_json()
    bad["root"] = "0x12"
    with pytest.raises(ValueError):
        TradeProof.from_json(bad)


def test_proofs_through_the_tree_cache_build_each_batch_once(store, monkeypatch):
    """The public proof endpoint: a batch's tree is built at its first proof and reused
    (a 1,000-trade tree is ~37 ms of hashing per request otherwise); the proofs are
    the same as built from scratch, and the cache keeps at most ``size`` trees."""
    store.prepare(batch(1, 1, 5), now_ms=0)
    store.prepare(batch(2, 6, 3), now_ms=0)
    trees = TreeCache(size=1)
    reads: list[int] = []
    real = store.batch_packed
    monkeypatch.setattr(store, "batch_packed", lambda b: reads.append(b) or real(b))
    for trade_id in (1, 2, 5, 1):
        assert build_proof(store, trade_id, trees) == build_proof(store, trade_id)
    assert reads.count(1) == 4 + 1  # four uncached proofs, one build for the cache
    reads.clear()
    build_proof(store, 7, trees)  # batch 2 evicts batch 1 (size 1)
    build_proof(store, 2, trees)
    assert reads == [2, 1]
    assert build_proof(store, 99, trees) is None
