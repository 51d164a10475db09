"""The chain settler on anvil: confirmations, reorgs, restarts, proofs."""

from __future__ import annotations

import pytest
from chainfix import trades

from chainbook.chain.anvil import ANVIL_CHAIN_ID, DEV_KEY
from chainbook.chain.client import ChainClient, SignedTx
from chainbook.chain.proofs import TradeProof, verify_trade
from chainbook.chain.settler import ChainSettler
from chainbook.chain.store import CONFIRMED, PREPARED, SUBMITTED, ChainStore

N = 3  # confirmations


@pytest.fixture
def store(tmp_path):
    s = ChainStore.in_data_dir(tmp_path)
    yield s
    s.close()


def settler(client: ChainClient, store: ChainStore, **kw) -> ChainSettler:
    kw.setdefault("max_trades", 10)
    return ChainSettler(client, store, confirmations=N, **kw)


def _block_of(client: ChainClient, batch_id: int, timeout_s: float = 10.0) -> int:
    """The block that holds ``batch_id``: anvil answers a send before its automined block
    is the one "latest" state reads (a loaded machine showed block 0 right after)."""
    import time

    deadline = time.monotonic() + timeout_s
    while (number := client.batch_on_chain(batch_id).block_number) == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} is not on chain after {timeout_s} s")
        time.sleep(0.02)
    return number


def states(store: ChainStore) -> list[tuple[int, str]]:
    return [(r.batch_id, r.state) for r in store.batches((PREPARED, SUBMITTED, CONFIRMED))]


def test_a_batch_is_anchored_after_exactly_n_confirmations(client, store):
    s = settler(client, store)
    assert s.add_trades(trades(25)) == 2  # two full batches, five trades pending
    assert s.trade_state(21) == "PENDING" and s.flush() == 1
    s.step()
    assert states(store) == [(1, SUBMITTED), (2, SUBMITTED), (3, SUBMITTED)]
    included = _block_of(client, 3)
    for depth in range(1, N):
        assert client.head() - included + 1 == depth
        s.step()
        assert store.batch(3).state == SUBMITTED, f"confirmed at depth {depth}"
        client.mine(1)
    s.step()
    assert states(store) == [(1, CONFIRMED), (2, CONFIRMED), (3, CONFIRMED)]
    assert store.trade_states() == {"ANCHORED": 25}
    assert [e[0] for e in client.batch_events()] == [1, 2, 3]
    assert s.stats.sent == 3 and s.stats.reorgs == 0


def test_a_trade_proof_verifies_on_chain_and_a_tampered_one_fails(client, store):
    s = settler(client, store)
    s.add_trades(trades(13))
    s.flush()
    s.step()
    p = s.proof(12)
    assert p is not None and (p.batch_id, p.leaf_index, p.leaf_count) == (2, 1, 3)
    early = verify_trade(client, p)
    assert early.checks["root_on_chain"] and not early.checks["confirmed"] and not early.ok
    client.mine(N)
    s.step()
    for trade_id in (1, 7, 10, 11, 13):
        v = verify_trade(client, trade_id, store)
        assert v.ok, v.detail
    p = TradeProof.from_json(s.proof(5).to_json())
    assert verify_trade(client, p).ok
    forged_trade = TradeProof(
        type(p.trade)(**{**{f: getattr(p.trade, f) for f in p.trade.__slots__}, "price": 1}),
        p.batch_id, p.leaf_index, p.leaf_count, p.root, p.leaf, p.proof)
    assert not verify_trade(client, forged_trade).checks["leaf_encoding"]
    bad_sibling = TradeProof(p.trade, p.batch_id, p.leaf_index, p.leaf_count, p.root, p.leaf,
                             (bytes(32), *p.proof[1:]))
    v = verify_trade(client, bad_sibling)
    assert not v.ok and not v.checks["merkle_proof"] and not v.checks["contract_verify"]
    other_batch = TradeProof(p.trade, 2, p.leaf_index, p.leaf_count, p.root, p.leaf, p.proof)
    assert not verify_trade(client, other_batch).checks["root_on_chain"]
    assert not verify_trade(client, 999, store).ok


def test_a_reorged_batch_is_resubmitted_and_anchored_once(client, store):
    s = settler(client, store)
    s.add_trades(trades(10))
    s.step()
    s.step()  # records the including block
    row = store.batch(1)
    assert row.state == SUBMITTED and row.included_block == client.head()
    client.mine(1)  # one confirmation short of N
    client.rpc("anvil_reorg", [2, []])  # replace the last two blocks: the tx is dropped
    assert not client.batch_on_chain(1).present and not client.tx_known(row.tx_hash)
    s.step()
    assert s.stats.reorgs == 1 and s.stats.sent == 2
    assert client.batch_on_chain(1).present  # the same signed tx, mined again
    s.step()
    client.mine(N)
    s.step()
    assert states(store) == [(1, CONFIRMED)] and store.trade_states() == {"ANCHORED": 10}
    assert store.batch(1).reorgs == 1 and store.submissions(1) == [(row.tx_hash, row.nonce)]
    assert [e[0] for e in client.batch_events()] == [1]


