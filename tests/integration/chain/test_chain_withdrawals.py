"""Withdrawal processor on anvil: completion after N blocks, refunds, restarts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from fundsrig import Rig

from chainbook.chain.anvil import Anvil
from chainbook.chain.withdrawals import REQUEST_GRACE_MS, WithdrawalError

N = 2
ACCT = 11
DEST = "0x" + "5e" * 20
# anvil's second default dev account (public test key)
OTHER_KEY = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


@pytest.fixture
def rig(anvil: Anvil, tmp_path) -> Iterator[Rig]:
    r = Rig(anvil, tmp_path, confirmations=N)
    r.fund(ACCT, "USDT", 100 * 10**8, "seed-usdt")
    r.fund(ACCT, "ETH", 5 * 10**8, "seed-eth")
    try:
        yield r
    finally:
        r.close()


def _run(rig: Rig, proc, steps: int = 6) -> None:
    for _ in range(steps):
        proc.step()
        rig.client.mine(1)


def test_a_withdrawal_is_paid_once_and_completed_after_n_blocks(rig: Rig) -> None:
    p = rig.processor()
    row = p.request(ACCT, "USDT", 3 * 10**8, DEST)
    assert row.state == "HELD"
    assert rig.available(ACCT, "USDT") == 97 * 10**8 and rig.frozen(ACCT, "USDT") == 3 * 10**8
    p.step()  # signs and sends: mined at once (automine), 1 confirmation
    got = rig.store.withdrawal(row.id)
    assert got is not None and got.state == "SENT" and got.tx_hash is not None
    p.step()
    assert rig.store.withdrawal(row.id).state == "SENT"  # type: ignore[union-attr]
    rig.client.mine(N - 1)
    p.step()
    assert rig.store.withdrawal(row.id).state == "COMPLETED"  # type: ignore[union-attr]
    assert rig.client.token_balance(rig.usdt, DEST) == 3 * 10**6
    assert rig.frozen(ACCT, "USDT") == 0 and rig.available(ACCT, "USDT") == 97 * 10**8
    native = p.request(ACCT, "ETH", 10**8, DEST)
    _run(rig, p)
    assert rig.store.withdrawal(native.id).state == "COMPLETED"  # type: ignore[union-attr]
    assert rig.client.native_balance(DEST) == 10**18


def test_requests_the_core_or_the_chain_cannot_take_are_refused(rig: Rig) -> None:
    p = rig.processor()
    assert p.request(ACCT, "USDT", 1000 * 10**8, DEST).state == "REJECTED"
    with pytest.raises(WithdrawalError):
        p.request(ACCT, "USDT", 1, DEST)  # finer than the token's 6 decimals
    with pytest.raises(WithdrawalError):
        p.request(ACCT, "BTC", 10**8, DEST)  # no token for BTC here
    with pytest.raises(WithdrawalError):
        p.request(ACCT, "USDT", 10**8, "0x1234")
    assert rig.available(ACCT, "USDT") == 100 * 10**8


def test_a_withdrawal_that_would_revert_is_refunded(rig: Rig) -> None:
    p = rig.processor()
    # drain the operator's tokens: the transfer cannot succeed
    held = rig.client.token_balance(rig.usdt, rig.client.operator)
    rig.client.pay(rig.usdt, "0x" + "77" * 20, held)
    row = p.request(ACCT, "USDT", 2 * 10**8, DEST)
    _run(rig, p, 2)
    got = rig.store.withdrawal(row.id)
    assert got is not None and got.state == "REFUNDED" and got.tx_hash is None
    assert rig.available(ACCT, "USDT") == 100 * 10**8 and rig.frozen(ACCT, "USDT") == 0


def test_a_withdrawal_reverted_on_chain_is_refunded_after_n_blocks(rig: Rig) -> None:
    c = rig.client
    other = Account.from_key(OTHER_KEY).address
    tok = c.token(rig.usdt)
    approve = tok.functions.approve(other, 2**256 - 1).build_transaction(
        {"from": c.operator, "nonce": 0, "gas": 100_000})
    c.transact(dict(approve), gas=100_000)
    p = rig.processor()
    row = p.request(ACCT, "USDT", 2 * 10**8, DEST)
    c.rpc("evm_setAutomine", [False])
    p.step()  # signed and in the mempool
    assert rig.store.withdrawal(row.id).state == "SENT"  # type: ignore[union-attr]
    # another account drains the operator first (higher tip): the withdrawal reverts
    everything = c.token_balance(rig.usdt, c.operator)
    drain = tok.functions.transferFrom(c.operator, other, everything).build_transaction(
        {"from": other, "nonce": c.w3.eth.get_transaction_count(other), "gas": 100_000,
         "maxFeePerGas": 100 * 10**9, "maxPriorityFeePerGas": 50 * 10**9,
         "chainId": c.chain_id})
    c.w3.eth.send_raw_transaction(Account.sign_transaction(drain, OTHER_KEY).raw_transaction)
    c.rpc("evm_mine")
    c.rpc("evm_setAutomine", [True])
    p.step()
    assert rig.store.withdrawal(row.id).state == "SENT"  # reverted, not N deep yet
    assert rig.frozen(ACCT, "USDT") == 2 * 10**8
    _run(rig, p, N + 1)
    got = rig.store.withdrawal(row.id)
    assert got is not None and got.state == "REFUNDED" and "reverted" in (got.note or "")
    assert c.token_balance(rig.usdt, DEST) == 0
    assert rig.available(ACCT, "USDT") == 100 * 10**8


def _signed_then_crashed(rig: Rig, p) -> str:
    """What a processor killed right after recording SIGNED leaves behind."""
    row = p.request(ACCT, "USDT", 5 * 10**8, DEST)
    tx = rig.client.sign_transfer(rig.usdt, DEST, row.raw_amount, rig.client.nonce())
    rig.store.set_withdrawal(row.id, "SIGNED", 0, chain=p.chain, tx_hash=tx.tx_hash,
                             nonce=tx.nonce, raw_tx=tx.raw)
    return row.id


def test_a_restart_sends_the_same_signed_transaction_once(rig: Rig) -> None:
    wid = _signed_then_crashed(rig, rig.processor())
    stored = rig.store.withdrawal(wid)
    rig.reopen_core()
    p = rig.processor()
    _run(rig, p, N + 2)
    got = rig.store.withdrawal(wid)
    assert got is not None and got.state == "COMPLETED" and got.tx_hash == stored.tx_hash
    assert rig.client.token_balance(rig.usdt, DEST) == 5 * 10**6
    assert rig.client.receipt(got.tx_hash) is not None
    assert rig.frozen(ACCT, "USDT") == 0 and rig.available(ACCT, "USDT") == 95 * 10**8


def test_a_transaction_whose_nonce_was_taken_is_refunded_not_resent(rig: Rig) -> None:
    wid = _signed_then_crashed(rig, rig.processor())
    rig.client.pay(None, "0x" + "66" * 20, 1)  # another transaction takes the nonce
    p = rig.processor()
    _run(rig, p, 3)
    got = rig.store.withdrawal(wid)
    assert got is not None and got.state == "REFUNDED" and "nonce" in (got.note or "")
    assert rig.client.token_balance(rig.usdt, DEST) == 0
    assert rig.available(ACCT, "USDT") == 100 * 10**8


def test_a_taken_nonce_refunds_only_once_the_taker_is_n_deep(rig: Rig) -> None:
    """Another transaction taking the withdrawal's nonce proves it dead only once that
    transaction is N blocks deep: a reorg could drop it before.  Here the competitor is
    reorged out after one block, and the withdrawal is then paid, once, not refunded."""
    wid = _signed_then_crashed(rig, rig.processor())
    c = rig.client
    before = c.rpc("evm_snapshot")
    c.pay(None, "0x" + "66" * 20, 1)  # takes the nonce, 1 block deep
    p = rig.processor()
    p.step()
    got = rig.store.withdrawal(wid)
    assert got is not None and got.state in ("SIGNED", "SENT")  # not provably dead yet
    assert rig.frozen(ACCT, "USDT") == 5 * 10**8
    assert c.rpc("evm_revert", [before])  # the competitor's block is reorged out
    _run(rig, p, N + 2)
    got = rig.store.withdrawal(wid)
    assert got is not None and got.state == "COMPLETED"
    assert c.token_balance(rig.usdt, DEST) == 5 * 10**6
    assert rig.frozen(ACCT, "USDT") == 0 and rig.available(ACCT, "USDT") == 95 * 10**8


def test_a_taken_nonce_n_deep_is_refunded(rig: Rig) -> None:
    wid = _signed_then_crashed(rig, rig.processor())
    rig.client.pay(None, "0x" + "66" * 20, 1)
    p = rig.processor()
    p.step()
    assert rig.store.withdrawal(wid).state != "REFUNDED"  # type: ignore[union-attr]
    rig.client.mine(N - 1)
    p.step()
    got = rig.store.withdrawal(wid)
    assert got is not None and got.state == "REFUNDED" and "nonce" in (got.note or "")
    assert rig.client.token_balance(rig.usdt, DEST) == 0
    assert rig.available(ACCT, "USDT") == 100 * 10**8


def test_a_native_withdrawal_the_operator_cannot_pay_is_refunded_and_blocks_no_other(
        rig: Rig) -> None:
    """More ETH than the operator's hot wallet holds: the node refuses the estimate
    ("insufficient funds"); the withdrawal is refunded like one that would revert, and
    the withdrawals behind it (another asset, another account) are paid."""
    p = rig.processor()
    wallet_eth = rig.client.native_balance(rig.client.operator) // 10**10  # in 8 decimals
    rig.fund(ACCT, "ETH", 2 * wallet_eth, "seed-eth-big")
    big = p.request(ACCT, "ETH", wallet_eth + 10**8, DEST)
    small = p.request(ACCT, "USDT", 5 * 10**8, DEST)
    assert big.state == small.state == "HELD"
    _run(rig, p)
    got = rig.store.withdrawal(big.id)
    # anvil estimates it, then refuses it at the send: signed, never broadcast
    assert got is not None and got.state == "REFUNDED" and got.sends == 0
    assert "operator cannot pay" in (got.note or "")
    assert rig.store.withdrawal(small.id).state == "COMPLETED"  # type: ignore[union-attr]
    assert rig.frozen(ACCT, "ETH") == 0 and rig.frozen(ACCT, "USDT") == 0
    assert rig.client.token_balance(rig.usdt, DEST) == 5 * 10**6


def test_a_request_whose_hold_was_never_recorded_is_taken_over_after_the_grace(
        rig: Rig) -> None:
    """A request handler that inserted the row but could not record the hold (its store
    write failed, it died): the processor applies the idempotent hold itself once the
    row is REQUEST_GRACE_MS old, instead of leaving it REQUESTED until a restart."""
    p = rig.processor()
    row = p.prepare(ACCT, "USDT", 4 * 10**8, DEST)  # inserted; no hold applied
    p.step()
    assert rig.store.withdrawal(row.id).state == "REQUESTED"  # type: ignore[union-attr]
    assert rig.frozen(ACCT, "USDT") == 0  # fresh: its handler may still be at work
    now = p.clock_ms()
    p.clock_ms = lambda: now + REQUEST_GRACE_MS + 1
    _run(rig, p)
    assert rig.store.withdrawal(row.id).state == "COMPLETED"  # type: ignore[union-attr]
    assert rig.available(ACCT, "USDT") == 96 * 10**8 and rig.frozen(ACCT, "USDT") == 0
