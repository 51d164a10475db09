"""The Settlement contract on anvil: access, duplicate ids, on-chain Merkle checks."""

from __future__ import annotations

import pytest

from chainbook.chain.anvil import ANVIL_CHAIN_ID, DEV_KEY
from chainbook.chain.batches import Batch
from chainbook.chain.client import ChainClient, ChainError, ChainIdMismatch
from chainbook.chain.merkle import MerkleTree, TradeLeaf

# anvil's second default dev account: funded, but not the operator
OTHER_KEY = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def leaves(n: int, base: int = 0) -> tuple[TradeLeaf, ...]:
    return tuple(TradeLeaf(base + i, "ETHBTC", 50 + i, 3, 7, 8, i % 2, base + i)
                 for i in range(1, n + 1))


def submit(c: ChainClient, b: Batch, packed: bool = True) -> int:
    tx = c.sign_submit(b.batch_id, b.root, b.count, b.packed() if packed else b"", c.nonce())
    c.send(tx)
    return c.wait_receipt(tx.tx_hash).status


def test_on_chain_verify_agrees_with_python_for_sizes_1_to_33(client):
    for n in range(1, 34):
        b = Batch.build(n, leaves(n, base=1000 * n))
        assert submit(client, b, packed=n % 2 == 0) == 1
        tree = MerkleTree(b.leaves)
        # every leaf for a few shapes, the edges and the middle for the others
        for i in (range(n) if n in (5, 17, 33) else sorted({0, n // 2, n - 1})):
            proof = tree.proof(i)
            assert client.verify_on_chain(n, i, b.leaves[i], proof)
            if proof:
                assert not client.verify_on_chain(n, i, b.leaves[i], [bytes(32), *proof[1:]])
                assert not client.verify_on_chain(n, i, b.leaves[i], proof[:-1])
            assert not client.verify_on_chain(n, i, bytes(32), proof)
        assert not client.verify_on_chain(n, n, b.leaves[0], tree.proof(0))
    assert not client.verify_on_chain(99, 0, b.leaves[0], [])  # unknown batch


def test_the_contract_hashes_leaves_like_python(client):
    for t in (*leaves(3), TradeLeaf(2**64 - 1, "X" * 32, 2**64 - 1, 1, 0, 2**64 - 1, 1, 5)):
        assert client.hash_trade_on_chain(t) == t.leaf()


def test_a_batch_id_is_accepted_once_and_only_from_the_operator(client, anvil):
    b = Batch.build(1, leaves(4))
    assert submit(client, b) == 1
    got = client.batch_on_chain(1)
    assert (got.root, got.count) == (b.root, 4) and got.block_number == client.head()
    with pytest.raises(ChainError, match="revert"):  # BatchExists, caught by the estimate
        client.sign_submit(1, Batch.build(1, leaves(2, 50)).root, 2, b"", client.nonce())
    # forced through with a fixed gas limit, the contract itself rejects it
    tx = client.sign_submit(1, b.root, 4, b"", client.nonce(), gas=200_000)
    client.send(tx)
    assert client.wait_receipt(tx.tx_hash).status == 0
    assert client.batch_events() == [(1, b.root, 4, got.block_number)]
    other = ChainClient(anvil.url, ANVIL_CHAIN_ID, OTHER_KEY, settlement=client.settlement.address)
    tx = other.sign_submit(2, b.root, 4, b"", other.nonce(), gas=200_000)
    other.send(tx)
    assert other.wait_receipt(tx.tx_hash).status == 0  # NotOperator
    assert not client.batch_on_chain(2).present


def test_malformed_batches_are_rejected(client):
    b = Batch.build(1, leaves(3))
    for root, count, packed in ((b.root, 0, b""), (bytes(32), 3, b""),
                                (b.root, 3, b.packed()[:-1])):
        with pytest.raises(ChainError):
            client.sign_submit(1, root, count, packed, client.nonce())
    assert not client.batch_on_chain(1).present


def test_a_client_refuses_a_node_on_another_chain(anvil):
    with pytest.raises(ChainIdMismatch, match="31337"):
        ChainClient(anvil.url, 1, DEV_KEY)


def test_gas_of_a_root_only_batch_does_not_grow_with_its_size(client):
    small = Batch.build(1, leaves(1))
    big = Batch.build(2, leaves(1000, 10))
    g = []
    for b in (small, big):
        tx = client.sign_submit(b.batch_id, b.root, b.count, b"", client.nonce())
        client.send(tx)
        g.append(client.wait_receipt(tx.tx_hash).gas_used)
    assert abs(g[1] - g[0]) < 100 and g[1] / 1000 < 100  # only calldata bytes differ
