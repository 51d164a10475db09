"""What the gateway's handlers are given: the components of a running exchange.

The composition root (``chainbook.app``) builds one ``GatewayContext``; REST and
WebSocket handlers only use the interfaces below, so each part can be tested alone.
docs/serve.md describes who implements what.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chainbook.domain.commands import Command
from chainbook.domain.enums import SymbolStatus
from chainbook.domain.instruments import SymbolSpec
from chainbook.service.applied import Applied

Json = dict[str, Any]
NS_PER_MS = 1_000_000


class Core(Protocol):
    """The sequencer: the only way into the core (``chainbook.service.core.CoreService``)."""

    specs: dict[str, SymbolSpec]  # listed symbols, kept from SymbolAdded events
    status: dict[str, SymbolStatus]  # kept from SymbolStatusChanged events
    halt_until: dict[str, int]  # a breaker halt's end (ns), from the same events
    assets: dict[str, int]  # asset -> decimals (config)

    async def submit(self, cmd: Command) -> Applied:
        """Log ``cmd``, apply it, return once it is durable and every listener saw it.
        Raises CoreUnavailable (service.core) when the core has stopped or failed."""
        ...


def symbol_status(core: Core, name: str, now_ms: int) -> SymbolStatus:
    """The status a client should see for ``name`` now.  A circuit-breaker halt ends
    when its cooldown is over, but the core resumes the symbol only at the next order
    or cancel for it (engine ``_trading_symbol``), so ``core.status`` says HALT until
    one comes; a client that waits for TRADING before sending one would wait forever."""
    status = core.status.get(name, SymbolStatus.TRADING)
    if status != SymbolStatus.TRADING:
        until = core.halt_until.get(name, 0)
        if until and now_ms * NS_PER_MS >= until:
            return SymbolStatus.TRADING
    return status


class ApiKeyInfo(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def secret(self) -> str: ...
    @property
    def account(self) -> int: ...
    @property
    def perms(self) -> frozenset[str]:  # subset of {"read", "trade", "withdraw"}
        ...


class Keys(Protocol):
    """API keys (``chainbook.service.keys.KeyStore``)."""

    def get_key(self, key: str) -> ApiKeyInfo | None: ...


class Publisher(Protocol):
    """Where market data sends stream payloads (``chainbook.gateway.hub.Hub``)."""

    def wants(self, stream: str) -> bool:
        """True if some connection is subscribed to ``stream`` (skip building otherwise)."""
        ...

    def publish(self, stream: str, payload: Json) -> None:
        """Queue ``payload`` to every subscriber of ``stream``; never blocks."""
        ...


class UserSink(Protocol):
    """Where account views send user-data events (``chainbook.gateway.hub.Hub``)."""

    def wants_user(self, account: int) -> bool: ...

    def publish_user(self, account: int, payload: Json) -> None: ...


class Market(Protocol):
    """Public market data (``chainbook.marketdata.MarketData``). Symbols are upper-case
    names; every method raises KeyError for an unknown symbol."""

    def on_batch(self, batch: list[Applied], live: bool) -> None: ...
    def depth(self, symbol: str, limit: int) -> Json: ...
    def trades(self, symbol: str, limit: int) -> list[Json]: ...
    def agg_trades(self, symbol: str, limit: int, start_ms: int | None,
                   end_ms: int | None, from_id: int | None) -> list[Json]: ...
    def klines(self, symbol: str, interval: str, limit: int, start_ms: int | None,
               end_ms: int | None) -> list[list[Any]]: ...
    def ticker_24h(self, symbol: str) -> Json: ...
    def price(self, symbol: str) -> Json: ...
    def book_ticker(self, symbol: str) -> Json: ...
    def top(self, symbol: str) -> tuple[int, int, int, int]: ...
    def reference_price(self, symbol: str) -> int: ...
    def stream_snapshot(self, stream: str) -> Json | list[Json] | None:
        """Payload to send right after a subscription (partial depth, tickers), or None."""
        ...


class Views(Protocol):
    """Per-account orders, trades and balances (``chainbook.gateway.views.AccountViews``)."""

    def on_batch(self, batch: list[Applied], live: bool) -> None: ...


@dataclass
class GatewayContext:
    core: Core
    keys: Keys
    market: Market
    views: Any  # chainbook.gateway.views.AccountViews (concrete: REST reads it directly)
    hub: Any  # chainbook.gateway.hub.Hub
    limits: Any  # chainbook.gateway.ratelimit.RateLimiter
    clock_ms: Callable[[], int]
    settled_seq: Callable[[], int] = field(default=lambda: 0)  # ledger's applied seq
    admin_token: str = ""
    extra_routes: Sequence[Any] = ()
