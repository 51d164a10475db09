"""The deterministic core: ``Engine.apply(cmd, seq, ts) -> list[Event]``.

Single-threaded and pure: no clock, randomness, environment or I/O; time and ``seq`` come
in with the command.  Each order command runs three stages:

1. accounts pre-check: validate, reserve funds (available -> frozen), or reject having
   changed nothing;
2. matching in the symbol's book (price-time, trade price = the resting order's price);
3. accounts settle: move frozen funds between the two sides of each trade, charge fees
   into ``FEE_ACCOUNT``, release what is left when an order reaches a terminal state.

Funds an order freezes (the ``reserved`` field of its ``Order``):

* LIMIT buy: notional at the limit price + fee at the higher of maker/taker rates;
* LIMIT sell: the base quantity;
* MARKET: exactly what its fills will cost.  Market orders never rest, so the engine
  first walks the opposite book (``_prepass``: same order, same self-trade rules, same
  circuit breaker) to find the fills, freezes buy notional + taker fee or sell base
  quantity, and rejects with INSUFFICIENT_BALANCE if that is more than available.  The
  match that follows is the same walk, so a market order can never overdraw.

At the end of a command the engine emits one ``BalanceChanged`` per touched (account,
asset) and one ``BookLevelChanged`` per touched (side, price), bids then asks, with the
new values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from chainbook.accounts.balances import FEE_ACCOUNT, Balances
from chainbook.accounts.fees import buy_reserve
from chainbook.book.book import OrderBook
from chainbook.book.order import Order
from chainbook.domain import commands as C
from chainbook.domain.enums import (
    CancelReason,
    ExpireReason,
    OrderStatus,
    OrderType,
    Reject,
    Stp,
    SymbolStatus,
    TimeInForce,
)
from chainbook.domain.events import (
    BalanceChanged,
    BookLevelChanged,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
    SymbolStatusChanged,
    Trade,
)
from chainbook.domain.instruments import BPS
from chainbook.engine import admin, funds
from chainbook.engine.funds import Withdrawal
from chainbook.engine.symbol_state import SymbolState, outside_band, would_take

BUY: Final = 0
SELL: Final = 1
# enum values the hot path only compares, as plain ints: compiled, ``kind == _MARKET``
# is then a machine comparison instead of a rich comparison of two objects
_LIMIT: Final[int] = int(OrderType.LIMIT)
_MARKET: Final[int] = int(OrderType.MARKET)
_LIMIT_MAKER: Final[int] = int(OrderType.LIMIT_MAKER)
_GTC: Final[int] = int(TimeInForce.GTC)
_FOK: Final[int] = int(TimeInForce.FOK)
_NONE: Final[int] = int(Stp.NONE)
_EXP_TAKER: Final[int] = int(Stp.EXPIRE_TAKER)
_EXP_MAKER: Final[int] = int(Stp.EXPIRE_MAKER)
_STP_DEFAULT: Final[int] = int(Stp.DEFAULT)
_TRADING: Final = SymbolStatus.TRADING
_HALTED: Final = SymbolStatus.HALTED
_EXPIRE_IOC: Final = ExpireReason.IOC
# enum members read on the hot path are bound once here: a class attribute lookup on an
# Enum costs ~50 ns, a module global ~10 ns
_EXPIRE_STP: Final = ExpireReason.STP
_CANCELED: Final = OrderStatus.CANCELED
_PARTIALLY_CANCELED: Final = OrderStatus.PARTIALLY_CANCELED
_BY_USER: Final = CancelReason.USER


class SequenceError(ValueError):
    """A command arrived with a ``seq`` not above the last one applied (a double apply)."""


class Engine:
    """Accounts plus one order book per symbol; see the module docstring."""

    def __init__(self, book_factory: Callable[[], Any] = OrderBook) -> None:
        self.book_factory = book_factory
        self.symbols: dict[str, SymbolState] = {}
        self.balances = Balances()
        self.blocked: set[int] = set()  # accounts with the kill switch on
        self.external_ids: set[str] = set()  # deposits and withdrawals already applied
        self.withdrawals: dict[str, Withdrawal] = {}  # by external id
        self.next_order_id = 1
        self.next_trade_id = 1
        self.last_seq = 0
        self.last_ts = 0
        self._dirty: SymbolState | None = None  # the symbol whose book this command touched
        self._dispatch: dict[type, Callable[[Any, int, list[Event]], None]] = {
            # PlaceOrder, AmendOrder and CancelOrder are dispatched in ``apply`` directly
            C.CancelAll: self._cancel_all,
            C.Deposit: lambda c, ts, ev: funds.deposit(self, c, ev),
            C.WithdrawHold: lambda c, ts, ev: funds.withdraw_hold(self, c, ev),
            C.WithdrawComplete: lambda c, ts, ev: funds.withdraw_complete(self, c, ev),
            C.WithdrawRefund: lambda c, ts, ev: funds.withdraw_refund(self, c, ev),
            C.AddSymbol: lambda c, ts, ev: admin.add_symbol(self, c, ev),
            C.SetSymbolStatus: lambda c, ts, ev: admin.set_status(self, c, ev),
            C.SetKillSwitch: lambda c, ts, ev: admin.kill_switch(self, c, ev),
        }

    # --- entry point -----------------------------------------------------------------

    def apply(self, cmd: C.Command, seq: int, ts: int) -> list[Event]:
        """Apply one command; return its events. Raise SequenceError if seq is not new.

        ``ts`` is the log's timestamp (ns); a ts older than the last one is treated as
        the last one, so time never runs backwards inside the core."""
        if seq <= self.last_seq:
            raise SequenceError(f"seq {seq} already applied (last {self.last_seq})")
        self.last_seq = seq
        if ts < self.last_ts:
            ts = self.last_ts
        self.last_ts = ts
        events: list[Event] = []
        # the order commands by direct type test (cheaper than the dict once compiled)
        if isinstance(cmd, C.AmendOrder):
            self._amend(cmd, ts, events)
        elif isinstance(cmd, C.PlaceOrder):
            self._place(cmd, ts, events)
        elif isinstance(cmd, C.CancelOrder):
            self._cancel(cmd, ts, events)
        else:
            self._dispatch[type(cmd)](cmd, ts, events)
        bal = self.balances
        if bal.touched:
            for (a, asset), cell in bal.touched.items():
                events.append(BalanceChanged(a, asset, cell[0], cell[1]))
            bal.touched.clear()
        if self._dirty is not None:
            self.flush_book(self._dirty, events)
            self._dirty = None
        return events

    def flush_book(self, sym: SymbolState, events: list[Event]) -> None:
        """Emit one BookLevelChanged per level of ``sym`` touched since the last flush
        (bids first, then asks)."""
        bids, asks = sym.book.touched
        name = sym.name
        if bids:
            for price, lv in bids.items():
                events.append(BookLevelChanged(name, 0, price, lv.qty))
            bids.clear()
        if asks:
            for price, lv in asks.items():
                events.append(BookLevelChanged(name, 1, price, lv.qty))
            asks.clear()

    # --- helpers -------------------------------------------------------------------

    def _symbol_for_orders(self, name: str, ts: int, ev: list[Event]) -> SymbolState | None:
        """The symbol (None if unknown), resumed first if its breaker cooldown is over."""
        sym = self.symbols.get(name)
        if sym is not None and sym.until_ts and ts >= sym.until_ts:
            self._resume(sym, ev)
        return sym

    def _trading_symbol(self, name: str, account: int, client_id: str | None, kind: int,
                        ts: int, ev: list[Event]) -> SymbolState | None:
        """The symbol an order for ``account`` may enter now, or None with the reject
        event appended (unknown symbol, not trading, account blocked)."""
        sym = self.symbols.get(name)
        if sym is None:
            self._reject(ev, account, Reject.UNKNOWN_SYMBOL, client_id, kind)
            return None
        if sym.until_ts and ts >= sym.until_ts:
            self._resume(sym, ev)
        if sym.status != _TRADING:
            self._reject(ev, account, Reject.SYMBOL_NOT_TRADING, client_id, kind)
        elif self.blocked and account in self.blocked:
            self._reject(ev, account, Reject.ACCOUNT_BLOCKED, client_id, kind)
        else:
            return sym
        return None

    def _resume(self, sym: SymbolState, ev: list[Event]) -> None:
        """End a circuit-breaker cooldown: the symbol trades again."""
        sym.until_ts = 0
        sym.status = _TRADING
        ev.append(SymbolStatusChanged(sym.name, _TRADING, "cooldown_over", 0))

    def _reject(self, ev: list[Event], account: int, reason: Reject,
                client_id: str | None, kind: int) -> None:
        ev.append(OrderRejected(account, reason, client_id, kind))

    def release(self, sym: SymbolState, order: Order) -> None:
        """Unfreeze whatever ``order`` still has reserved."""
        reserved = order.reserved
        if reserved:
            asset = sym.quote if order.side == BUY else sym.base
            # the cell exists: the order's reserve was frozen in it
            cell = self.balances.acct[order.account][asset]
            cell[0] += reserved
            cell[1] -= reserved
            self.balances.touched[(order.account, asset)] = cell
            order.reserved = 0

    def cancel_resting(self, sym: SymbolState, order: Order, reason: CancelReason,
                       ev: list[Event]) -> None:
        """Take a resting order out, release its funds, emit OrderCanceled."""
        sym.book.remove(order)
        sym.forget(order)
        self._dirty = sym
        self.release(sym, order)
        status = _PARTIALLY_CANCELED if order.filled else _CANCELED
        ev.append(OrderCanceled(order.id, order.account, sym.name, status,
                                order.left, order.filled, reason, order.client_id))

    def _expire_resting(self, sym: SymbolState, order: Order, reason: ExpireReason,
                        ev: list[Event]) -> None:
        sym.book.remove(order)
        sym.forget(order)
        self.release(sym, order)
        ev.append(OrderExpired(order.id, order.account, sym.name, order.left,
                               order.filled, reason, order.client_id))

    def _check_price(self, sym: SymbolState, side: int, price: int, qty: int,
                     kind: int) -> Reject | None:
        """Filters for a LIMIT price/quantity: range, notional, band, post-only."""
        if qty <= 0:
            return Reject.INVALID_QUANTITY
        if price < sym.min_price or (sym.max_price and price > sym.max_price):
            return Reject.INVALID_PRICE
        if qty < sym.min_qty or (sym.max_qty and qty > sym.max_qty):
            return Reject.QTY_OUT_OF_RANGE
        n = price * qty * sym.quote_per_tick_lot
        if n < sym.min_notional or (sym.max_notional and n > sym.max_notional):
            return Reject.NOTIONAL_OUT_OF_RANGE
        if sym.band_bps and outside_band(price, sym.reference_price(), sym.band_bps):
            return Reject.PRICE_OUT_OF_BAND
        if kind == _LIMIT_MAKER and would_take(side, price, sym.book.best_price(1 - side) or 0):
            return Reject.WOULD_TAKE
        return None

    # --- place ---------------------------------------------------------------------

    def _place(self, cmd: C.PlaceOrder, ts: int, ev: list[Event]) -> None:
        account = cmd.account
        sym = self._trading_symbol(cmd.symbol, account, cmd.client_id, 1, ts, ev)
        if sym is None:
            return None
        side: int = cmd.side
        kind: int = cmd.type
        tif: int = cmd.tif
        qty = cmd.qty
        stp: int = sym.default_stp if cmd.stp == _STP_DEFAULT else cmd.stp
        price: int
        spent = 0  # a quote-amount MARKET order: the notional its fills will cost
        if kind == _MARKET:
            bad = self._check_market(sym, cmd)
            if bad is not None:
                return self._reject(ev, account, bad, cmd.client_id, 1)
            limit = 0  # unused: a MARKET order has no price limit
            fill_qty, cost, cut = self._prepass(sym, side, account, stp, None, qty,
                                                cmd.quote_qty, ts)
            spent = cost
            if side == BUY:
                asset = sym.quote
                need = cost + cost * sym.taker_bps // BPS
                # an amount the order names must be there in full, filled or not
                named = 0 if cmd.quote_qty is None else (
                    cmd.quote_qty + cmd.quote_qty * sym.taker_bps // BPS)
            else:
                asset = sym.base
                need = fill_qty * sym.lot_units
                named = 0 if qty is None else qty * sym.lot_units
            if named > need and self.balances.available(account, asset) < named:
                return self._reject(ev, account, Reject.INSUFFICIENT_BALANCE,
                                    cmd.client_id, 1)
            if qty is None:
                # by quote amount, the order is for the lots that amount buys now, which
                # MARKET_LOT_SIZE bounds like a quantity; one lot more when the walk
                # stopped at a self-trade or the breaker, so that the match meets the
                # stop itself and the order ends PARTIALLY_FILLED -> EXPIRED, never
                # FILLED then EXPIRED (that lot is never filled nor paid for)
                if fill_qty and (fill_qty < sym.min_qty or (
                        sym.max_qty and fill_qty > sym.max_qty)):
                    return self._reject(ev, account, Reject.QTY_OUT_OF_RANGE,
                                        cmd.client_id, 1)
                qty = fill_qty if cut is None else fill_qty + 1
            price = 0
        else:
            if cmd.price is None or qty is None or cmd.quote_qty is not None or (
                kind == _LIMIT_MAKER and tif != _GTC
            ):
                return self._reject(ev, account, Reject.INVALID_ORDER_PARAMS,
                                    cmd.client_id, 1)
            price = cmd.price
            bad = self._check_price(sym, side, price, qty, kind)
            if bad is not None:
                return self._reject(ev, account, bad, cmd.client_id, 1)
            limit = price
            if side == BUY:
                asset = sym.quote
                need = buy_reserve(price, qty, sym.quote_per_tick_lot, sym.max_fee_bps)
            else:
                asset = sym.base
                need = qty * sym.lot_units
            if tif == _GTC and sym.max_open_orders:
                mine = sym.by_account.get(account)
                if mine is not None and len(mine) >= sym.max_open_orders:
                    return self._reject(ev, account, Reject.TOO_MANY_OPEN_ORDERS,
                                        cmd.client_id, 1)
        if cmd.client_id is not None and sym.client_id_of(account, cmd.client_id) is not None:
            return self._reject(ev, account, Reject.DUPLICATE_CLIENT_ORDER_ID,
                                cmd.client_id, 1)
        bal = self.balances
        assets = bal.acct.get(account)  # read-only lookups: a reject creates no cell
        cell = None if assets is None else assets.get(asset)
        if need and (cell is None or cell[0] < need):
            return self._reject(ev, account, Reject.INSUFFICIENT_BALANCE, cmd.client_id, 1)

        # accepted: from here on the command changes state
        oid = self.next_order_id
        self.next_order_id = oid + 1
        order = Order(oid, account, side, price, qty, qty, 0, need, kind, tif, stp,
                      cmd.client_id)
        ev.append(OrderAccepted(oid, account, sym.name, cmd.side, cmd.type, cmd.tif, price, qty,
                                cmd.quote_qty or 0, cmd.client_id, stp))
        if need and cell is not None:  # need > 0 implies the cell exists (checked above)
            cell[0] -= need
            cell[1] += need
            bal.touched[(account, asset)] = cell
        self._dirty = sym
        if tif == _FOK and kind == _LIMIT:
            fillable, _, _ = self._prepass(sym, side, account, stp, limit, qty, None, ts)
            if fillable < qty:
                self.release(sym, order)
                ev.append(OrderExpired(oid, account, sym.name, qty, 0, ExpireReason.FOK,
                                       cmd.client_id))
                return None
        if kind == _MARKET:
            stopped = self._match(sym, order, limit, ts, ev)
            if stopped is None and stp == _EXP_MAKER and cmd.quote_qty is not None:
                self._expire_own_in_reach(sym, order, cmd.quote_qty - spent, ev)
        else:
            best = sym.book.best_price(1 - side)
            if best is not None and (price >= best if side == BUY else price <= best):
                stopped = self._match(sym, order, limit, ts, ev)
            else:
                stopped = None  # does not cross: nothing to match
        if order.left or not order.filled or stopped is not None:
            if kind != _MARKET and tif == _GTC and stopped is None:
                sym.book.add(order)
                sym.index(order)
                return None
            ev.append(OrderExpired(oid, account, sym.name, order.left, order.filled,
                                   _EXPIRE_IOC if stopped is None else stopped,
                                   cmd.client_id))
        self.release(sym, order)
        return None

    def _check_market(self, sym: SymbolState, cmd: C.PlaceOrder) -> Reject | None:
        if cmd.price is not None or cmd.tif == _FOK or (cmd.qty is None) == (
            cmd.quote_qty is None
        ):
            return Reject.INVALID_ORDER_PARAMS
        if cmd.qty is not None:
            if cmd.qty <= 0:
                return Reject.INVALID_QUANTITY
            if cmd.qty < sym.min_qty or (sym.max_qty and cmd.qty > sym.max_qty):
                return Reject.QTY_OUT_OF_RANGE
        else:
            q = cmd.quote_qty
            if q is None or q <= 0 or q < sym.min_notional or (
                sym.max_notional and q > sym.max_notional
            ):
                return Reject.NOTIONAL_OUT_OF_RANGE
        return None

    def _prepass(self, sym: SymbolState, side: int, account: int, stp: int,
                 limit: int | None, qty: int | None, quote_qty: int | None,
                 ts: int) -> tuple[int, int, ExpireReason | None]:
        """Walk the opposite side as ``_match`` would, without changing anything.

        Return (lots that would fill, their notional, why the walk was cut short).  It
        ends at the limit price, the requested quantity or quote amount (no reason), or
        (reason STP / CIRCUIT_BREAKER) at a self-trade that expires the taker or a price
        that would trip the breaker while the order still wanted more.  O(orders walked)."""
        k = sym.quote_per_tick_lot
        want = qty if qty is not None else -1
        budget = quote_qty if quote_qty is not None else -1
        filled = 0
        cost = 0
        breaker = sym.breaker_bps
        bounds = sym.window_bounds(ts) if breaker else None
        for maker in sym.book.iter_side(1 - side):
            p = maker.price
            if limit is not None and (p > limit if side == BUY else p < limit):
                break
            if budget >= 0 and budget - cost < p * k:
                break  # the quote amount cannot buy one more lot here: done
            if maker.account == account and stp != _NONE:
                if stp == _EXP_MAKER:
                    continue
                return filled, cost, ExpireReason.STP
            if breaker:
                if sym.would_trip(p, bounds):
                    return filled, cost, ExpireReason.CIRCUIT_BREAKER
                bounds = (p, p) if bounds is None else (min(bounds[0], p), max(bounds[1], p))
            q = maker.left
            if want >= 0:
                q = min(q, want - filled)
            short = False  # the quote amount ends inside this maker: the walk ends here
            if budget >= 0:
                afford = (budget - cost) // (p * k)
                if afford < q:
                    q, short = afford, True
            filled += q
            cost += p * q * k
            if filled == want or short:
                break  # a SELL must not go on to lower bids: _match takes the best first
        return filled, cost, None

    def _expire_own_in_reach(self, sym: SymbolState, taker: Order, budget: int,
                             ev: list[Event]) -> None:
        """A quote-amount MARKET order under EXPIRE_MAKER, after its fills: the own
        resting orders at the head of the book that ``budget`` (its amount left) still
        reaches are expired, as a taker that walked on would have met them (the
        prepass skipped them, so its lots never reached them).  O(orders expired)."""
        book = sym.book
        opp = 1 - taker.side
        k = sym.quote_per_tick_lot
        while True:
            maker = book.head(opp)
            if maker is None or maker.account != taker.account or budget < maker.price * k:
                return
            self._expire_resting(sym, maker, _EXPIRE_STP, ev)

    # --- matching ------------------------------------------------------------------

    def _match(self, sym: SymbolState, taker: Order, limit: int, ts: int,
               ev: list[Event]) -> ExpireReason | None:
        """Match ``taker`` against the opposite side; return why it stopped early, if so.

        ``limit`` is the taker's price (ignored for a MARKET order).  Each fill moves
        frozen funds between the two accounts at the maker's price and credits both fees
        to FEE_ACCOUNT.  O(fills + makers expired by STP)."""
        book = sym.book
        side = taker.side
        opp = 1 - side
        account = taker.account
        stp = taker.stp
        name = sym.name
        k = sym.quote_per_tick_lot
        lot = sym.lot_units
        maker_bps = sym.maker_bps
        taker_bps = sym.taker_bps
        breaker = sym.breaker_bps
        bal = self.balances
        get = bal.get
        accts = bal.acct
        touched = bal.touched
        base, quote = sym.base, sym.quote
        no_limit = taker.type == _MARKET
        t_quote: list[int] | None = None  # the taker's cells, fetched at the first fill
        t_base: list[int] = []
        fees = 0
        stopped: ExpireReason | None = None
        while taker.left:
            maker = book.head(opp)
            if maker is None:
                break
            p = maker.price
            if not no_limit and (p > limit if side == BUY else p < limit):
                break
            m_acct = maker.account
            if m_acct == account and stp != _NONE:
                if stp != _EXP_TAKER:  # EXPIRE_MAKER or EXPIRE_BOTH
                    self._expire_resting(sym, maker, _EXPIRE_STP, ev)
                if stp != _EXP_MAKER:  # EXPIRE_TAKER or EXPIRE_BOTH
                    stopped = _EXPIRE_STP
                    break
                continue
            if breaker and sym.would_trip(p, sym.window_bounds(ts)):
                admin.trip_breaker(self, sym, p, ts, ev)
                stopped = ExpireReason.CIRCUIT_BREAKER
                break
            q = taker.left if taker.left < maker.left else maker.left
            n = p * q * k
            mfee = n * maker_bps // BPS
            tfee = n * taker_bps // BPS
            base_amt = q * lot
            if t_quote is None:
                t_quote = get(account, quote)
                t_base = get(account, base)
            m_assets = accts[m_acct]  # exists: the maker's reserve is frozen there
            m_quote = m_assets.get(quote)
            if m_quote is None:
                m_quote = m_assets[quote] = [0, 0]
            m_base = m_assets.get(base)
            if m_base is None:
                m_base = m_assets[base] = [0, 0]
            if side == BUY:
                t_quote[1] -= n + tfee
                t_base[0] += base_amt
                m_base[1] -= base_amt
                m_quote[0] += n - mfee
                taker.reserved -= n + tfee
                maker.reserved -= base_amt
            else:
                t_base[1] -= base_amt
                t_quote[0] += n - tfee
                m_quote[1] -= n + mfee
                m_base[0] += base_amt
                taker.reserved -= base_amt
                maker.reserved -= n + mfee
            touched[(m_acct, quote)] = m_quote
            touched[(m_acct, base)] = m_base
            fees += mfee + tfee
            book.fill(maker, q)
            taker.left -= q
            taker.filled += q
            tid = self.next_trade_id
            self.next_trade_id = tid + 1
            ev.append(Trade(tid, name, p, q, n, side, maker.id, taker.id, m_acct,
                            account, mfee, tfee, maker.left, taker.left))
            sym.last_price = p
            if breaker:
                sym.record_trade(ts, p)
            if not maker.left:
                sym.forget(maker)
                if maker.reserved:
                    self.release(sym, maker)
        if t_quote is not None:
            touched[(account, quote)] = t_quote
            touched[(account, base)] = t_base
            if fees:
                cell = get(FEE_ACCOUNT, quote)
                cell[0] += fees
                touched[(FEE_ACCOUNT, quote)] = cell
        return stopped

    # --- cancel and amend ----------------------------------------------------------

    def _cancel(self, cmd: C.CancelOrder, ts: int, ev: list[Event]) -> None:
        sym = self.symbols.get(cmd.symbol)
        if sym is None:
            return self._reject(ev, cmd.account, Reject.UNKNOWN_SYMBOL, cmd.client_id, 2)
        if sym.until_ts and ts >= sym.until_ts:
            self._resume(sym, ev)
        if sym.status == _HALTED:
            return self._reject(ev, cmd.account, Reject.SYMBOL_NOT_TRADING, cmd.client_id, 2)
        order = sym.find(cmd.account, cmd.order_id, cmd.client_id)
        if order is None:
            return self._reject(ev, cmd.account, Reject.UNKNOWN_ORDER, cmd.client_id, 2)
        self.cancel_resting(sym, order, _BY_USER, ev)
        return None

    def _cancel_all(self, cmd: C.CancelAll, ts: int, ev: list[Event]) -> None:
        sym = self._symbol_for_orders(cmd.symbol, ts, ev)
        if sym is None:
            return self._reject(ev, cmd.account, Reject.UNKNOWN_SYMBOL, None, 3)
        if sym.status == _HALTED:
            return self._reject(ev, cmd.account, Reject.SYMBOL_NOT_TRADING, None, 3)
        for order in sym.open_orders_of(cmd.account):
            self.cancel_resting(sym, order, CancelReason.CANCEL_ALL, ev)
        return None

    def _amend(self, cmd: C.AmendOrder, ts: int, ev: list[Event]) -> None:
        account = cmd.account
        sym = self._trading_symbol(cmd.symbol, account, cmd.client_id, 4, ts, ev)
        if sym is None:
            return None
        oid = cmd.order_id
        if oid is None and cmd.client_id is not None:
            oid = sym.client_id_of(account, cmd.client_id)
        order = sym.orders.get(oid)  # type: ignore[arg-type]
        if order is None or order.account != account:
            return self._reject(ev, account, Reject.UNKNOWN_ORDER, cmd.client_id, 4)
        old_price = order.price
        price = old_price if cmd.new_price is None else cmd.new_price
        qty = order.qty if cmd.new_qty is None else cmd.new_qty
        left = qty - order.filled
        if left <= 0 or (price == old_price and qty == order.qty):
            return self._reject(ev, account, Reject.AMEND_INVALID, cmd.client_id, 4)
        side = order.side
        # the limit filters apply to the new total quantity; post-only must still not take
        bad = self._check_price(sym, side, price, qty, order.type)
        if bad is not None:
            return self._reject(ev, account, bad, cmd.client_id, 4)
        if side == BUY:
            asset = sym.quote
            n = price * left * sym.quote_per_tick_lot
            need = n + n * sym.max_fee_bps // BPS
        else:
            asset = sym.base
            need = left * sym.lot_units
        delta = need - order.reserved
        if delta:
            cell = self.balances.acct[account][asset]  # exists: the order reserves from it
            if delta > cell[0]:
                return self._reject(ev, account, Reject.INSUFFICIENT_BALANCE,
                                    cmd.client_id, 4)
            cell[0] -= delta
            cell[1] += delta
            self.balances.touched[(account, asset)] = cell
            order.reserved = need
        book = sym.book
        self._dirty = sym
        if price == old_price and left < order.left:
            book.reduce(order, left)
            order.qty = qty
            ev.append(OrderAmended(order.id, account, sym.name, price, qty, left, True))
            return None
        # a new price or a larger quantity loses time priority: out, change, re-enter
        order.qty = qty
        ev.append(OrderAmended(order.id, account, sym.name, price, qty, left, False))
        best = book.best_price(1 - side)
        if best is None or (price < best if side == BUY else price > best):
            book.move(order, price, left)  # does not cross: no matching needed
            return None
        book.remove(order)
        order.price = price
        order.left = left
        stopped = self._match(sym, order, price, ts, ev)
        if order.left and stopped is None:
            book.add(order)
            return None
        sym.forget(order)
        if order.left:
            ev.append(OrderExpired(order.id, account, sym.name, order.left, order.filled,
                                   stopped or _EXPIRE_IOC, order.client_id))
        self.release(sym, order)
        return None