def test_a_block_replaced_under_a_batch_is_noticed(client, store):
    s = settler(client, store)
    s.add_trades(trades(10))
    s.step()
    s.step()
    before = store.batch(1)
    # reorg that re-includes the transaction in a different block at the same height
    client.rpc("anvil_reorg", [1, [["0x" + _raw_of(client, before.tx_hash), 0]]])
    s.step()
    after = store.batch(1)
    assert client.batch_on_chain(1).present
    assert after.reorgs >= 1 and after.included_hash != before.included_hash
    client.mine(N)
    s.step()
    assert states(store) == [(1, CONFIRMED)] and len(client.batch_events()) == 1


def _raw_of(client: ChainClient, tx_hash: bytes) -> str:
    raw = client.rpc("eth_getRawTransactionByHash", ["0x" + tx_hash.hex()])
    return str(raw).removeprefix("0x")


def test_a_restart_after_submitted_does_not_submit_twice(anvil, client, store, tmp_path):
    client.rpc("evm_setAutomine", [False])
    s1 = settler(client, store)
    s1.add_trades(trades(10))
    s1.step()
    row = store.batch(1)
    assert row.state == SUBMITTED and client.tx_known(row.tx_hash)
    nonce_before = client.nonce()
    # a new settler on the same store (a restart) while the tx is pending
    client2 = ChainClient(anvil.url, ANVIL_CHAIN_ID, DEV_KEY, N,
                          settlement=client.settlement.address)
    store2 = ChainStore(tmp_path / "chain.sqlite")
    s2 = settler(client2, store2)
    s2.add_trades(trades(10))  # the journal replayed: already batched, skipped
    s2.step()
    assert s2.stats.sent == 0 and client.nonce() == nonce_before
    client.mine(N)
    s2.step()
    assert states(store2) == [(1, CONFIRMED)]
    assert [e[0] for e in client.batch_events()] == [1]
    assert store2.submissions(1) == [(row.tx_hash, row.nonce)]
    store2.close()


class _CrashOnSend(ChainClient):
    """A real client whose process 'dies' after the tx is recorded, before it is sent."""

    def send(self, tx: SignedTx) -> None:
        raise ConnectionError("killed before sending")


def test_a_tx_recorded_but_never_sent_is_sent_once_after_restart(anvil, client, store):
    crashing = _CrashOnSend(anvil.url, ANVIL_CHAIN_ID, DEV_KEY, N,
                            settlement=client.settlement.address)
    s1 = settler(crashing, store)
    s1.add_trades(trades(10))
    with pytest.raises(ConnectionError):
        s1.step()
    row = store.batch(1)
    assert row.state == SUBMITTED and not client.tx_known(row.tx_hash)
    s2 = settler(client, store)
    s2.step()  # the recorded transaction, broadcast now
    assert client.receipt(row.tx_hash).status == 1
    client.mine(N)
    s2.step()
    assert states(store) == [(1, CONFIRMED)]
    assert store.submissions(1) == [(row.tx_hash, row.nonce)]


def test_a_prepared_batch_already_on_chain_is_adopted_not_resent(client, store):
    s = settler(client, store)
    s.add_trades(trades(10))  # PREPARED, not sent yet
    row = store.batch(1)
    # the batch reached the chain some other way (e.g. a lost store write)
    tx = client.sign_submit(1, row.root, row.count, b"", client.nonce())
    client.send(tx)
    client.wait_receipt(tx.tx_hash)
    nonce = client.nonce()
    s.step()
    assert s.stats.adopted == 1 and s.stats.sent == 0 and client.nonce() == nonce
    client.mine(N)
    s.step()
    assert states(store) == [(1, CONFIRMED)] and store.trade_states() == {"ANCHORED": 10}


def test_a_conflicting_root_on_chain_is_flagged_not_overwritten(client, store):
    s = settler(client, store)
    s.add_trades(trades(10))
    tx = client.sign_submit(1, b"\x07" * 32, 10, b"", client.nonce())
    client.send(tx)
    client.wait_receipt(tx.tx_hash)
    s.step()
    assert store.batch(1).state == "FAILED" and s.stats.alerts
    assert client.batch_on_chain(1).root == b"\x07" * 32


def test_a_settler_without_the_operator_key_flags_its_batches(anvil, client, store):
    other_key = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
    stranger = ChainClient(anvil.url, ANVIL_CHAIN_ID, other_key, N,
                           settlement=client.settlement.address)
    s = settler(stranger, store)
    s.add_trades(trades(10))
    s.step()
    assert store.batch(1).state == "FAILED" and "NotOperator" in s.stats.alerts[0]
    assert not client.batch_on_chain(1).present and stranger.nonce() == 0
