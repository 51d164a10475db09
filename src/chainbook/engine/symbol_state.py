"""Everything the core keeps for one symbol: spec, status, book, order indexes, breaker."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from chainbook.book.order import Order
from chainbook.book.protocol import Book
from chainbook.domain.enums import SymbolStatus
from chainbook.domain.instruments import BPS, SymbolSpec

BookFactory = Callable[[], Book]


# The price rules of a LIMIT order that depend on the market, shared by the engine and by
# the gateway's order/test (which checks them against market data, without the core).

def band_reference(last_price: int, bid: int, ask: int) -> int:
    """The price band's reference: the last trade price, else the mid of the best bid and
    ask (0 = no such side), else 0 (no reference: no band)."""
    if last_price:
        return last_price
    if not bid or not ask:
        return 0
    return (bid + ask) // 2


def outside_band(price: int, reference: int, band_bps: int) -> bool:
    """Is ``price`` more than ``band_bps`` away from ``reference`` (0: no band)?"""
    return band_bps > 0 and reference > 0 and abs(price - reference) * BPS > reference * band_bps


def would_take(side: int, price: int, best_opposite: int) -> bool:
    """Would a LIMIT_MAKER at ``price`` trade at once against ``best_opposite`` (0: empty
    side)?  ``side`` is 0 for a buy, 1 for a sell."""
    if not best_opposite:
        return False
    return price >= best_opposite if side == 0 else price <= best_opposite


class SymbolState:
    """Mutable per-symbol state owned by the engine."""

    __slots__ = (
        "spec", "book", "status", "until_ts", "last_price", "orders", "by_account",
        "client_ids", "lo_q", "hi_q", "max_fee_bps",
        # copied from the spec (see __init__):
        "name", "base", "quote", "lot_units", "quote_per_tick_lot", "min_qty", "max_qty",
        "min_price", "max_price", "min_notional", "max_notional", "maker_bps", "taker_bps",
        "band_bps", "max_open_orders", "breaker_bps", "default_stp",
    )

    def __init__(self, spec: SymbolSpec, book: Book) -> None:
        self.spec = spec
        self.max_fee_bps = spec.max_fee_bps  # cached: read on every buy reserve
        # the spec's fields the engine reads per command, copied into this (compiled,
        # native) object: reading a msgspec struct's field is a generic attribute lookup
        self.name = spec.name
        self.base = spec.base
        self.quote = spec.quote
        self.lot_units = spec.lot_units
        self.quote_per_tick_lot = spec.quote_per_tick_lot
        self.min_qty = spec.min_qty
        self.max_qty = spec.max_qty
        self.min_price = spec.min_price
        self.max_price = spec.max_price
        self.min_notional = spec.min_notional
        self.max_notional = spec.max_notional
        self.maker_bps = spec.maker_bps
        self.taker_bps = spec.taker_bps
        self.band_bps = spec.band_bps
        self.max_open_orders = spec.max_open_orders
        self.breaker_bps = spec.breaker_bps
        self.default_stp = int(spec.default_stp)
        self.book = book
        self.status = SymbolStatus.TRADING
        self.until_ts = 0  # end of a breaker cooldown; 0 = none pending
        self.last_price = 0  # last traded price, 0 = no trade yet
        self.orders: dict[int, Order] = {}
        self.by_account: dict[int, dict[int, Order]] = {}
        # account -> client order id -> order id (nested: no tuple key per order)
        self.client_ids: dict[int, dict[str, int]] = {}
        # monotonic deques of (ts, price) over the breaker window: lo_q prices strictly
        # increasing (front = window min), hi_q strictly decreasing (front = window max)
        self.lo_q: deque[tuple[int, int]] = deque()
        self.hi_q: deque[tuple[int, int]] = deque()

    # --- order indexes -------------------------------------------------------------

    def index(self, order: Order) -> None:
        """Register an order that now rests in the book."""
        self.orders[order.id] = order
        mine = self.by_account.get(order.account)
        if mine is None:
            mine = self.by_account[order.account] = {}
        mine[order.id] = order
        if order.client_id is not None:
            ids = self.client_ids.get(order.account)
            if ids is None:
                ids = self.client_ids[order.account] = {}
            ids[order.client_id] = order.id

    def restore(self, bids: list[Order], asks: list[Order]) -> None:
        """Rest a snapshot's orders (each side in priority order) and index them."""
        self.book.load(0, bids)
        self.book.load(1, asks)
        for side in (bids, asks):
            for order in side:
                self.index(order)

    def forget(self, order: Order) -> None:
        """Drop an order that left the book from every index."""
        del self.orders[order.id]
        mine = self.by_account[order.account]
        del mine[order.id]
        if not mine:
            del self.by_account[order.account]
        if order.client_id is not None:
            ids = self.client_ids[order.account]
            del ids[order.client_id]
            if not ids:
                del self.client_ids[order.account]

    def open_orders_of(self, account: int) -> list[Order]:
        """The account's open orders oldest first (by order id, so the order is the same
        after a restart from a snapshot). O(k log k)."""
        mine = self.by_account.get(account)
        return [] if mine is None else sorted(mine.values(), key=lambda o: o.id)

    def client_id_of(self, account: int, client_id: str) -> int | None:
        """The order id of the account's open order with this client id, or None."""
        ids = self.client_ids.get(account)
        return None if ids is None else ids.get(client_id)

    def find(self, account: int, order_id: int | None, client_id: str | None) -> Order | None:
        """The account's open order by id or client id, or None."""
        if order_id is None and client_id is not None:
            order_id = self.client_id_of(account, client_id)
        if order_id is None:
            return None
        order = self.orders.get(order_id)
        if order is None or order.account != account:
            return None
        return order

    # --- reference price and circuit breaker ----------------------------------------

    def reference_price(self) -> int:
        """Last trade price, else the mid of best bid and ask, else 0 (``band_reference``)."""
        if self.last_price:
            return self.last_price
        return band_reference(0, self.book.best_price(0) or 0, self.book.best_price(1) or 0)

    def window_bounds(self, ts: int) -> tuple[int, int] | None:
        """(min, max) traded price within the breaker window ending at ``ts``, or None.

        Does not mutate the deques (a rejected command must change nothing)."""
        cutoff = ts - self.spec.breaker_window_ns
        lo = next((p for t, p in self.lo_q if t >= cutoff), None)
        if lo is None:
            return None
        hi = next(p for t, p in self.hi_q if t >= cutoff)
        return lo, hi

    def would_trip(self, price: int, bounds: tuple[int, int] | None) -> bool:
        """True if trading at ``price`` moves more than breaker_bps from the window."""
        if bounds is None:
            return False
        b = self.spec.breaker_bps
        lo, hi = bounds
        return price * BPS > lo * (BPS + b) or price * BPS < hi * (BPS - b)

    def record_trade(self, ts: int, price: int) -> None:
        """Push a trade into the breaker window and evict what fell out of it. O(1) amortized."""
        self.last_price = price
        cutoff = ts - self.spec.breaker_window_ns
        lo_q, hi_q = self.lo_q, self.hi_q
        while lo_q and lo_q[0][0] < cutoff:
            lo_q.popleft()
        while hi_q and hi_q[0][0] < cutoff:
            hi_q.popleft()
        while lo_q and lo_q[-1][1] >= price:
            lo_q.pop()
        lo_q.append((ts, price))
        while hi_q and hi_q[-1][1] <= price:
            hi_q.pop()
        hi_q.append((ts, price))
