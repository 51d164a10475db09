"""A data directory keeps the asset decimals it was written with (service/assetsfile.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chainbook.service.assetsfile import (
    ASSETS_FILE,
    bind_decimals,
    check_decimals,
    recorded_decimals,
)
from chainbook.service.config import ConfigError


def test_decimals_are_recorded_and_a_change_is_refused(tmp_path: Path) -> None:
    assert recorded_decimals(tmp_path) == {}
    bind_decimals(tmp_path, {"USDT": 8, "BTC": 8})
    assert recorded_decimals(tmp_path) == {"BTC": 8, "USDT": 8}
    with pytest.raises(ConfigError, match=r"USDT 6 \(recorded 8\)"):
        check_decimals(tmp_path, {"USDT": 6, "BTC": 8})
    with pytest.raises(ConfigError):
        bind_decimals(tmp_path, {"USDT": 6})
    bind_decimals(tmp_path, {"ETH": 18})  # a new asset is added; one left out is kept
    assert recorded_decimals(tmp_path) == {"BTC": 8, "ETH": 18, "USDT": 8}
    (tmp_path / ASSETS_FILE).write_text('{"USDT": "8"}')
    with pytest.raises(ConfigError, match="not a map"):
        recorded_decimals(tmp_path)
