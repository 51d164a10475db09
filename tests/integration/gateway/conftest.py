"""Fixtures of the gateway end-to-end tests (helpers live in ``gwclient``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gwclient import Server, cancel_everything, start_server, stop_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``chainbook serve --demo`` shared by the session's tests; always stopped."""
    srv = start_server(tmp_path_factory.mktemp("serve") / "data")
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture
def clean(server: Server) -> Iterator[Server]:
    """The shared server with no open orders before and after the test."""
    cancel_everything(server)
    yield server
    if server.proc.poll() is None:
        cancel_everything(server)
