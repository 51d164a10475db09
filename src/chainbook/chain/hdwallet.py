"""Deposit addresses: one per account, derived from the operator's HD seed.

Derivation (BIP-39 / BIP-32 / BIP-44, the same as MetaMask and anvil): the seed file
holds a 24-word English BIP-39 mnemonic; the seed is PBKDF2 of it with an empty
passphrase; account ``n`` gets the key at ``m/44'/60'/0'/0/n`` and its Ethereum address
(keccak of the public key).  Anyone holding the mnemonic can re-derive every deposit key
(e.g. to sweep funds) with any BIP-44 wallet.  eth-account's HD functions are used
(they are marked "unaudited" by their authors).

``DepositAddresses`` caches the addresses in the funds store so the watcher looks an
address up in a dict (O(1)) and other processes (the CLI) can add addresses that a
running watcher picks up on its next step.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from eth_account.hdaccount import generate_mnemonic, key_from_seed, seed_from_mnemonic
from eth_account.types import Language
from eth_keys import keys
from eth_keys.constants import SECPK1_N

from chainbook.chain.fundstore import FundStore

MAX_ACCOUNT = 2**31 - 1  # a non-hardened BIP-32 index


def path_of(account: int) -> str:
    """The BIP-44 derivation path of ``account``'s deposit key."""
    if not 0 <= account <= MAX_ACCOUNT:
        raise ValueError(f"account {account} is not a BIP-32 index (0..2^31-1)")
    return f"m/44'/60'/0'/0/{account}"


def read_or_create_secret(path: Path, make: Callable[[], str]) -> str:
    """The text of the secret file ``path``, created (0600) with ``make()`` if absent."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    text = make() + "\n"
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # never replaces a file another process created meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def new_operator_key() -> str:
    """A fresh random secp256k1 private key as 64 hex digits."""
    while True:
        raw = os.urandom(32)
        if 0 < int.from_bytes(raw, "big") < SECPK1_N:
            return raw.hex()


class HDWallet:
    """Keys and addresses of ``m/44'/60'/0'/0/<account>`` under one mnemonic."""

    def __init__(self, mnemonic: str) -> None:
        self._seed = seed_from_mnemonic(mnemonic, "")

    @classmethod
    def load_or_create(cls, path: str | Path) -> HDWallet:
        """The wallet of the mnemonic in ``path`` (a new 24-word one, 0600, if absent)."""
        words = read_or_create_secret(Path(path),
                                      lambda: generate_mnemonic(24, Language.ENGLISH))
        return cls(words)

    def key(self, account: int) -> bytes:
        """The 32-byte private key of ``account``'s deposit address."""
        return bytes(key_from_seed(self._seed, path_of(account)))

    def address(self, account: int) -> str:
        """``account``'s deposit address, EIP-55 checksummed."""
        pub = keys.PrivateKey(self.key(account)).public_key
        return str(pub.to_checksum_address())


class DepositAddresses:
    """account -> address (derived once, stored) and address -> account (a dict)."""

    def __init__(self, wallet: HDWallet, store: FundStore) -> None:
        self.wallet = wallet
        self.store = store
        self._lock = threading.Lock()
        self._by_address: dict[str, int] = {}
        self._by_account: dict[int, str] = {}
        self._last_seq = 0
        self.refresh()

    def refresh(self) -> int:
        """Load addresses other processes added; return how many were new."""
        rows = self.store.addresses_after(self._last_seq)
        new = 0
        with self._lock:
            for seq, account, address in rows:
                new += account not in self._by_account
                self._by_address[address.lower()] = account
                self._by_account[account] = address
                self._last_seq = max(self._last_seq, seq)
        return new

    def address(self, account: int) -> str:
        """The deposit address of ``account`` (derived and stored on first use)."""
        with self._lock:
            known = self._by_account.get(account)
        if known is not None:
            return known
        address = self.store.add_address(account, self.wallet.address(account))
        with self._lock:
            self._by_address[address.lower()] = account
            self._by_account[account] = address
        return address

    def account_of(self, address: str) -> int | None:
        """The account owning deposit ``address`` (any case), or None."""
        return self._by_address.get(address.lower())

    def known(self) -> dict[str, int]:
        """A copy of lower-case address -> account."""
        with self._lock:
            return dict(self._by_address)
