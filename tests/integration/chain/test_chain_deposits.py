"""Deposit watcher on anvil: N confirmations, reorgs, duplicates, unknown addresses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fundsrig import MNEMONIC, Rig

from chainbook.chain.anvil import ANVIL_CHAIN_ID, DEV_KEY, Anvil, find_anvil
from chainbook.chain.client import ChainIdMismatch, FundsClient
from chainbook.chain.fundstore import CREDITED, DUST, PENDING, REJECTED, FundStore
from chainbook.chain.hdwallet import DepositAddresses, HDWallet

N = 3
USDT_UNIT = 10**6  # token units per USDT (6 decimals)
ETH_WEI = 10**18


@pytest.fixture
def rig(anvil: Anvil, tmp_path) -> Iterator[Rig]:
    r = Rig(anvil, tmp_path, confirmations=N)
    try:
        yield r
    finally:
        r.close()


def test_token_and_native_deposits_credit_after_exactly_n_confirmations(rig: Rig) -> None:
    w = rig.watcher()
    addr = rig.addresses.address(7)
    rig.client.pay(rig.usdt, addr, 5 * USDT_UNIT)  # mined in its own block: 1 confirmation
    rig.client.pay(None, addr, 2 * ETH_WEI)  # next block
    w.step()
    rows = {r.asset: r for r in rig.store.deposits(7)}
    assert rows["USDT"].state == PENDING and rows["ETH"].state == PENDING
    assert rows["ETH"].log_index == -1
    assert w.confirmations_of(rows["USDT"]) == 2 and w.confirmations_of(rows["ETH"]) == 1
    assert rig.available(7, "USDT") == 0
    rig.client.mine(1)  # USDT: 3 confirmations, ETH: 2
    assert w.step() == 1
    assert rig.available(7, "USDT") == 5 * 10**8  # 6 -> 8 decimals
    assert rig.available(7, "ETH") == 0
    rig.client.mine(1)
    assert w.step() == 1
    assert rig.available(7, "ETH") == 2 * 10**8
    assert {r.state for r in rig.store.deposits(7)} == {CREDITED}
    for _ in range(3):
        rig.client.mine(1)
        assert w.step() == 0
    assert rig.available(7, "USDT") == 5 * 10**8


def test_finer_than_the_asset_is_floored_and_the_dust_recorded(rig: Rig) -> None:
    w = rig.watcher()
    addr = rig.addresses.address(3)
    rig.client.pay(None, addr, 15 * 10**9)  # 1.5e-8 ETH: one 8-decimal unit + dust
    rig.client.pay(None, addr, 10**9)  # below one unit: never credited
    rig.client.mine(N)
    w.step()
    rows = sorted(rig.store.deposits(3), key=lambda r: r.raw_amount)
    assert [(r.units, r.dust, r.state) for r in rows] == [(0, 10**9, DUST),
                                                          (1, 5 * 10**9, CREDITED)]
    assert rig.available(3, "ETH") == 1


@pytest.mark.parametrize("restart", [False, True])
def test_a_deposit_reorged_out_is_never_credited(rig: Rig, restart: bool) -> None:
    """Also when the reorg happens while the watcher is stopped: the restart rescans from
    a block that is still canonical, so it sees no reorg, and the pending row of the
    vanished transfer must not survive it (it was credited once deep enough)."""
    w = rig.watcher()
    addr = rig.addresses.address(9)
    rig.client.mine(5)
    w.step()
    snap = rig.client.rpc("evm_snapshot")
    rig.client.pay(rig.usdt, addr, 4 * USDT_UNIT)
    rig.client.mine(N - 2)  # one short of N
    w.step()
    assert [r.state for r in rig.store.deposits(9)] == [PENDING]
    assert rig.client.rpc("evm_revert", [snap]) is True
    rig.client.mine(N + 3)  # a longer chain without the transfer
    if restart:
        w = rig.watcher()  # the same store, after the reorg
    for _ in range(3):
        w.step()
    assert rig.client.token_balance(rig.usdt, addr) == 0
    assert rig.store.deposits(9) == []
    assert rig.available(9, "USDT") == 0
    assert w.stats.alerts == []
    if not restart:
        assert w.stats.reorgs == 1 and w.stats.orphaned == 1


def test_a_reorg_between_the_log_query_and_the_block_reads_loses_nothing(rig: Rig) -> None:
    """The node switches forks right after answering eth_getLogs (old fork: no logs at
    those heights; new fork: a deposit there): the deposit is still found and credited."""
    w = rig.watcher()
    addr = rig.addresses.address(9)
    rig.client.mine(5)
    w.step()
    snap = rig.client.rpc("evm_snapshot")
    rig.client.mine(2)  # fork A: two empty blocks
    real = rig.client.transfer_logs

    def logs_then_reorg(a: int, b: int, tokens: list[str]):  # type: ignore[no-untyped-def]
        out = real(a, b, tokens)
        rig.client.transfer_logs = real  # once
        rig.client.rpc("evm_revert", [snap])  # fork B: the same heights, with a deposit
        rig.client.pay(rig.usdt, addr, 4 * USDT_UNIT)
        rig.client.mine(1)
        return out

    rig.client.transfer_logs = logs_then_reorg  # type: ignore[method-assign]
    w.step()
    rig.client.mine(N + 2)
    for _ in range(3):
        w.step()
    assert rig.client.token_balance(rig.usdt, addr) == 4 * USDT_UNIT
    assert [r.state for r in rig.store.deposits(9)] == [CREDITED]
    assert rig.available(9, "USDT") == 4 * 10**8


def test_a_deposit_beyond_the_cores_range_is_refused_and_the_watcher_goes_on(
        anvil: Anvil, tmp_path) -> None:
    big = FundsClient(anvil.url, ANVIL_CHAIN_ID, DEV_KEY, 2).deploy_token(
        "Tether", "USDT", 6, 10**18 * USDT_UNIT)
    rig = Rig(anvil, tmp_path, confirmations=2, usdt=big)
    try:
        w = rig.watcher()
        a, b = rig.addresses.address(1), rig.addresses.address(2)
        rig.client.pay(big, a, 10**11 * USDT_UNIT)  # 1e19 asset units > 2^63
        rig.client.pay(big, b, 5 * USDT_UNIT)  # an ordinary deposit after it
        rig.client.mine(4)
        for _ in range(3):
            w.step()
        assert [(r.account, r.state) for r in rig.store.deposits(1)] == [(1, REJECTED)]
        assert [r.state for r in rig.store.deposits(2)] == [CREDITED]
        assert rig.available(2, "USDT") == 5 * 10**8 and rig.available(1, "USDT") == 0
        assert any("beyond" in a for a in w.stats.alerts)
    finally:
        rig.close()


def test_a_credited_deposit_orphaned_deeper_than_n_raises_an_alert(rig: Rig) -> None:
    w = rig.watcher()
    addr = rig.addresses.address(4)
    w.step()
    snap = rig.client.rpc("evm_snapshot")
    rig.client.pay(rig.usdt, addr, USDT_UNIT)
    rig.client.mine(N)
    w.step()
    assert rig.available(4, "USDT") == 10**8
    rig.client.rpc("evm_revert", [snap])
    rig.client.mine(2 * N + 2)
    w.step()
    assert len(w.stats.alerts) == 1 and "orphaned" in w.stats.alerts[0]
    assert [r.orphaned for r in rig.store.deposits(4)] == [1]


def test_the_same_deposit_seen_again_is_credited_once(rig: Rig, tmp_path) -> None:
    w = rig.watcher()
    addr = rig.addresses.address(5)
    rig.client.pay(rig.usdt, addr, 7 * USDT_UNIT)
    rig.client.mine(N)
    w.step()
    assert rig.available(5, "USDT") == 7 * 10**8
    # restart with a wide rescan margin: the same blocks are read again
    rig.reopen_core()
    w2 = rig.watcher(restart_margin=50)
    w2.step()
    # a crash between the core's credit and the row update: the row is PENDING again
    row = rig.store.deposits(5)[0]
    with rig.store.tx() as db:
        db.execute("UPDATE deposits SET state = 'PENDING' WHERE id = ?", (row.id,))
    w2.step()
    assert rig.store.deposits(5)[0].state == CREDITED
    # a lost store: everything is found again from block 0, the core refuses the repeat
    rig.store = FundStore(tmp_path / "fresh.sqlite")
    rig.addresses = DepositAddresses(HDWallet(MNEMONIC), rig.store)
    rig.addresses.address(5)
    w3 = rig.watcher()
    w3.step()
    assert len(rig.store.deposits(5)) == 1
    rig.reopen_core()
    assert rig.available(5, "USDT") == 7 * 10**8


def test_transfers_to_unknown_addresses_are_ignored(rig: Rig) -> None:
    w = rig.watcher()
    rig.addresses.address(1)
    stranger = "0x" + "ab" * 20
    underived = rig.addresses.wallet.address(2)  # derivable, but never handed out
    rig.client.pay(rig.usdt, stranger, USDT_UNIT)
    rig.client.pay(None, underived, ETH_WEI)
    rig.client.mine(N)
    w.step()
    assert rig.store.deposits() == []
    assert rig.available(2, "ETH") == 0
    assert w.stats.blocks > N


def test_a_wrong_chain_id_is_refused(rig: Rig, tmp_path) -> None:
    with pytest.raises(ChainIdMismatch):
        FundsClient(rig.anvil.url, ANVIL_CHAIN_ID + 1, DEV_KEY)
    rig.watcher().step()  # binds the store to this chain
    binary = find_anvil()
    assert binary is not None
    with Anvil(binary, chain_id=ANVIL_CHAIN_ID + 7) as other:
        c = FundsClient(other.url, ANVIL_CHAIN_ID + 7, DEV_KEY, N)
        rig.client = c
        with pytest.raises(ValueError, match="follows chain"):
            rig.watcher()


@pytest.mark.parametrize("restart", [True, False])
def test_a_transfer_re_included_at_another_log_index_is_credited_once(
        rig: Rig, restart: bool) -> None:
    """A reorg brings the very same signed transfer back behind another token transfer,
    so its block-wide log index changes: it is still the same deposit (restart during
    a shallow reorg, or a running watcher after a reorg deeper than N)."""
    from eth_account import Account

    c = rig.client
    key = "11" * 32  # a third party holding USDT and gas
    third = Account.from_key(key).address
    c.pay(rig.usdt, third, 50 * USDT_UNIT)
    c.pay(None, third, ETH_WEI)
    w = rig.watcher()
    addr = rig.addresses.address(9)
    w.step()
    snap = c.rpc("evm_snapshot")
    t = c.sign_transfer(rig.usdt, addr, 4 * USDT_UNIT, c.nonce())
    c.send(t)  # alone in its block: log index 0
    if restart:
        w.step()  # PENDING, then the watcher stops
        assert [r.state for r in rig.store.deposits(9)] == [PENDING]
    else:
        c.mine(N)
        w.step()  # CREDITED
        assert rig.available(9, "USDT") == 4 * 10**8
    c.rpc("evm_revert", [snap])
    c.rpc("evm_setAutomine", [False])
    tok = c.token(rig.usdt)  # another transfer first in the block, then T again
    tx = tok.functions.transfer("0x" + "77" * 20, USDT_UNIT).build_transaction({
        "from": third, "nonce": c.w3.eth.get_transaction_count(third), "gas": 100000,
        "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 5 * 10**10, "chainId": ANVIL_CHAIN_ID})
    c.w3.eth.send_raw_transaction(Account.sign_transaction(tx, key).raw_transaction)
    c.w3.eth.send_raw_transaction(t.raw)  # the very same signed transfer
    c.mine(1)
    c.rpc("evm_setAutomine", [True])
    c.mine(2 * N + 2)
    if restart:
        w = rig.watcher()
    for _ in range(3):
        w.step()
    rows = rig.store.deposits(9)
    assert c.token_balance(rig.usdt, addr) == 4 * USDT_UNIT
    assert [(r.state, r.log_index) for r in rows] == [(CREDITED, 1)]  # moved, one row
    assert rig.available(9, "USDT") == 4 * 10**8  # credited once
