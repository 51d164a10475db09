"""A small exchange for the WebSocket tests: the real engine, market data, account views,
key store and hub behind ``build_ws_routes``.

``EngineCore`` is the ``Core`` protocol over a real ``Engine``, applied inline on the
calling (event-loop) thread with a settable clock: the sequencer without its thread and
journal. ``World`` wires everything into a ``GatewayContext`` and a Starlette app.
"""

from __future__ import annotations

import hashlib
import hmac
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette 1.10 prefers httpx2; httpx is what we pin
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from restfixtures import Clock, LocalCore

from chainbook.domain.commands import AddSymbol, Deposit, PlaceOrder
from chainbook.domain.enums import OrderType, Side, TimeInForce
from chainbook.domain.instruments import SymbolSpec
from chainbook.gateway.context import GatewayContext
from chainbook.gateway.hub import Hub
from chainbook.gateway.ratelimit import RateLimiter
from chainbook.gateway.views import AccountViews
from chainbook.gateway.ws import build_ws_routes
from chainbook.marketdata.market import MarketData
from chainbook.service.keys import KeyStore

__all__ = ["BTC", "ETH", "Clock", "EngineCore", "TestClient", "World", "sign",
           "signed_subscribe"]

T0_MS = 1_700_000_000_000
NS_PER_MS = 1_000_000
BTC = SymbolSpec.from_decimal("BTCUSDT", "BTC", "USDT", base_decimals=8, quote_decimals=8,
                              tick_size="0.01", lot_size="0.00001")
ETH = SymbolSpec.from_decimal("ETHUSDT", "ETH", "USDT", base_decimals=8, quote_decimals=8,
                              tick_size="0.01", lot_size="0.0001")


# the Core adapter over a real Engine and the test clock are the REST fixtures' own
EngineCore = LocalCore


class World:
    """Core, hub, market data, views and keys in one ``GatewayContext``."""

    def __init__(self, tmp: Path, max_queue: int = 1000, max_streams: int = 1024) -> None:
        self.clock = Clock()
        self.hub = Hub(max_queue=max_queue, max_streams=max_streams)
        self.core = EngineCore(self.clock)
        self.market = MarketData(self.core, self.hub, self.clock)
        self.views = AccountViews(self.core, self.hub, clock_ms=self.clock)
        self.core.listeners += [self.market.on_batch, self.views.on_batch]
        # recheck_s=0: a key revoked through another connection (another process, as
        # `chainbook apikey revoke` is) is seen at the next lookup, not a second later
        self.keys = KeyStore(tmp / "gateway.sqlite", recheck_s=0)
        self.ctx = GatewayContext(core=self.core, keys=self.keys, market=self.market,
                                  views=self.views, hub=self.hub,
                                  limits=RateLimiter(self.clock),
                                  clock_ms=self.clock)
        self.app = Starlette(routes=build_ws_routes(self.ctx))
        self.core.apply(AddSymbol(BTC))
        self.core.apply(AddSymbol(ETH))
        self.alice = self.keys.create_key(self.keys.create_account("alice"), {"read", "trade"})
        self.bob = self.keys.create_key(self.keys.create_account("bob"), {"read", "trade"})
        for n, acct in enumerate((self.alice.account, self.bob.account)):
            for asset in ("BTC", "ETH", "USDT"):
                self.core.apply(Deposit(acct, asset, 10**8 * 1_000_000, f"fund-{n}-{asset}"))

    def limit(self, account: int, side: Side, price: str, qty: str,
              symbol: str = "BTCUSDT") -> PlaceOrder:
        """A GTC limit order command from human price and quantity strings."""
        spec = self.core.specs[symbol]
        ticks = _steps(price, spec.tick_size)
        lots = _steps(qty, spec.lot_size)
        return PlaceOrder(account, symbol, side, OrderType.LIMIT, lots, ticks, TimeInForce.GTC)

    def close(self) -> None:
        self.keys.close()


def _steps(value: str, step: str) -> int:
    n = Decimal(value) / Decimal(step)
    if n != n.to_integral_value():
        raise ValueError(f"{value} is not a multiple of {step}")
    return int(n)


def sign(secret: str, params: dict[str, Any]) -> str:
    """The ws-api signature of ``params``: HMAC-SHA256 of sorted ``k=v&...``."""
    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_subscribe(key: Any, now_ms: int, rid: Any = "1", **extra: Any) -> dict[str, Any]:
    """A ``userDataStream.subscribe.signature`` request as ccxt sends it."""
    params: dict[str, Any] = {"apiKey": key.key, "timestamp": now_ms, **extra}
    params["signature"] = sign(key.secret, params)
    return {"id": rid, "method": "userDataStream.subscribe.signature", "params": params}
