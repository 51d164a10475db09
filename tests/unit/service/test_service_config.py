"""Config: the built-in default, the shipped file, conversion to integers, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from chainbook.domain.enums import BreakerAction, Stp
from chainbook.service.config import (
    DEFAULT_TOML,
    ConfigError,
    default_config,
    load_config,
    parse_config,
    parse_hostport,
)

REPO = Path(__file__).resolve().parents[3]


def test_default_lists_three_symbols_in_integer_units() -> None:
    cfg = default_config()
    assert cfg.assets == {"BTC": 8, "ETH": 8, "USDT": 8}
    assert [s.name for s in cfg.symbols] == ["BTCUSDT", "ETHUSDT", "ETHBTC"]
    btc = cfg.symbols[0]
    assert (btc.tick_size, btc.lot_size) == ("0.01", "0.00001")
    assert btc.lot_units == 1000 and btc.quote_per_tick_lot == 10
    assert btc.min_qty == 1 and btc.max_qty == 9000 * 10**5
    assert btc.min_price == 1 and btc.max_price == 10**8
    assert btc.min_notional == 5 * 10**8 and btc.max_notional == 9_000_000 * 10**8
    assert (btc.maker_bps, btc.taker_bps, btc.band_bps) == (10, 10, 1000)
    assert btc.breaker_bps == 1000 and btc.breaker_window_ns == 60 * 10**9
    assert btc.breaker_action == BreakerAction.HALT and btc.default_stp == Stp.EXPIRE_MAKER
    ethbtc = cfg.symbols[2]
    assert ethbtc.min_notional == 10_000  # 0.0001 BTC
    assert all(s.validate() is None for s in cfg.symbols)
    assert (cfg.host, cfg.port, cfg.fsync, cfg.multicast) == ("127.0.0.1", 8765, "every", False)
    assert (cfg.multicast_group, cfg.multicast_port) == ("239.255.42.1", 31337)


def test_shipped_example_file_equals_the_default() -> None:
    path = REPO / "config" / "chainbook.toml"
    assert path.read_text() == DEFAULT_TOML
    cfg = load_config(path)
    assert cfg.symbols == default_config().symbols and cfg.assets == default_config().assets
    assert load_config(None).symbols == cfg.symbols
    assert cfg.trusted_proxies == []  # X-Forwarded-For is not believed by default
    own = parse_config(DEFAULT_TOML.replace("trusted_proxies = []",
                                            'trusted_proxies = ["10.0.0.1"]'), "c.toml")
    assert own.trusted_proxies == ["10.0.0.1"]
    assert cfg.http == "fast"
    assert parse_config(DEFAULT_TOML.replace('http = "fast"', 'http = "uvicorn"'),
                        "c.toml").http == "uvicorn"
    with pytest.raises(ConfigError, match="http: fast or uvicorn"):
        parse_config(DEFAULT_TOML.replace('http = "fast"', 'http = "h2"'), "c.toml")


SMALL = """
[server]
port = 9000
fsync = "off"
[multicast]
enabled = true
group = "239.1.2.3"
port = 4000
[rate_limits]
orders_per_10s = 50
[assets.SOL]
decimals = 9
[assets.USDC]
decimals = 6
[symbols.SOLUSDC]
base = "SOL"
quote = "USDC"
tick_size = "0.01"
lot_size = "0.001"
max_qty = "0"
maker_bps = 2
"""


def test_a_file_sets_assets_symbols_and_server(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(SMALL)
    cfg = load_config(p)
    assert cfg.assets == {"SOL": 9, "USDC": 6}
    (s,) = cfg.symbols
    assert (s.base_decimals, s.quote_decimals, s.lot_units, s.quote_per_tick_lot) == (
        9, 6, 10**6, 10)
    assert s.max_qty == 0 and s.min_qty == 1 and s.maker_bps == 2 and s.taker_bps == 0
    assert (cfg.port, cfg.fsync, cfg.multicast, cfg.multicast_group) == (
        9000, "off", True, "239.1.2.3")
    assert cfg.rate_limits["orders_per_10s"] == 50
    assert cfg.rate_limits["orders_per_day"] == 200_000


@pytest.mark.parametrize("patch, message", [
    (('base = "SOL"', 'base = "DOGE"'), "unknown base asset 'DOGE'"),
    (('tick_size = "0.01"', 'tick_size = "0.0000001"'), "not representable"),
    (('lot_size = "0.001"', 'lot_size = "0.0000000001"'), "not representable"),
    (('max_qty = "0"', 'max_qty = "1.0005"'), "max_qty: quantity 1.0005 is not a multiple"),
    (('max_qty = "0"', 'max_qty = "-1"'), "max_qty: not a decimal"),
    (('max_qty = "0"', 'max_qty = 5'), "expected a string"),
    (('maker_bps = 2', 'maker_bps = 20000'), "fees must be between"),
    (('maker_bps = 2', 'makr_bps = 2'), "unknown key(s) makr_bps"),
    (('fsync = "off"', 'fsync = "sometimes"'), "every, interval or off"),
    (('decimals = 9', 'decimals = "9"'), "expected an integer"),
    (('port = 9000', 'port = 70000'), "a port is 0..65535"),
    (('lot_size = "0.001"\n', '\n'), "lot_size is required"),
    (('[server]', '[server]\nx ='), "not valid TOML"),
    (('fsync = "off"', 'fsync = "off"\ntrusted_proxies = "127.0.0.1"'),
     "trusted_proxies: a list of addresses"),
])
def test_errors_name_the_place_and_the_problem(patch: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(SMALL.replace(*patch, 1), "c.toml")
    assert message in str(exc.value) and "c.toml" in str(exc.value)


def test_other_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="at least one asset"):
        parse_config("[server]\nport = 1\n")
    assert parse_hostport("239.255.42.1:31337") == ("239.255.42.1", 31337)
    for bad in ("239.1.1.1", ":5", "h:0", "h:x"):
        with pytest.raises(ConfigError, match="GROUP:PORT"):
            parse_hostport(bad)


def test_symbol_integers_beyond_64_bits_are_refused() -> None:
    """A breaker window of 2**63-1 ms passed the check and crashed serve when the core
    could not store the symbol (its ns overflow 64 bits; found by review)."""
    import re as _re
    text, n = _re.subn(r"(?m)^breaker_window_ms = \d+", f"breaker_window_ms = {2**63 - 1}",
                       DEFAULT_TOML, count=1)
    assert n == 1
    with pytest.raises(ConfigError, match="breaker_window_ms: at most"):
        parse_config(text)


@pytest.mark.parametrize("group", ["nope", "10.0.0.1", "::1", "239.255.42.1x"])
def test_a_multicast_group_must_be_an_ipv4_multicast_address(group: str) -> None:
    """"nope" passed the config check and serve died with a traceback when it opened the
    tick socket (found by review)."""
    text = DEFAULT_TOML.replace('group = "239.255.42.1"', f'group = "{group}"')
    assert text != DEFAULT_TOML
    with pytest.raises(ConfigError, match="multicast address"):
        parse_config(text)
