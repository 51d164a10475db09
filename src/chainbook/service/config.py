"""The exchange's configuration: assets, symbols and server settings from a TOML file.

Sizes and filters are decimal strings in human units (``tick_size = "0.01"``); they are
turned into integer ``SymbolSpec`` fields here (ticks, lots, base units), strictly: a
value that is not a whole number of steps is an error, never rounded.  Without a file
the built-in default below is used; ``config/chainbook.toml`` is the same text.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainbook.chain.settings import ChainConfig, ChainConfigError, parse_chain
from chainbook.domain.enums import BreakerAction, Stp
from chainbook.domain.instruments import SymbolSpec
from chainbook.domain.units import UnitError, amount_units, parse_decimal, price_ticks, qty_lots
from chainbook.journal.backend import FsyncPolicy

MS = 1_000_000  # ns
LEDGER_MODES = ("process", "thread")  # [ledger] mode: app.py, service/ledgerproc.py

DEFAULT_TOML = """\
# chainbook serve configuration (the built-in default; chainbook serve --config FILE)
# Sizes, prices and amounts are decimal strings in human units.

[server]
host = "127.0.0.1"
port = 8765
fsync = "every"            # every | interval | off: when an acknowledged command is fsynced
snapshot_every = 100000    # commands between snapshots
trusted_proxies = []       # addresses whose X-Forwarded-For names the client (rate limits
                           # by IP); none by default: a client cannot pick its own address
http = "fast"              # fast: REST answered by the HTTP protocol itself; uvicorn: ASGI

[multicast]                # hot tick datagrams (chainbook ticks listens)
enabled = false
group = "239.255.42.1"
port = 31337
resend_port = 31338        # unicast gap re-send requests

[ledger]                   # the settlement service (SQL ledger), run by serve
enabled = true
mode = "process"           # process: a child process serve supervises | thread: in serve
url = ""                   # SQLAlchemy URL; "" = sqlite:///<data>/ledger.sqlite

[rate_limits]              # per API key (orders) and per IP (request weight)
request_weight_per_minute = 6000
orders_per_10s = 100
orders_per_day = 200000
ws_connections_per_5m = 300  # WebSocket connections opened per IP (Binance: 300)

[assets.BTC]
decimals = 8

[assets.ETH]
decimals = 8

[assets.USDT]
decimals = 8

[symbols.BTCUSDT]
base = "BTC"
quote = "USDT"
tick_size = "0.01"
lot_size = "0.00001"
min_qty = "0.00001"
max_qty = "9000"
min_price = "0.01"
max_price = "1000000"
min_notional = "5"
max_notional = "9000000"
maker_bps = 10
taker_bps = 10
band_bps = 1000            # orders more than 10% away from the reference price are refused
max_open_orders = 200
breaker_bps = 1000         # a 10% move within the window trips the circuit breaker
breaker_window_ms = 60000
breaker_cooldown_ms = 60000
breaker_action = "HALT"    # HALT | CANCEL_ONLY
default_stp = "EXPIRE_MAKER"

[symbols.ETHUSDT]
base = "ETH"
quote = "USDT"
tick_size = "0.01"
lot_size = "0.0001"
min_qty = "0.0001"
max_qty = "9000"
min_price = "0.01"
max_price = "1000000"
min_notional = "5"
max_notional = "9000000"
maker_bps = 10
taker_bps = 10
band_bps = 1000
max_open_orders = 200
breaker_bps = 1000
breaker_window_ms = 60000
breaker_cooldown_ms = 60000
breaker_action = "HALT"
default_stp = "EXPIRE_MAKER"

