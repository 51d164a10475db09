"""The same settlement flow on the embedded EVM (eth-tester + py-evm), no node needed."""

from __future__ import annotations

import pytest
from chainfix import trades

from chainbook.chain.client import CannotPay, ChainClient, FundsClient
from chainbook.chain.evm import EMBEDDED_CHAIN_ID
from chainbook.chain.proofs import verify_trade
from chainbook.chain.settler import ChainSettler
from chainbook.chain.store import CONFIRMED, ChainStore, StoreChainMismatch

KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


@pytest.fixture
def embedded() -> ChainClient:
    c = ChainClient("embedded", None, KEY, confirmations=2)
    c.deploy_settlement()
    return c


def test_batches_anchor_and_verify_on_the_embedded_chain(embedded, tmp_path):
    assert embedded.chain_id == EMBEDDED_CHAIN_ID
    store = ChainStore.in_data_dir(tmp_path)
    s = ChainSettler(embedded, store, max_trades=4)
    s.add_trades(trades(10))
    s.flush()
    s.step()
    assert [r.state for r in store.batches()] == ["SUBMITTED"] * 3
    embedded.mine(1)
    s.step()
    assert store.trade_states() == {"ANCHORED": 10}
    for trade_id in (1, 6, 10):
        assert verify_trade(embedded, trade_id, store).ok
    p = s.proof(6)
    assert p is not None
    forged = type(p)(p.trade, p.batch_id, p.leaf_index, p.leaf_count, p.root, p.leaf,
                     tuple(reversed(p.proof)))
    assert not verify_trade(embedded, forged).ok
    store.close()


def test_a_reverted_snapshot_drops_the_batch_and_it_is_resubmitted(embedded, tmp_path):
    store = ChainStore.in_data_dir(tmp_path)
    s = ChainSettler(embedded, store, max_trades=5)
    snap = embedded.rpc("evm_snapshot")
    s.add_trades(trades(5))
    s.step()
    s.step()
    tx = store.batch(1).tx_hash
    assert store.batch(1).included_block is not None
    embedded.rpc("evm_revert", [snap])  # the block holding the batch is gone
    embedded.mine(3)  # a longer chain without it
    assert not embedded.batch_on_chain(1).present and embedded.receipt(tx) is None
    s.step()
    assert s.stats.reorgs == 1 and embedded.batch_on_chain(1).present
    embedded.mine(2)
    s.step()
    assert store.batch(1).state == CONFIRMED and store.trade_states() == {"ANCHORED": 5}
    assert [e[0] for e in embedded.batch_events()] == [1]
    store.close()


def test_heartbeat_keeps_confirmations_counting(tmp_path):
    c = ChainClient("embedded", None, KEY, confirmations=2, block_time_s=0.0)
    c.deploy_settlement()
    store = ChainStore.in_data_dir(tmp_path)
    s = ChainSettler(c, store, max_trades=3)
    s.add_trades(trades(3))
    s.run_until_idle(timeout_s=10)
    assert store.trade_states() == {"ANCHORED": 3}
    store.close()


def test_a_new_embedded_chain_resets_the_store_a_node_chain_does_not(embedded, tmp_path):
    store = ChainStore.in_data_dir(tmp_path)
    s = ChainSettler(embedded, store, max_trades=2)
    s.add_trades(trades(2))
    assert store.next_batch_id() == 2
    again = ChainClient("embedded", None, KEY, confirmations=2)  # a restart: new chain
    again.deploy_settlement()
    s2 = ChainSettler(again, store, max_trades=2)
    assert store.next_batch_id() == 1 and s2.last_batched_trade_id == 0
    s2.add_trades(trades(2))
    third = ChainClient("embedded", None, KEY, confirmations=2)
    third.deploy_settlement()
    with pytest.raises(StoreChainMismatch):
        ChainSettler(third, store, reset_on_new_chain=False)
    store.close()


def _web3_hash(c: ChainClient, n: int) -> bytes | None:
    try:
        return bytes(c.w3.eth.get_block(n)["hash"])
    except Exception:  # noqa: BLE001 - web3's answer for a block that is not there
        return None


def test_embedded_head_and_hashes_read_off_the_evm_agree_with_web3():
    """head() and block_hash() read py-evm directly on the embedded chain (a web3 read
    serializes a whole block, ~1 ms under the GIL); they must give web3's answers,
    also after a revert replaced blocks with others of the same numbers."""
    embedded = FundsClient("embedded", None, KEY, confirmations=2)
    embedded.mine(3)
    snap = embedded.rpc("evm_snapshot")
    embedded.mine(2)
    before = {n: embedded.block_hash(n) for n in range(embedded.head() + 1)}
    embedded.rpc("evm_revert", [snap])
    embedded.pay(None, "0x" + "11" * 20, 1)  # another block at the same height
    embedded.mine(1)
    head = int(embedded.w3.eth.block_number)
    assert embedded.head() == head
    for n in range(-1, head + 3):
        assert embedded.block_hash(n) == _web3_hash(embedded, n), n
    assert embedded.block_hash(head) != before[head]  # the fork is seen, not cached
    assert embedded.block_hash(head + 1) is None and embedded.block_hash(-1) is None


def test_an_embedded_payment_beyond_the_operators_balance_is_cannot_pay():
    """eth-tester refuses the estimate with its own ValidationError: the withdrawal
    processor must see CannotPay (refund it) rather than an error that stops its step."""
    c = FundsClient("embedded", None, KEY, confirmations=2)
    wallet = c.native_balance(c.operator)
    with pytest.raises(CannotPay, match="operator cannot pay"):
        c.sign_transfer(None, "0x" + "22" * 20, wallet + 1, c.nonce())
    c.sign_transfer(None, "0x" + "22" * 20, wallet // 2, c.nonce())  # within: signs


def test_a_settler_short_of_gas_money_retries_its_batch_rather_than_fail_it(tmp_path):
    """An operator wallet run dry is mended by topping it up: the batch stays PREPARED
    (no alert) and is submitted once there is money again; CannotPay is not a
    WouldRevert (which the settler takes for a configuration error and fails)."""
    c = FundsClient("embedded", None, KEY, confirmations=2)
    c.deploy_settlement()
    store = ChainStore.in_data_dir(tmp_path)
    s = ChainSettler(c, store, max_trades=4)
    bal = c.native_balance(c.operator)
    c.pay(None, "0x" + "33" * 20, bal - 10**14)  # 0.0001 ETH left: not a submit's gas
    s.add_trades(trades(4))
    s.flush()
    with pytest.raises(CannotPay):
        s.step()
    assert [r.state for r in store.batches()] == ["PREPARED"] and not s.stats.alerts
    funder = c.tester.get_accounts()[1]  # eth-tester's funded default account
    c.tester.send_transaction({"from": funder, "to": c.operator, "value": 10**20,
                               "gas": 21000})
    s.step()
    assert [r.state for r in store.batches()] == ["SUBMITTED"]
    store.close()
