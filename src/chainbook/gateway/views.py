"""Per-account views for the API: balances, orders (open and closed), own trades.

``AccountViews`` is a listener (``on_batch(batch, live)``, service/applied.py) that folds
the core's events into what REST reads (GET order, openOrders, allOrders, myTrades,
account) and, for live batches, publishes the user-data events of
specs/binance-compat.md section 7.3 through ``sink.publish_user``.  It is rebuilt from the
event journal at start-up (``live=False``), so it has no storage of its own.  Everything
is in memory; ``max_history`` bounds the closed orders and trades kept per account and
symbol (the oldest go first; open orders are always kept).

Order statuses use Binance's names: PARTIALLY_CANCELED (DESIGN.md section 2) is reported
as ``CANCELED`` with ``executedQty`` kept, an IOC/FOK/market remainder as ``EXPIRED`` and
a self-trade-prevention expiry as ``EXPIRED_IN_MATCH``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from chainbook.accounts.balances import FEE_ACCOUNT
from chainbook.domain.commands import CancelOrder, PlaceOrder
from chainbook.domain.enums import ExpireReason, OrderType, Side, Stp, TimeInForce
from chainbook.domain.events import (
    BalanceChanged,
    Deposited,
    KillSwitchChanged,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    Trade,
    WithdrawalHeld,
    WithdrawalRefunded,
)
from chainbook.gateway import userdata
from chainbook.gateway.context import Core, UserSink
from chainbook.gateway.listenkeys import ListenKeys
from chainbook.service.applied import Applied

OPEN = frozenset({"NEW", "PARTIALLY_FILLED"})
NS_PER_MS = 1_000_000


class OrderView(msgspec.Struct, gc=False):
    """What the API reports about one order; amounts are integers (ticks, lots, units).

    Not tracked by the cyclic garbage collector (``gc=False``; its fields are ints,
    strings and enum members, so it can be in no cycle): tens of thousands of kept orders
    otherwise made every full collection traverse them, a 22-40 ms pause of the whole
    server at 5,000 new orders/s (docs/gateway-performance.md, Session 7)."""

    order_id: int
    account: int
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce
    price: int
    qty: int
    quote_qty: int  # quoteOrderQty in quote units, 0 when ordered by quantity
    client_id: str | None
    stp: Stp
    time_ns: int
    status: str = "NEW"
    executed: int = 0  # lots
    cum_quote: int = 0  # quote units (notional of the fills)
    update_ns: int = 0
    last_trade_seq: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN


class TradeRow(msgspec.Struct, frozen=True, gc=False):
    """One account's side of a trade (myTrades); untracked like ``OrderView``."""

    symbol: str
    trade_id: int
    order_id: int
    price: int
    qty: int
    quote: int  # notional, quote units
    fee: int  # quote units
    is_buyer: bool
    is_maker: bool
    ts_ns: int
    seq: int


@dataclass(slots=True)
class AccountState:
    balances: dict[str, list[int]] = field(default_factory=dict)  # asset -> [avail, frozen]
    update_ns: int = 0
    orders: dict[str, list[int]] = field(default_factory=dict)  # symbol -> ids, ascending
    open: set[int] = field(default_factory=set)
    client_ids: dict[tuple[str, str], int] = field(default_factory=dict)  # latest order
    trades: dict[str, list[TradeRow]] = field(default_factory=dict)
    blocked: bool = False