[symbols.ETHBTC]
base = "ETH"
quote = "BTC"
tick_size = "0.00001"      # x lot 0.001 = 1 satoshi: the finest pair 8-decimal BTC allows
lot_size = "0.001"
min_qty = "0.001"
max_qty = "100000"
min_price = "0.00001"
max_price = "1000"
min_notional = "0.0001"
max_notional = "9000"
maker_bps = 10
taker_bps = 10
band_bps = 1000
max_open_orders = 200
breaker_bps = 1000
breaker_window_ms = 60000
breaker_cooldown_ms = 60000
breaker_action = "HALT"
default_stp = "EXPIRE_MAKER"
"""

_SYMBOL_REQUIRED = ("base", "quote", "tick_size", "lot_size")
_SYMBOL_DECIMALS = ("min_qty", "max_qty", "min_price", "max_price", "min_notional",
                    "max_notional")
_SYMBOL_INTS = ("maker_bps", "taker_bps", "band_bps", "max_open_orders", "breaker_bps",
                "breaker_window_ms", "breaker_cooldown_ms")
_SYMBOL_KEYS = set(_SYMBOL_REQUIRED + _SYMBOL_DECIMALS + _SYMBOL_INTS
                   + ("breaker_action", "default_stp"))
_RATE_KEYS = ("request_weight_per_minute", "orders_per_10s", "orders_per_day",
              "ws_connections_per_5m")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says where and why."""


@dataclass
class Config:
    """Everything ``chainbook serve`` needs besides the data directory."""

    assets: dict[str, int]  # asset -> decimals
    symbols: list[SymbolSpec]
    host: str = "127.0.0.1"
    port: int = 8765
    fsync: str = "every"
    snapshot_every: int = 100_000
    trusted_proxies: list[str] = field(default_factory=list)
    http: str = "fast"  # fast | uvicorn (gateway/fasthttp.py)
    multicast: bool = False
    multicast_group: str = "239.255.42.1"
    multicast_port: int = 31337
    multicast_resend_port: int = 31338
    ledger: bool = True
    ledger_mode: str = "process"  # "process" (a child of serve) | "thread" (inside serve)
    ledger_url: str = ""  # "" = the embedded SQLite file in the data directory
    chain: ChainConfig = field(default_factory=ChainConfig)  # [chain], chain/settings.py
    rate_limits: dict[str, int] = field(default_factory=lambda: {
        "request_weight_per_minute": 6000, "orders_per_10s": 100, "orders_per_day": 200_000,
        "ws_connections_per_5m": 300})
    source: str = "<built-in default>"


def default_config() -> Config:
    """The built-in configuration (BTC, ETH, USDT; BTCUSDT, ETHUSDT, ETHBTC)."""
    return parse_config(DEFAULT_TOML, "<built-in default>")


def load_config(path: str | Path | None) -> Config:
    """Read ``path`` (the built-in default when None); raise ConfigError if unusable."""
    if path is None:
        return default_config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_config(text, str(p))


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse TOML ``text``; ``source`` names it in error messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    _known(doc, {"server", "multicast", "ledger", "chain", "rate_limits", "assets", "symbols"},
           source)
    assets = _assets(doc.get("assets"), source)
    symbols_doc = _table(doc.get("symbols", {}), f"{source}: [symbols]")
    symbols = [_symbol(name, _table(body, f"{source}: [symbols.{name}]"), assets, source)
               for name, body in symbols_doc.items()]
    cfg = Config(assets=assets, symbols=symbols, source=source)
    _server(cfg, _table(doc.get("server", {}), f"{source}: [server]"), source)
    _multicast(cfg, _table(doc.get("multicast", {}), f"{source}: [multicast]"), source)
    _ledger(cfg, _table(doc.get("ledger", {}), f"{source}: [ledger]"), source)
    try:
        cfg.chain = parse_chain(_table(doc.get("chain", {}), f"{source}: [chain]"),
                                f"{source}: [chain]", assets)
    except ChainConfigError as exc:
        raise ConfigError(str(exc)) from None
    rl = _table(doc.get("rate_limits", {}), f"{source}: [rate_limits]")
    _known(rl, set(_RATE_KEYS), f"{source}: [rate_limits]")
    for k, v in rl.items():
        cfg.rate_limits[k] = _int(v, f"{source}: rate_limits.{k}", minimum=1)
    return cfg


# --- sections ------------------------------------------------------------------------


