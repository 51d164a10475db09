"""Merkle leaves, trees and proofs (chain/merkle.py, docs/chain.md)."""

from __future__ import annotations

import struct

import pytest
from eth_hash.auto import keccak

from chainbook.chain.merkle import (
    TRADE_SIZE,
    LeafError,
    MerkleTree,
    TradeLeaf,
    leaf_hash,
    merkle_root,
    node_hash,
    verify,
)
from chainbook.domain.events import Trade


def leaf_of(i: int) -> TradeLeaf:
    return TradeLeaf(i, "BTCUSDT", 1000 + i, 1 + i % 7, 10 + i, 20 + i, i % 2, 100 + i)


def test_packed_form_is_the_documented_encode_packed():
    t = TradeLeaf(7, "ETHBTC", 123456, 42, 3, 4, 1, 99)
    expected = struct.pack(">Q32sQQQQBQ", 7, b"ETHBTC", 123456, 42, 3, 4, 1, 99)
    assert len(expected) == TRADE_SIZE
    assert t.pack() == expected
    assert t.leaf() == keccak(b"\x00" + expected)
    assert TradeLeaf.unpack(expected) == t


def test_from_trade_takes_the_committed_fields():
    trade = Trade(5, "BTCUSDT", 300, 2, 600, 1, 8, 9, 11, 12, 1, 2, 0, 0)
    assert TradeLeaf.from_trade(77, trade) == TradeLeaf(5, "BTCUSDT", 300, 2, 11, 12, 1, 77)


@pytest.mark.parametrize("bad", [
    TradeLeaf(1, "", 1, 1, 1, 1, 0, 1),
    TradeLeaf(1, "X" * 33, 1, 1, 1, 1, 0, 1),
    TradeLeaf(1, "BTCÜSDT", 1, 1, 1, 1, 0, 1),
    TradeLeaf(1, "BTCUSDT", 1 << 64, 1, 1, 1, 0, 1),
    TradeLeaf(-1, "BTCUSDT", 1, 1, 1, 1, 0, 1),
    TradeLeaf(1, "BTCUSDT", 1, 1, 1, 1, 2, 1),
])
def test_unencodable_trades_are_refused(bad):
    with pytest.raises(LeafError):
        bad.pack()


def test_leaf_and_node_hashes_are_domain_separated():
    a, b = leaf_of(1).leaf(), leaf_of(2).leaf()
    assert node_hash(a, b) == keccak(b"\x01" + a + b)
    assert node_hash(a, b) != keccak(a + b)
    # an inner node presented as a leaf of the parent tree does not verify
    tree = MerkleTree([a, b, leaf_of(3).leaf(), leaf_of(4).leaf()])
    inner = tree.levels[1][0]
    assert not verify(tree.root, 4, 0, inner, [tree.levels[1][1]])
    with pytest.raises(LeafError):
        leaf_hash(b"\x00" * 80)


@pytest.mark.parametrize("n", range(1, 34))
def test_every_leaf_verifies_and_tampering_fails(n):
    leaves = [leaf_of(i).leaf() for i in range(n)]
    tree = MerkleTree(leaves)
    assert merkle_root(leaves) == tree.root
    depth = len(tree.levels) - 1
    for i, leaf in enumerate(leaves):
        proof = tree.proof(i)
        assert len(proof) <= depth
        assert verify(tree.root, n, i, leaf, proof)
        assert not verify(tree.root, n, i, leaf_of(1000).leaf(), proof)  # other leaf
        if proof:
            bad = list(proof)
            bad[len(bad) // 2] = bytes(32)
            assert not verify(tree.root, n, i, leaf, bad)  # tampered sibling
            assert not verify(tree.root, n, i, leaf, proof[:-1])  # truncated
        assert not verify(tree.root, n, i, leaf, [*proof, bytes(32)])  # padded
        if n > 1:
            assert not verify(tree.root, n, (i + 1) % n, leaf, proof)  # other index
    assert not verify(tree.root, n, n, leaves[0], tree.proof(0))
    with pytest.raises(IndexError):
        tree.proof(n)


def test_the_root_commits_to_order_and_an_odd_node_is_carried():
    l1, l2, l3 = (leaf_of(i).leaf() for i in range(3))
    assert merkle_root([l1]) == l1
    assert merkle_root([l1, l2]) != merkle_root([l2, l1])
    assert merkle_root([l1, l2, l3]) == node_hash(node_hash(l1, l2), l3)
    assert merkle_root([l1, l2, l3]) != merkle_root([l1, l2, l3, l3])  # no self-pairing
    with pytest.raises(ValueError):
        MerkleTree([])
