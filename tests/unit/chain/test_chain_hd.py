"""HD deposit addresses: BIP-44 derivation, secret files, the address book."""

from __future__ import annotations

import stat

import pytest

from chainbook.chain.fundstore import FundStore
from chainbook.chain.hdwallet import (
    DepositAddresses,
    HDWallet,
    new_operator_key,
    path_of,
    read_or_create_secret,
)

MNEMONIC = "test test test test test test test test test test test junk"  # public test vector


def test_derivation_matches_the_standard_bip44_addresses() -> None:
    w = HDWallet(MNEMONIC)  # anvil / hardhat derive their dev accounts the same way
    assert w.address(0) == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert w.address(1) == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert w.key(0).hex() == "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    assert path_of(7) == "m/44'/60'/0'/0/7"
    with pytest.raises(ValueError):
        path_of(2**31)


def test_secret_files_are_created_once_owner_only(tmp_path) -> None:
    seed = tmp_path / "hd-seed"
    w1 = HDWallet.load_or_create(seed)
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
    assert len(seed.read_text().split()) == 24
    assert HDWallet.load_or_create(seed).address(5) == w1.address(5)  # same file, same keys
    key = read_or_create_secret(tmp_path / "operator.key", new_operator_key)
    assert len(bytes.fromhex(key)) == 32
    assert read_or_create_secret(tmp_path / "operator.key", new_operator_key) == key
    assert not list(tmp_path.glob("*.tmp"))


def test_addresses_are_stored_and_seen_by_another_book(tmp_path) -> None:
    store = FundStore(tmp_path / "f.sqlite")
    book = DepositAddresses(HDWallet(MNEMONIC), store)
    a = book.address(3)
    assert book.account_of(a.lower()) == 3 and book.account_of(a.upper().replace("0X", "0x"))\
        == 3
    assert book.account_of("0x" + "00" * 20) is None
    other = DepositAddresses(HDWallet(MNEMONIC), FundStore(tmp_path / "f.sqlite"))
    b = other.address(9)  # e.g. the CLI, in another process
    assert book.account_of(b) is None
    assert book.refresh() == 1 and book.account_of(b) == 9
    assert book.address(3) == a and store.add_address(3, "0xdifferent") == a
