"""The embedded chain: an in-process EVM (eth-tester + py-evm), so ``serve`` needs no node.

``embedded_tester`` builds an ``EthereumTester`` on py-evm's Prague VM whose genesis
funds the operator (and eth-tester's ten default accounts, for tests and demos).  Blocks
are mined per transaction (auto-mine); ``ChainClient.heartbeat`` mines an empty block now
and then so confirmations keep counting on a quiet embedded chain, while something awaits
them (a pending deposit, a payout or a batch sent): an idle chain mines nothing (each
block is ~2.3 ms of py-evm under the server's GIL).  The chain lives in
memory: a restart starts a new chain (the settler store notices, see store.py).

This module does not import web3: ``client.py`` wraps the tester in web3's
``EthereumTesterProvider``.  eth-tester checks no chain id (toolchain note, trap 2).
"""

from __future__ import annotations

from typing import Any

from eth_keys import keys
from eth_tester import EthereumTester, PyEVMBackend  # type: ignore[import-untyped]

EMBEDDED_CHAIN_ID = 131277322940537  # fixed by eth-tester's tester chain
OPERATOR_FUNDS_WEI = 10**24  # one million ether
DEFAULT_ACCOUNTS = 10


def address_of(private_key: bytes) -> bytes:
    """The 20-byte address of a secp256k1 private key."""
    return keys.PrivateKey(private_key).public_key.to_canonical_address()


def embedded_tester(funded_keys: list[bytes], funds_wei: int = OPERATOR_FUNDS_WEI) -> Any:
    """A fresh in-memory chain with each key in ``funded_keys`` holding ``funds_wei``."""
    if not funded_keys:
        raise ValueError("the embedded chain needs at least the operator key")
    state = dict(PyEVMBackend.generate_genesis_state(num_accounts=DEFAULT_ACCOUNTS))
    for key in funded_keys:
        state[address_of(key)] = {"balance": funds_wei, "nonce": 0, "code": b"",
                                  "storage": {}}
    backend = PyEVMBackend(genesis_state=state)
    return EthereumTester(backend=backend)
