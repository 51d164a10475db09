"""Shared fixtures: an exchange harness that drives the engine and checks it after every step.

``Exchange`` wraps ``Engine``: ``apply`` assigns increasing ``seq`` and ``ts`` (1 ms apart
unless a ``ts`` is given) and runs ``check(engine)`` after every command; ``place``,
``cancel``, ``amend`` and friends build the commands; ``rejected`` applies a command that
must be refused and asserts it changed nothing (balances, books, statuses, state hash).
The ``ex`` fixture runs every scenario on both the fast book and the naive oracle book.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec
import pytest

from chainbook.book.book import OrderBook
from chainbook.book.naive import NaiveBook
from chainbook.domain import commands as C
from chainbook.domain.enums import OrderType, Reject, Side, Stp, TimeInForce
from chainbook.domain.events import Event, OrderAccepted, OrderRejected, Trade
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine import Engine
from chainbook.engine.state import check, state_hash

E = TypeVar("E", bound=Event)

MS = 1_000_000  # ns
T0 = 1_700_000_000 * 1_000_000_000  # a plausible epoch ts in ns

# notional = price * qty (quote_per_tick_lot = 1); one lot = 100 base units
BTC = SymbolSpec(
    name="BTCUSDT", base="BTC", quote="USDT", lot_units=100, quote_per_tick_lot=1,
    maker_bps=10, taker_bps=20,
)
ETH = SymbolSpec(
    name="ETHUSDT", base="ETH", quote="USDT", lot_units=10, quote_per_tick_lot=1,
    maker_bps=10, taker_bps=20,
)
FUNDS = {"USDT": 10_000_000, "BTC": 1_000_000, "ETH": 1_000_000}


def of(events: Iterable[Event], kind: type[E]) -> list[E]:
    """The events of one type, in order."""
    return [e for e in events if type(e) is kind]


def one(events: Iterable[Event], kind: type[E]) -> E:
    """The single event of ``kind`` (fails if there are none or several)."""
    found = of(events, kind)
    assert len(found) == 1, f"expected one {kind.__name__}, got {found}"
    return found[0]


def kinds(events: Iterable[Event]) -> list[str]:
    """Event type names in order, for sequence assertions."""
    return [type(e).__name__ for e in events]


class Exchange:
    """An engine plus a command clock; every command is followed by ``check(engine)``."""

    def __init__(
        self,
        specs: Iterable[SymbolSpec] = (BTC,),
        accounts: Iterable[int] = (1, 2, 3),
        funds: dict[str, int] | None = None,
        book_factory: Any = OrderBook,
    ) -> None:
        self.engine = Engine(book_factory=book_factory)
        self.seq = 0
        self.ts = T0
        self.symbol = ""
        self.history: list[tuple[C.Command, list[Event]]] = []
        for spec in specs:
            self.apply(C.AddSymbol(spec))
            self.symbol = self.symbol or spec.name
        n = 0
        for acct in accounts:
            for asset, amount in (funds if funds is not None else FUNDS).items():
                n += 1
                self.apply(C.Deposit(acct, asset, amount, f"fund-{n}"))

    of = staticmethod(of)
    one = staticmethod(one)
    kinds = staticmethod(kinds)

    # --- the clock and the check -----------------------------------------------------

    def apply(self, cmd: C.Command, ts: int | None = None) -> list[Event]:
        """Apply ``cmd`` at the next seq and ``ts`` (default: 1 ms after the last); check."""
        self.seq += 1
        self.ts = self.ts + MS if ts is None else ts
        events = self.engine.apply(cmd, self.seq, self.ts)
        check(self.engine)
        self.history.append((cmd, events))
        return events

    def advance(self, ns: int) -> None:
        """Move the clock forward without a command."""
        self.ts += ns

    # --- command builders ------------------------------------------------------------

    def place(self, account: int, side: Side, price: int | None, qty: int | None, *,
              type: OrderType = OrderType.LIMIT, tif: TimeInForce = TimeInForce.GTC,
              stp: Stp = Stp.DEFAULT, client_id: str | None = None,
              quote_qty: int | None = None, symbol: str | None = None,
              ts: int | None = None) -> list[Event]:
        return self.apply(self.order_cmd(account, side, price, qty, type=type, tif=tif,
                                         stp=stp, client_id=client_id, quote_qty=quote_qty,
                                         symbol=symbol), ts)

    def order_cmd(self, account: int, side: Side, price: int | None, qty: int | None, *,
                  type: OrderType = OrderType.LIMIT, tif: TimeInForce = TimeInForce.GTC,
                  stp: Stp = Stp.DEFAULT, client_id: str | None = None,
                  quote_qty: int | None = None, symbol: str | None = None) -> C.PlaceOrder:
        return C.PlaceOrder(account, symbol or self.symbol, side, type, qty, price, tif,
                            client_id, quote_qty, stp)

    def buy(self, account: int, price: int, qty: int, **kw: Any) -> list[Event]:
        return self.place(account, Side.BUY, price, qty, **kw)

    def sell(self, account: int, price: int, qty: int, **kw: Any) -> list[Event]:
        return self.place(account, Side.SELL, price, qty, **kw)

    def rest(self, account: int, side: Side, price: int, qty: int, **kw: Any) -> int:
        """Place a GTC limit that must rest untouched; return its order id."""
        events = self.place(account, side, price, qty, **kw)
        assert kinds(events)[0] == "OrderAccepted" and not of(events, Trade), events
        return one(events, OrderAccepted).order_id

    def market(self, account: int, side: Side, qty: int | None = None,
               quote_qty: int | None = None, **kw: Any) -> list[Event]:
        return self.place(account, side, None, qty, type=OrderType.MARKET,
                          tif=TimeInForce.IOC, quote_qty=quote_qty, **kw)

    def cancel(self, account: int, order_id: int | None = None,
               client_id: str | None = None, symbol: str | None = None) -> list[Event]:
        return self.apply(C.CancelOrder(account, symbol or self.symbol, order_id, client_id))

    def cancel_all(self, account: int, symbol: str | None = None) -> list[Event]:
        return self.apply(C.CancelAll(account, symbol or self.symbol))

    def amend(self, account: int, order_id: int | None = None, *,
              new_price: int | None = None, new_qty: int | None = None,
              client_id: str | None = None, symbol: str | None = None) -> list[Event]:
        return self.apply(C.AmendOrder(account, symbol or self.symbol, order_id, client_id,
                                       new_price, new_qty))

    # --- views -----------------------------------------------------------------------

    @property
    def spec(self) -> SymbolSpec:
        return self.engine.symbols[self.symbol].spec

    def avail(self, account: int, asset: str) -> int:
        return self.engine.balances.available(account, asset)

    def frozen(self, account: int, asset: str) -> int:
        return self.engine.balances.frozen(account, asset)

    def total(self, account: int, asset: str) -> int:
        return self.avail(account, asset) + self.frozen(account, asset)

    def depth(self, side: Side, symbol: str | None = None, n: int = 50) -> list[tuple[int, int]]:
        return self.engine.symbols[symbol or self.symbol].book.depth(side, n)

    def status(self, symbol: str | None = None) -> int:
        return self.engine.symbols[symbol or self.symbol].status

    def open_ids(self, symbol: str | None = None) -> list[int]:
        return sorted(self.engine.symbols[symbol or self.symbol].orders)

    def fingerprint(self) -> tuple[Any, ...]:
        """Everything a rejected command must leave as it was."""
        eng = self.engine
        books = {
            name: (sym.book.depth(0, 10_000), sym.book.depth(1, 10_000), int(sym.status),
                   sym.until_ts, sorted((o.id, o.left, o.reserved) for o in sym.orders.values()))
            for name, sym in eng.symbols.items()
        }
        return (state_hash(eng), copy.deepcopy(eng.balances.acct), books,
                eng.next_order_id, eng.next_trade_id)

    def rejected(self, cmd: C.Command, reason: Reject, ts: int | None = None) -> OrderRejected:
        """Apply a command that must be rejected with ``reason`` and change nothing."""
        before = self.fingerprint()
        events = self.apply(cmd, ts)
        assert len(events) == 1 and isinstance(events[0], OrderRejected), events
        assert events[0].reason == reason, events
        after = self.fingerprint()
        assert after[1:] == before[1:], "a rejected command changed the state"
        assert after[0] == before[0], "a rejected command changed state_hash"
        return events[0]


@pytest.fixture(params=[OrderBook, NaiveBook], ids=["fastbook", "naivebook"])
def book_factory(request: pytest.FixtureRequest) -> Any:
    """Each scenario runs on the fast book and on the naive oracle."""
    return request.param


@pytest.fixture
def ex(book_factory: Any) -> Exchange:
    """BTCUSDT (and ETHUSDT) listed; accounts 1, 2 and 3 funded with every asset."""
    return Exchange(specs=(BTC, ETH), book_factory=book_factory)


@pytest.fixture
def make_exchange(book_factory: Any) -> Any:
    """Factory for an ``Exchange`` with custom specs, accounts or funds."""

    def make(specs: Iterable[SymbolSpec] | None = None, *, accounts: Iterable[int] = (1, 2, 3),
             funds: dict[str, int] | None = None, **spec_fields: Any) -> Exchange:
        """``spec_fields`` override fields of the BTCUSDT spec (used when ``specs`` is None)."""
        if specs is None:
            specs = (msgspec.structs.replace(BTC, **spec_fields),)
        return Exchange(specs=specs, accounts=accounts, funds=funds, book_factory=book_factory)

    return make