class AccountViews:
    """Listener folding events into per-account views; see the module docstring."""

    def __init__(self, core: Core, sink: UserSink | None,
                 settled_seq: Callable[[], int] = lambda: 0,
                 clock_ms: Callable[[], int] | None = None, max_history: int = 100_000) -> None:
        self.core = core
        self.sink = sink
        self.settled_seq = settled_seq
        self.max_history = max_history
        self.orders: dict[int, OrderView] = {}
        self.accounts: dict[int, AccountState] = {}
        if clock_ms is None:
            import time

            def clock_ms() -> int:
                return time.time_ns() // NS_PER_MS
        self.listen_keys = ListenKeys(clock_ms)

    # --- reads -------------------------------------------------------------------------

    def account(self, account: int) -> AccountState:
        """The state of ``account`` (empty if it never had an event)."""
        state = self.accounts.get(account)
        return state if state is not None else AccountState()

    def order(self, account: int, symbol: str, order_id: int | None = None,
              client_id: str | None = None) -> OrderView | None:
        """``account``'s order on ``symbol`` by id or client id (latest), else None."""
        if order_id is None:
            if client_id is None:
                return None
            order_id = self.account(account).client_ids.get((symbol, client_id))
            if order_id is None:
                return None
        view = self.orders.get(order_id)
        if view is None or view.account != account or view.symbol != symbol:
            return None
        return view

    def open_orders(self, account: int, symbol: str | None = None) -> list[OrderView]:
        """``account``'s open orders (on ``symbol`` if given), by order id."""
        ids = sorted(self.account(account).open)
        views = [self.orders[i] for i in ids]
        return [v for v in views if symbol is None or v.symbol == symbol]

    def all_orders(self, account: int, symbol: str) -> list[OrderView]:
        """Every kept order of ``account`` on ``symbol``, by order id."""
        return [self.orders[i] for i in self.account(account).orders.get(symbol, ())]

    def trades(self, account: int, symbol: str) -> list[TradeRow]:
        """``account``'s kept trades on ``symbol``, by trade id."""
        return list(self.account(account).trades.get(symbol, ()))

    def settlement_status(self, view: OrderView) -> str:
        """NONE (no trades), SETTLING (a trade after the ledger's seq) or SETTLED."""
        if not view.last_trade_seq:
            return "NONE"
        return "SETTLED" if view.last_trade_seq <= self.settled_seq() else "SETTLING"

    # --- the listener ------------------------------------------------------------------

    def on_batch(self, batch: list[Applied], live: bool) -> None:
        """Fold each command's events; publish user-data events when ``live`` (built only
        for accounts someone listens to)."""
        for applied in batch:
            out: list[tuple[int, dict[str, Any]]] | None = [] if live else None
            self._apply(applied, out)
            if out and self.sink is not None:
                for account, payload in out:
                    if account != FEE_ACCOUNT:  # the fee account has no keys, no streams
                        self.sink.publish_user(account, payload)

    def _wants(self, account: int) -> bool:
        """Does a connection listen to ``account``'s user data?  (Else its payloads,
        ~40 us of formatting per order, are not built.)"""
        sink = self.sink
        return sink is not None and account != FEE_ACCOUNT and sink.wants_user(account)

    def _state(self, account: int) -> AccountState:
        state = self.accounts.get(account)
        if state is None:
            state = self.accounts[account] = AccountState()
        return state

    def _apply(self, applied: Applied, out: list[tuple[int, dict[str, Any]]] | None) -> None:
        ts = applied.ts
        touched: dict[int, list[str]] = {}
        for ev in applied.events:
            if isinstance(ev, Trade):
                self._trade(ev, applied.seq, ts, out)
            elif isinstance(ev, BalanceChanged):
                state = self._state(ev.account)
                state.balances[ev.asset] = [ev.available, ev.frozen]
                state.update_ns = ts
                touched.setdefault(ev.account, []).append(ev.asset)
            elif isinstance(ev, OrderAccepted):
                self._accepted(ev, applied, out)
            elif isinstance(ev, OrderCanceled | OrderExpired):
                cmd = applied.command
                self._closed(ev, ts, out, cmd.cancel_client_id if isinstance(
                    cmd, CancelOrder) and isinstance(ev, OrderCanceled) else None)
            elif isinstance(ev, OrderAmended):
                self._amended(ev, ts, out)
            elif isinstance(ev, KillSwitchChanged):
                self._state(ev.account).blocked = ev.active
            elif out is not None and isinstance(ev, Deposited | WithdrawalHeld
                                                 | WithdrawalRefunded):
                if self._wants(ev.account):
                    sign = -1 if isinstance(ev, WithdrawalHeld) else 1
                    out.append((ev.account, userdata.balance_update(
                        self.core, ev.asset, sign * ev.amount, ts)))
        if out is not None:
            for account, assets in touched.items():
                if self._wants(account):
                    state = self.accounts[account]
                    out.append((account, userdata.account_position(self.core, state, assets,
                                                                   ts)))

    def _accepted(self, ev: OrderAccepted, applied: Applied,
                  out: list[tuple[int, dict[str, Any]]] | None) -> None:
        stp = ev.stp
        if stp < 0:  # a journal from before events carried the mode: the command's
            cmd = applied.command
            stp = cmd.stp if isinstance(cmd, PlaceOrder) else Stp.DEFAULT
            if stp == Stp.DEFAULT:
                spec = self.core.specs.get(ev.symbol)
                stp = spec.default_stp if spec is not None else Stp.NONE
        view = OrderView(ev.order_id, ev.account, ev.symbol, Side(ev.side), OrderType(ev.type),
                         TimeInForce(ev.tif), ev.price, ev.qty, ev.quote_qty, ev.client_id,
                         Stp(stp), applied.ts, update_ns=applied.ts)
        self.orders[ev.order_id] = view
        state = self._state(ev.account)
        ids = state.orders.setdefault(ev.symbol, [])
        ids.append(ev.order_id)
        state.open.add(ev.order_id)
        if ev.client_id is not None:
            state.client_ids[(ev.symbol, ev.client_id)] = ev.order_id
        if len(ids) > self.max_history + self.max_history // 8:
            self._trim_orders(state, ev.symbol)
        if out is not None and self._wants(ev.account):
            out.append((ev.account, userdata.execution_report(self.core, view, "NEW",
                                                              applied.ts)))

    def _trade(self, ev: Trade, seq: int, ts: int,
               out: list[tuple[int, dict[str, Any]]] | None) -> None:
        taker_buys = ev.taker_side == Side.BUY
        for oid, account, left, fee, maker in (
            (ev.maker_order_id, ev.maker_account, ev.maker_left, ev.maker_fee, True),
            (ev.taker_order_id, ev.taker_account, ev.taker_left, ev.taker_fee, False),
        ):
            row = TradeRow(ev.symbol, ev.trade_id, oid, ev.price, ev.qty, ev.quote_amount, fee,
                           taker_buys != maker, maker, ts, seq)
            state = self._state(account)
            rows = state.trades.setdefault(ev.symbol, [])
            rows.append(row)
            if len(rows) > self.max_history + self.max_history // 8:
                del rows[: len(rows) - self.max_history]
            view = self.orders.get(oid)
            if view is None:  # trimmed from history: nothing to update or report
                continue
            view.executed += ev.qty
            view.cum_quote += ev.quote_amount
            view.status = "PARTIALLY_FILLED" if left else "FILLED"
            view.update_ns = ts
            view.last_trade_seq = seq
            if not left:
                state.open.discard(oid)
            if out is not None and self._wants(account):
                out.append((account, userdata.execution_report(self.core, view, "TRADE", ts,
                                                                trade=row)))

    def _closed(self, ev: OrderCanceled | OrderExpired, ts: int,
                out: list[tuple[int, dict[str, Any]]] | None,
                cancel_id: str | None = None) -> None:
        view = self.orders.get(ev.order_id)
        if view is None:
            return
        if isinstance(ev, OrderCanceled):
            view.status = execution = "CANCELED"
        elif ev.reason == ExpireReason.STP:
            view.status, execution = "EXPIRED_IN_MATCH", "TRADE_PREVENTION"
        else:
            view.status = execution = "EXPIRED"
        view.update_ns = ts
        self._state(ev.account).open.discard(ev.order_id)
        if out is not None and self._wants(ev.account):
            out.append((ev.account, userdata.execution_report(self.core, view, execution, ts,
                                                              cancel_id=cancel_id)))

    def _amended(self, ev: OrderAmended, ts: int,
                 out: list[tuple[int, dict[str, Any]]] | None) -> None:
        view = self.orders.get(ev.order_id)
        if view is None:
            return
        view.price = ev.price
        view.qty = ev.qty
        view.update_ns = ts
        if out is not None and self._wants(ev.account):  # keep-priority amend: x=REPLACED
            out.append((ev.account, userdata.execution_report(self.core, view, "REPLACED", ts)))

    def _trim_orders(self, state: AccountState, symbol: str) -> None:
        """Forget the oldest closed orders of ``symbol`` beyond ``max_history``."""
        ids = state.orders[symbol]
        drop = len(ids) - self.max_history
        kept: list[int] = []
        for oid in ids:
            if drop > 0 and oid not in state.open:
                drop -= 1
                view = self.orders.pop(oid)
                if view.client_id is not None and state.client_ids.get(
                        (symbol, view.client_id)) == oid:
                    del state.client_ids[(symbol, view.client_id)]
            else:
                kept.append(oid)
        state.orders[symbol] = kept