def _assets(doc: Any, source: str) -> dict[str, int]:
    if not doc:
        raise ConfigError(f"{source}: no [assets.NAME] tables: at least one asset is needed")
    out: dict[str, int] = {}
    for name, body in _table(doc, f"{source}: [assets]").items():
        where = f"{source}: [assets.{name}]"
        if not (name.isascii() and name.isalnum() and name.isupper()):
            raise ConfigError(f"{where}: asset names are upper-case letters and digits")
        t = _table(body, where)
        _known(t, {"decimals"}, where)
        dec = _int(t.get("decimals", 8), f"{where} decimals", minimum=0)
        if dec > 18:
            raise ConfigError(f"{where} decimals: at most 18")
        out[name] = dec
    return out


def _symbol(name: str, t: dict[str, Any], assets: dict[str, int], source: str) -> SymbolSpec:
    where = f"{source}: [symbols.{name}]"
    if not (name.isascii() and name.isalnum() and name.isupper()):
        raise ConfigError(f"{where}: symbol names are upper-case letters and digits")
    _known(t, _SYMBOL_KEYS, where)
    for k in _SYMBOL_REQUIRED:
        if k not in t:
            raise ConfigError(f"{where}: {k} is required")
    base, quote = _str(t["base"], f"{where} base"), _str(t["quote"], f"{where} quote")
    for role, asset in (("base", base), ("quote", quote)):
        if asset not in assets:
            raise ConfigError(f"{where}: unknown {role} asset {asset!r} "
                              f"(known: {', '.join(sorted(assets))})")
    ints = {k: _int(t[k], f"{where} {k}", minimum=0) for k in _SYMBOL_INTS if k in t}
    for k, v in ints.items():  # stored as 64-bit integers (the ms ones as ns)
        most = INT64_MAX // (MS if k.endswith("_ms") else 1)
        if v > most:
            raise ConfigError(f"{where} {k}: at most {most}")
    try:
        breaker_action = BreakerAction[_str(t.get("breaker_action", "HALT"), where)]
    except KeyError:
        raise ConfigError(f"{where} breaker_action: HALT or CANCEL_ONLY") from None
    stp_names = [s.name for s in Stp if s is not Stp.DEFAULT]
    stp_text = _str(t.get("default_stp", "EXPIRE_MAKER"), where)
    if stp_text not in stp_names:
        raise ConfigError(f"{where} default_stp: one of {', '.join(stp_names)}")
    tick, lot = _str(t["tick_size"], where), _str(t["lot_size"], where)
    try:
        spec = SymbolSpec.from_decimal(
            name, base, quote, base_decimals=assets[base], quote_decimals=assets[quote],
            tick_size=tick, lot_size=lot)
    except (ValueError, ArithmeticError) as exc:
        raise ConfigError(f"{where}: tick_size/lot_size not representable: {exc}") from None
    limits = _limits(spec, t, where)
    spec = SymbolSpec.from_decimal(
        name, base, quote, base_decimals=assets[base], quote_decimals=assets[quote],
        tick_size=tick, lot_size=lot, **limits,
        maker_bps=ints.get("maker_bps", 0), taker_bps=ints.get("taker_bps", 0),
        band_bps=ints.get("band_bps", 0), max_open_orders=ints.get("max_open_orders", 0),
        breaker_bps=ints.get("breaker_bps", 0),
        breaker_window_ns=ints.get("breaker_window_ms", 0) * MS,
        breaker_cooldown_ns=ints.get("breaker_cooldown_ms", 0) * MS,
        breaker_action=breaker_action, default_stp=Stp[stp_text])
    why = spec.validate()
    if why is not None:
        raise ConfigError(f"{where}: {why}")
    return spec


def _limits(spec: SymbolSpec, t: dict[str, Any], where: str) -> dict[str, int]:
    """Filters as integers; a missing or "0" maximum (or min_notional) means none."""
    conv = {"min_qty": lambda s: qty_lots(spec, s), "max_qty": lambda s: qty_lots(spec, s),
            "min_price": lambda s: price_ticks(spec, s),
            "max_price": lambda s: price_ticks(spec, s),
            "min_notional": lambda s: amount_units(s, spec.quote_decimals),
            "max_notional": lambda s: amount_units(s, spec.quote_decimals)}
    out: dict[str, int] = {}
    for key, fn in conv.items():
        if key not in t:
            continue
        text = _str(t[key], f"{where} {key}")
        if not key.startswith("min_") or key == "min_notional":
            try:
                if parse_decimal(text) == 0:
                    out[key] = 0
                    continue
            except UnitError:
                pass  # the conversion below says what is wrong
        try:
            out[key] = fn(text)
        except UnitError as exc:
            raise ConfigError(f"{where} {key}: {exc}") from None
    return out


