"""A running REST gateway for tests: Starlette's TestClient over a real core.

Imported by conftest.py (the fixtures) and by the test modules (the helper classes).

``LocalCore`` is the ``Core`` protocol over the real ``chainbook.engine.Engine``: it
assigns ``seq`` and ``ts`` from a test clock, applies each command at once, feeds every
listener (market data, account views) and returns the ``Applied`` - the sequencer without
its thread and journal (no durability).  ``Gateway`` wires it with the real MarketData,
AccountViews, KeyStore (SQLite in tmp_path), RateLimiter and the REST routes; ``Signer``
sends signed requests the way ccxt or python-binance do.  The ``gw`` fixture gives one
with BTCUSDT and ETHUSDT listed and accounts alice (1) and bob (2) funded.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette 1.10 prefers httpx2; httpx is what we pin
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from chainbook.domain.commands import AddSymbol, Command, Deposit
from chainbook.domain.enums import SymbolStatus
from chainbook.domain.events import SymbolAdded, SymbolStatusChanged
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine import Engine
from chainbook.gateway.auth import sign
from chainbook.gateway.context import GatewayContext
from chainbook.gateway.ratelimit import RateLimiter
from chainbook.gateway.rest import build_rest_routes, exception_handlers, fallback_routes
from chainbook.gateway.views import AccountViews
from chainbook.marketdata.market import MarketData
from chainbook.service.applied import Applied
from chainbook.service.core import CoreUnavailable
from chainbook.service.keys import ApiKey, KeyStore

T0_MS = 1_700_000_000_000
NS_PER_MS = 1_000_000
UNIT = 10**8  # base units per whole coin (8 decimals everywhere here)
BTC = SymbolSpec.from_decimal("BTCUSDT", "BTC", "USDT", base_decimals=8, quote_decimals=8,
                              tick_size="0.01", lot_size="0.00001", min_notional=5 * UNIT,
                              maker_bps=10, taker_bps=20)
ETH = SymbolSpec.from_decimal("ETHUSDT", "ETH", "USDT", base_decimals=8, quote_decimals=8,
                              tick_size="0.01", lot_size="0.0001")
FUNDS = {"BTC": 10 * UNIT, "ETH": 100 * UNIT, "USDT": 100_000 * UNIT}


class Clock:
    """Milliseconds since the epoch, moved only by the test."""

    def __init__(self, ms: int = T0_MS) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms


class LocalCore:
    """``Core`` over a real Engine, applied inline (see the module docstring)."""

    def __init__(self, clock: Clock) -> None:
        self.engine = Engine()
        self.clock = clock
        self.specs: dict[str, SymbolSpec] = {}
        self.status: dict[str, SymbolStatus] = {}
        self.halt_until: dict[str, int] = {}
        self.assets = {"BTC": 8, "ETH": 8, "USDT": 8}
        self.listeners: list[Callable[[list[Applied], bool], None]] = []
        self.seq = 0
        self.last_ts = 0
        self.stopped = False
        self.failing = False
        self.log: list[Applied] = []

    def apply(self, cmd: Command) -> Applied:
        """Apply ``cmd`` at the next seq and feed the listeners."""
        self.seq += 1
        self.last_ts = max(self.last_ts + 1, self.clock() * NS_PER_MS)
        events = self.engine.apply(cmd, self.seq, self.last_ts)
        for ev in events:
            if isinstance(ev, SymbolAdded):
                self.specs[ev.spec.name] = ev.spec
                self.status[ev.spec.name] = SymbolStatus.TRADING
            elif isinstance(ev, SymbolStatusChanged):
                self.status[ev.symbol] = ev.status
                self.halt_until[ev.symbol] = ev.until_ts
        applied = Applied(self.seq, self.last_ts, cmd, events)
        self.log.append(applied)
        for listener in self.listeners:
            listener([applied], True)
        return applied

    async def submit(self, cmd: Command) -> Applied:
        if self.stopped:
            raise CoreUnavailable("stopped")
        if self.failing:  # as CoreService when a log write fails under the command
            raise CoreUnavailable("commit failed", unknown=True)
        return self.apply(cmd)


class Recorder:
    """Publisher and user sink that remembers what was published."""

    def __init__(self) -> None:
        self.user: list[tuple[int, dict[str, Any]]] = []
        self.streams: list[tuple[str, Any]] = []

    def wants(self, stream: str) -> bool:
        return False

    def publish(self, stream: str, payload: Any) -> None:
        self.streams.append((stream, payload))

    def wants_user(self, account: int) -> bool:
        return True  # records every account's user data

    def publish_user(self, account: int, payload: dict[str, Any]) -> None:
        self.user.append((account, payload))

    def end_revoked_users(self, now_ms: int) -> int:
        return 0  # no WebSocket subscriptions here (the hub's own tests cover it)

    def events(self, account: int) -> list[dict[str, Any]]:
        return [p for a, p in self.user if a == account]


class Signer:
    """Signed requests as the two clients send them (specs/binance-compat.md section 2)."""

    def __init__(self, client: TestClient, key: ApiKey, clock: Clock) -> None:
        self.client = client
        self.key = key
        self.clock = clock

    def _send(self, method: str, path: str, query: str, body: str,
              key: str | None = None) -> httpx.Response:
        headers = {"X-MBX-APIKEY": key if key is not None else self.key.key}
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        url = path + ("?" + query if query else "")
        return self.client.request(method, url, content=body.encode(), headers=headers)

    def ccxt(self, method: str, path: str, params: dict[str, Any] | None = None,
             **kw: Any) -> httpx.Response:
        """timestamp first, then params in order, recvWindow, signature; GET/DELETE in
        the query, POST/PUT in the body."""
        items = {"timestamp": self.clock(), **(params or {}), "recvWindow": 10000}
        text = urlencode(items)
        signed = text + "&signature=" + sign(self.key.secret, text.encode())
        if method in ("GET", "DELETE"):
            return self._send(method, path, signed, "", **kw)
        return self._send(method, path, "", signed, **kw)

    def pb(self, method: str, path: str, params: dict[str, Any] | None = None,
           **kw: Any) -> httpx.Response:
        """Sorted keys, signature last; GET in the query, POST/PUT/DELETE in the body."""
        items = dict(sorted({**(params or {}), "timestamp": self.clock(),
                             "recvWindow": 10000}.items()))
        text = urlencode(items)
        signed = text + "&signature=" + sign(self.key.secret, text.encode())
        if method == "GET":
            return self._send(method, path, signed, "", **kw)
        return self._send(method, path, "", signed, **kw)

    def key_only(self, method: str, path: str, params: dict[str, Any] | None = None
                 ) -> httpx.Response:
        return self._send(method, path, "", urlencode(params or {}))


class Gateway:
    """Core, market data, views, keys and limits behind the REST routes."""

    def __init__(self, tmp: Path, **limits: Any) -> None:
        self.clock = Clock()
        self.sink = Recorder()
        self.core = LocalCore(self.clock)
        self.market = MarketData(self.core, self.sink, self.clock)
        self.views = AccountViews(self.core, self.sink, clock_ms=self.clock)
        self.core.listeners += [self.market.on_batch, self.views.on_batch]
        self.keys = KeyStore(tmp / "gateway.sqlite")
        self.limits = RateLimiter(self.clock, **limits)
        self.ctx = GatewayContext(core=self.core, keys=self.keys, market=self.market,
                                  views=self.views, hub=self.sink, limits=self.limits,
                                  clock_ms=self.clock)
        self.core.apply(AddSymbol(BTC))
        self.core.apply(AddSymbol(ETH))
        self.alice = self.keys.create_key(self.keys.create_account("alice"), {"read", "trade"})
        self.bob = self.keys.create_key(self.keys.create_account("bob"), {"read", "trade"})
        self.reader = self.keys.create_key(self.alice.account, {"read"})
        for who in (self.alice, self.bob):
            for asset, amount in FUNDS.items():
                self.core.apply(Deposit(who.account, asset, amount, f"fund-{who.account}-{asset}"))
        self.app = self.make_app()

    def make_app(self, extra: list[Any] | None = None) -> Starlette:
        """The REST app (plus ``extra`` routes before the catch-all)."""
        return Starlette(routes=[*build_rest_routes(self.ctx), *(extra or []),
                                 *fallback_routes()],
                         exception_handlers=exception_handlers())

    def balance(self, key: ApiKey, asset: str) -> tuple[int, int]:
        return (self.core.engine.balances.available(key.account, asset),
                self.core.engine.balances.frozen(key.account, asset))
