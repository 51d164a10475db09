"""The ``[chain]`` table of the serve configuration (pure: no web3 import).

    [chain]
    enabled = true             # false: serve runs without a chain (no capital endpoints)
    rpc_url = "embedded"       # or a JSON-RPC URL (then chain_id is required)
    chain_id = 31337           # embedded: eth-tester's 131277322940537
    confirmations = 6          # default 6 on a node, 2 on the embedded chain
    operator_key_file = "operator.key"   # relative to the data dir; generated if absent
    hd_seed_file = "hd-seed"   # BIP-39 mnemonic of the deposit addresses; generated
    network = "ETH"            # the network name of the capital endpoints
    native_asset = "ETH"       # credited for native transfers ("" for none)
    settlement = "0x..."       # Settlement address (default: deployed once, recorded)
    start_block = 0            # node: where the deposit watcher starts (default: head)
    block_time_ms = 1000       # embedded: an empty block this often
    step_ms = 150              # worker loop period
    batch_max_trades = 1000
    batch_max_age_ms = 1000
    packed = true
    faucet = true              # admin faucet (default: embedded only)

    [chain.tokens.USDT]
    address = "0x..."          # omitted: a TestToken is deployed (embedded, dev nodes)
    decimals = 6               # the token's decimals

Without ``[chain.tokens]`` the embedded chain gets TestTokens for USDT (6 decimals) and
BTC (8 decimals, like WBTC) when the exchange lists those assets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EMBEDDED = "embedded"
DEFAULT_TOKENS = (("USDT", 6), ("BTC", 8))


class ChainConfigError(ValueError):
    """A ``[chain]`` value cannot be used; the message says where and why."""


@dataclass(frozen=True)
class TokenConfig:
    asset: str
    decimals: int
    address: str | None = None  # None: deploy a TestToken (embedded or dev node)


@dataclass
class ChainConfig:
    enabled: bool = True
    rpc_url: str = EMBEDDED
    chain_id: int | None = None
    confirmations: int | None = None
    operator_key_file: str = "operator.key"
    hd_seed_file: str = "hd-seed"
    network: str = "ETH"
    native_asset: str = "ETH"
    settlement: str | None = None
    start_block: int | None = None
    block_time_ms: int = 1000
    step_ms: int = 150
    batch_max_trades: int = 1000
    batch_max_age_ms: int = 1000
    packed: bool = True
    faucet: bool | None = None
    tokens: dict[str, TokenConfig] | None = None  # None: the embedded defaults

    @property
    def embedded(self) -> bool:
        return self.rpc_url == EMBEDDED

    @property
    def required_confirmations(self) -> int:
        """The configured confirmations, or 2 (embedded) / 6 (node)."""
        if self.confirmations is not None:
            return self.confirmations
        return 2 if self.embedded else 6

    @property
    def faucet_enabled(self) -> bool:
        return self.embedded if self.faucet is None else self.faucet

    def token_list(self, assets: dict[str, int]) -> dict[str, TokenConfig]:
        """The tokens to watch and pay, by asset (only assets the exchange has)."""
        if self.tokens is not None:
            return {a: t for a, t in self.tokens.items() if a in assets}
        return {a: TokenConfig(a, d) for a, d in DEFAULT_TOKENS if a in assets}


_INTS = {"chain_id": 1, "confirmations": 1, "start_block": 0, "block_time_ms": 10,
         "step_ms": 10, "batch_max_trades": 1, "batch_max_age_ms": 0}
_STRS = ("rpc_url", "operator_key_file", "hd_seed_file", "network", "native_asset",
         "settlement")
_BOOLS = ("enabled", "packed", "faucet")


def parse_chain(t: dict[str, Any], where: str, assets: dict[str, int]) -> ChainConfig:
    """Build a ChainConfig from the ``[chain]`` table ``t``; raise ChainConfigError."""
    allowed = set(_INTS) | set(_STRS) | set(_BOOLS) | {"tokens"}
    extra = sorted(set(t) - allowed)
    if extra:
        raise ChainConfigError(f"{where}: unknown key(s) {', '.join(extra)} "
                               f"(allowed: {', '.join(sorted(allowed))})")
    cfg = ChainConfig()
    for k, minimum in _INTS.items():
        if k in t:
            v = t[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise ChainConfigError(f"{where} {k}: expected an integer >= {minimum}")
            setattr(cfg, k, v)
    for k in _STRS:
        if k in t:
            if not isinstance(t[k], str):
                raise ChainConfigError(f"{where} {k}: expected a string")
            setattr(cfg, k, t[k])
    for k in _BOOLS:
        if k in t:
            if not isinstance(t[k], bool):
                raise ChainConfigError(f"{where} {k}: true or false")
            setattr(cfg, k, t[k])
    if not cfg.embedded and cfg.chain_id is None:
        raise ChainConfigError(f"{where}: chain_id is required with rpc_url {cfg.rpc_url!r}")
    if cfg.native_asset and cfg.native_asset not in assets:
        if "native_asset" in t:
            raise ChainConfigError(f"{where} native_asset: unknown asset "
                                   f"{cfg.native_asset!r}")
        cfg.native_asset = ""  # the default ETH, on an exchange without ETH
    if "tokens" in t:
        cfg.tokens = _tokens(t["tokens"], f"{where} tokens", assets)
    return cfg


def _tokens(doc: Any, where: str, assets: dict[str, int]) -> dict[str, TokenConfig]:
    if not isinstance(doc, dict):
        raise ChainConfigError(f"{where}: expected a table")
    out = {}
    for asset, body in doc.items():
        w = f"{where}.{asset}"
        if asset not in assets:
            raise ChainConfigError(f"{w}: unknown asset {asset!r}")
        if not isinstance(body, dict) or set(body) - {"address", "decimals"}:
            raise ChainConfigError(f"{w}: a table with address and decimals")
        dec = body.get("decimals")
        if isinstance(dec, bool) or not isinstance(dec, int) or not 0 <= dec <= 36:
            raise ChainConfigError(f"{w} decimals: an integer 0..36 is required")
        addr = body.get("address")
        if addr is not None and (not isinstance(addr, str) or len(addr) != 42
                                 or not addr.startswith("0x")):
            raise ChainConfigError(f"{w} address: a 0x-prefixed 20-byte hex address")
        out[asset] = TokenConfig(asset, dec, addr.lower() if addr else None)
    return out
