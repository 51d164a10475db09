"""Cutting trades into batches by size and age (chain/batches.py)."""

from __future__ import annotations

import pytest

from chainbook.chain.batches import Batch, Batcher
from chainbook.chain.merkle import LeafError, MerkleTree, TradeLeaf


def leaf(i: int) -> TradeLeaf:
    return TradeLeaf(i, "BTCUSDT", 100 + i, 1, 1, 2, i % 2, i)


def test_batches_are_cut_at_max_trades_with_consecutive_ids():
    b = Batcher(next_batch_id=5, max_trades=3, max_age_ms=10_000)
    cut = [batch for i in range(1, 8) for batch in b.add(leaf(i), now_ms=0)]
    assert [x.batch_id for x in cut] == [5, 6]
    assert [[t.trade_id for t in x.trades] for x in cut] == [[1, 2, 3], [4, 5, 6]]
    assert b.pending == 1
    last = b.flush()
    assert last is not None and last.batch_id == 7 and last.count == 1
    assert b.flush() is None


def test_batches_are_cut_by_age_of_the_oldest_trade():
    b = Batcher(max_trades=100, max_age_ms=50)
    assert b.add(leaf(1), now_ms=1000) == []
    assert b.add(leaf(2), now_ms=1049) == []
    assert b.poll(1049) is None
    aged = b.poll(1050)
    assert aged is not None and aged.count == 2
    assert b.poll(5000) is None  # nothing pending
    # a trade arriving after the age limit first cuts the old ones
    b.add(leaf(3), now_ms=6000)
    out = b.add(leaf(4), now_ms=6100)
    assert [t.trade_id for t in out[0].trades] == [3] and b.pending == 1


def test_trades_already_taken_are_skipped():
    b = Batcher(last_trade_id=10, max_trades=2)
    assert b.add(leaf(9), 0) == [] and b.add(leaf(10), 0) == [] and b.pending == 0
    b.add(leaf(11), 0)
    b.add(leaf(11), 0)  # the same trade delivered twice
    assert b.pending == 1 and b.last_trade_id == 11


def test_same_trades_same_cuts_give_the_same_batches():
    def run() -> list[Batch]:
        b = Batcher(max_trades=4)
        return [x for i in range(1, 13) for x in b.add(leaf(i), 0)]
    first, second = run(), run()
    assert [(x.batch_id, x.root) for x in first] == [(x.batch_id, x.root) for x in second]
    assert first[0].root == MerkleTree([t.leaf() for t in first[0].trades]).root
    assert first[0].packed() == b"".join(t.pack() for t in first[0].trades)


def test_a_bad_trade_fails_where_it_enters():
    b = Batcher()
    with pytest.raises(LeafError):
        b.add(TradeLeaf(1, "A" * 40, 1, 1, 1, 1, 0, 1), 0)
    assert b.pending == 0
    with pytest.raises(ValueError):
        Batcher(max_trades=0)
