"""The ``feed`` fixture of the market-data tests (helpers in mdfeed.py)."""

from __future__ import annotations

import pytest
from mdfeed import Feed


@pytest.fixture
def feed() -> Feed:
    """A fresh engine with BTCUSDT listed and accounts 1-3 funded, feeding market data."""
    return Feed()
