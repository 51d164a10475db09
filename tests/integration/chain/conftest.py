"""A fresh anvil node per test (the pinned npm binary, see scripts/build-contracts.sh).

Tests skip when the binary is absent, unless CHAINBOOK_REQUIRE_SERVICES=1 (CI), where
they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from chainbook.chain.anvil import ANVIL_CHAIN_ID, DEV_KEY, Anvil, find_anvil
from chainbook.chain.client import ChainClient

REQUIRE = bool(os.environ.get("CHAINBOOK_REQUIRE_SERVICES"))


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """An anvil node on a free loopback port, killed after the test."""
    binary = find_anvil()
    if binary is None:
        msg = ("anvil binary not found: run `bash scripts/build-contracts.sh` "
               "(npm ci in contracts/) or set CHAINBOOK_ANVIL")
        if REQUIRE:
            pytest.fail(msg)
        pytest.skip(msg)
    node = Anvil(binary)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def client(anvil: Anvil) -> ChainClient:
    """A client on ``anvil`` with a freshly deployed Settlement (operator: anvil's key 0)."""
    c = ChainClient(anvil.url, ANVIL_CHAIN_ID, DEV_KEY, confirmations=3)
    c.deploy_settlement()
    return c
