"""Fixtures for the gateway tests: a running REST gateway (see restfixtures.py).

``gw`` is a ``Gateway`` with BTCUSDT and ETHUSDT listed and accounts alice (1) and bob
(2) funded; ``client`` a TestClient on its app; ``alice``/``bob`` sign like the clients.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from restfixtures import Gateway, Signer, TestClient


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    g = Gateway(tmp_path)
    yield g
    g.keys.close()


@pytest.fixture
def client(gw: Gateway) -> Iterator[TestClient]:
    with TestClient(gw.app) as c:
        yield c


@pytest.fixture
def alice(gw: Gateway, client: TestClient) -> Signer:
    return Signer(client, gw.alice, gw.clock)


@pytest.fixture
def bob(gw: Gateway, client: TestClient) -> Signer:
    return Signer(client, gw.bob, gw.clock)
