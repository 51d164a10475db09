"""The assets' decimals a data directory was written with (``<data>/assets.json``).

Balances, holds and fees are integers in each asset's base units (``decimals``), so the
same data directory read with other decimals would show every balance rescaled (100 USDT
at 8 decimals read as 10,000 at 6) and pay withdrawals at the new scale.  The decimals in
force are recorded at the first start (and an asset when it first appears); a config that
gives a recorded asset other decimals is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from chainbook.service.config import ConfigError

ASSETS_FILE = "assets.json"


def recorded_decimals(data: Path) -> dict[str, int]:
    """The decimals recorded in ``data`` ({} before the first start)."""
    try:
        raw = json.loads((Path(data) / ASSETS_FILE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{data / ASSETS_FILE}: unreadable ({exc})") from None
    if not isinstance(raw, dict) or not all(
            isinstance(k, str) and type(v) is int for k, v in raw.items()):
        raise ConfigError(f"{data / ASSETS_FILE}: not a map of asset -> decimals")
    return raw


def check_decimals(data: Path, assets: dict[str, int]) -> dict[str, int]:
    """Raise ConfigError if ``assets`` gives a recorded asset other decimals; return the
    recorded map merged with the new assets."""
    recorded = recorded_decimals(data)
    changed = sorted(a for a, d in assets.items() if a in recorded and recorded[a] != d)
    if changed:
        what = ", ".join(f"{a} {assets[a]} (recorded {recorded[a]})" for a in changed)
        raise ConfigError(f"the config changes the decimals of {what}: every balance of "
                          f"{data} is in the recorded units; set them back")
    return {**recorded, **assets}


def bind_decimals(data: Path, assets: dict[str, int]) -> None:
    """``check_decimals``, then record the merged map (atomically) if it grew."""
    merged = check_decimals(data, assets)
    if merged == recorded_decimals(data):
        return
    path = Path(data) / ASSETS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(merged, sort_keys=True, indent=1) + "\n")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