def _server(cfg: Config, t: dict[str, Any], source: str) -> None:
    where = f"{source}: [server]"
    _known(t, {"host", "port", "fsync", "snapshot_every", "trusted_proxies", "http"}, where)
    cfg.host = _str(t.get("host", cfg.host), f"{where} host")
    cfg.port = _port(t.get("port", cfg.port), f"{where} port")
    fsync = _str(t.get("fsync", cfg.fsync), f"{where} fsync")
    if fsync not in {p.value for p in FsyncPolicy}:
        raise ConfigError(f"{where} fsync: every, interval or off (not {fsync!r})")
    cfg.fsync = fsync
    cfg.snapshot_every = _int(t.get("snapshot_every", cfg.snapshot_every),
                              f"{where} snapshot_every", minimum=0)
    proxies = t.get("trusted_proxies", [])
    if not isinstance(proxies, list) or not all(isinstance(p, str) and p for p in proxies):
        raise ConfigError(f"{where} trusted_proxies: a list of addresses, e.g. "
                          "[\"127.0.0.1\"]")
    cfg.trusted_proxies = list(proxies)
    http = _str(t.get("http", cfg.http), f"{where} http")
    if http not in ("fast", "uvicorn"):
        raise ConfigError(f"{where} http: fast or uvicorn (not {http!r})")
    cfg.http = http


def _multicast(cfg: Config, t: dict[str, Any], source: str) -> None:
    where = f"{source}: [multicast]"
    _known(t, {"enabled", "group", "port", "resend_port"}, where)
    enabled = t.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where} enabled: true or false")
    cfg.multicast = enabled
    cfg.multicast_group = multicast_group(
        _str(t.get("group", cfg.multicast_group), f"{where} group"), f"{where} group")
    cfg.multicast_port = _port(t.get("port", cfg.multicast_port), f"{where} port")
    cfg.multicast_resend_port = _port(t.get("resend_port", cfg.multicast_resend_port),
                                      f"{where} resend_port")


def _ledger(cfg: Config, t: dict[str, Any], source: str) -> None:
    where = f"{source}: [ledger]"
    _known(t, {"enabled", "mode", "url"}, where)
    enabled = t.get("enabled", cfg.ledger)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where} enabled: true or false")
    cfg.ledger = enabled
    mode = t.get("mode", cfg.ledger_mode)
    if mode not in LEDGER_MODES:
        raise ConfigError(f"{where} mode: \"process\" or \"thread\" (not {mode!r})")
    cfg.ledger_mode = mode
    url = t.get("url", cfg.ledger_url)
    if not isinstance(url, str):
        raise ConfigError(f"{where} url: a SQLAlchemy URL string")
    cfg.ledger_url = url


# --- value checks --------------------------------------------------------------------


def _known(t: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(t) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)} "
                          f"(allowed: {', '.join(sorted(allowed))})")


def _table(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ConfigError(f"{where}: expected a table")
    return v


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"{where}: expected a string (quote decimals: \"0.01\"), got {v!r}")
    return v


INT64_MAX = 2**63 - 1


def _int(v: Any, where: str, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, got {v!r}")
    return v


def _port(v: Any, where: str) -> int:
    port = _int(v, where, minimum=0)
    if port > 65535:
        raise ConfigError(f"{where}: a port is 0..65535")
    return port


def multicast_group(text: str, where: str) -> str:
    """``text`` if it is an IPv4 multicast address (224.0.0.0/4); else ConfigError (a
    name or a unicast address failed only later, when serve opened the tick socket)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is None or address.version != 4 or not address.is_multicast:
        raise ConfigError(f"{where}: an IPv4 multicast address (224.0.0.0/4), got {text!r}")
    return text


def parse_hostport(text: str) -> tuple[str, int]:
    """``"GROUP:PORT"`` -> (group, port); raise ConfigError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ConfigError(f"expected GROUP:PORT, got {text!r}")
    return host, int(port)
