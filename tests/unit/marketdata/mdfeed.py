"""Helpers for the market-data tests: a real engine feeding ``Applied`` batches.

``Feed`` runs commands through ``chainbook.engine.Engine`` with increasing seq and a
controllable clock, and hands each ``Applied`` to a ``MarketData``; ``Recorder`` is a
``Publisher`` that keeps what was published (every stream wanted, or only some).

Imported by name (`from mdfeed import ...`): the test directories are not packages.
"""

from __future__ import annotations

from typing import Any

from chainbook.domain import commands as C
from chainbook.domain.enums import OrderType, Side, TimeInForce
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine import Engine
from chainbook.marketdata import MarketData
from chainbook.service.applied import Applied

MS = 1_000_000
T0_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z

# price step 0.01 USDT, quantity step 0.001 BTC; notional of 1 lot at 1 tick = 1 unit
SPEC = SymbolSpec.from_decimal("BTCUSDT", "BTC", "USDT", base_decimals=8,
                               quote_decimals=8, tick_size="0.01", lot_size="0.001")


class Core:
    """The part of the core market data reads: the listed specs."""

    def __init__(self) -> None:
        self.specs: dict[str, SymbolSpec] = {}


class Recorder:
    """A publisher that records ``(stream, payload)``; ``want`` None means every stream."""

    def __init__(self, want: set[str] | None = None) -> None:
        self.want = want
        self.sent: list[tuple[str, Any]] = []

    def wants(self, stream: str) -> bool:
        return self.want is None or stream in self.want

    def publish(self, stream: str, payload: Any) -> None:
        self.sent.append((stream, payload))

    def on(self, stream: str) -> list[Any]:
        return [p for s, p in self.sent if s == stream]


class Feed:
    """An engine driven by commands; every Applied goes to ``md`` (live by default)."""

    def __init__(self, md: MarketData | None = None, spec: SymbolSpec = SPEC) -> None:
        self.engine = Engine()
        self.seq = 0
        self.now_ms = T0_MS
        self.core = Core()
        self.pub = Recorder()
        self.md = md or MarketData(self.core, self.pub, lambda: self.now_ms)
        self.history: list[Applied] = []
        self.live = True
        self.run(C.AddSymbol(spec))
        for acct in (1, 2, 3):
            self.run(C.Deposit(acct, "USDT", 10**18, f"u{acct}"))
            self.run(C.Deposit(acct, "BTC", 10**18, f"b{acct}"))

    def run(self, cmd: C.Command, at_ms: int | None = None) -> Applied:
        """Apply ``cmd`` at ``at_ms`` (default: the clock); feed it to market data."""
        self.seq += 1
        if at_ms is not None:
            self.now_ms = at_ms
        ts = self.now_ms * MS
        ap = Applied(self.seq, ts, cmd, self.engine.apply(cmd, self.seq, ts))
        self.history.append(ap)
        self.md.on_batch([ap], self.live)
        return ap

    def limit(self, acct: int, side: Side, price: int, qty: int,
              at_ms: int | None = None, tif: TimeInForce = TimeInForce.GTC) -> Applied:
        return self.run(C.PlaceOrder(acct, "BTCUSDT", side, OrderType.LIMIT, qty, price, tif),
                        at_ms)

    def market(self, acct: int, side: Side, qty: int, at_ms: int | None = None) -> Applied:
        return self.run(C.PlaceOrder(acct, "BTCUSDT", side, OrderType.MARKET, qty, None,
                                     TimeInForce.IOC), at_ms)

    def trade(self, price: int, qty: int, taker: Side = Side.BUY,
              at_ms: int | None = None) -> Applied:
        """One trade of ``qty`` at ``price`` with ``taker`` the aggressor side."""
        maker = Side.SELL if taker == Side.BUY else Side.BUY
        self.limit(2, maker, price, qty, at_ms)
        return self.limit(1, taker, price, qty, at_ms)
