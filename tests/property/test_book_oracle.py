"""The engine on the fast book against the engine on the naive oracle book, step by step.

A Hypothesis state machine sends the same random commands to ``Engine()`` and
``Engine(book_factory=NaiveBook)``: every order type, TIF and STP mode on a small price
grid with few accounts (so self-trades, crossings, breaker trips and band rejects are
common), cancels, cancel-all, amends, deposits, withdrawals, kill switch and status
changes.  After every step both must have produced the same events, hold the same
``state_hash``, pass ``check()`` and show the same depth.
"""

from __future__ import annotations

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chainbook.book.naive import NaiveBook
from chainbook.domain import commands as C
from chainbook.domain.enums import (
    BreakerAction,
    OrderType,
    Side,
    Stp,
    SymbolStatus,
    TimeInForce,
)
from chainbook.domain.events import (
    BalanceChanged,
    BookLevelChanged,
    Event,
    OrderRejected,
    Trade,
)
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine import Engine
from chainbook.engine.state import check, state_hash

SPECS = (
    SymbolSpec(name="AQ", base="A", quote="Q", lot_units=10, quote_per_tick_lot=1,
               maker_bps=10, taker_bps=30, breaker_bps=400, breaker_window_ns=10**9,
               breaker_cooldown_ns=2 * 10**9, default_stp=Stp.EXPIRE_MAKER),
    SymbolSpec(name="CQ", base="C", quote="Q", lot_units=1, quote_per_tick_lot=2,
               taker_bps=15, band_bps=800, max_open_orders=5, min_notional=150, max_qty=8,
               breaker_bps=600, breaker_window_ns=5 * 10**8, breaker_cooldown_ns=10**9,
               breaker_action=BreakerAction.CANCEL_ONLY, default_stp=Stp.EXPIRE_TAKER),
)
SYMBOLS = [s.name for s in SPECS]
ASSETS = ["A", "C", "Q"]
ACCOUNTS = st.integers(1, 4)  # account 4 is never funded at the start
PRICES = st.integers(94, 106)
DT = st.sampled_from([0, 1_000_000, 300_000_000, 1_100_000_000])
CLIENT_IDS = st.none() | st.sampled_from(["x", "y"])


class TwoEngines(RuleBasedStateMachine):
    """Same commands into the fast and the naive engine; compare after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.fast = Engine()
        self.naive = Engine(book_factory=NaiveBook)
        self.seq = 0
        self.ts = 10**18
        self.n_ext = 0
        self.withdrawals: list[str] = []
        self.kinds: set[str] = set()
        for spec in SPECS:
            self._apply(C.AddSymbol(spec), 0)
        for acct in (1, 2, 3):
            for asset, amount in (("Q", 60_000), ("A", 400), ("C", 40)):
                self._apply(C.Deposit(acct, asset, amount, self._ext()), 0)
        # a two-sided book to start from, so that the first steps already trade and amend
        for sym in SYMBOLS:
            for i, acct in enumerate((1, 2, 3, 1, 2, 3)):
                bid, ask = 99 - i // 2, 101 + i // 2
                self._apply(C.PlaceOrder(acct, sym, Side.BUY, OrderType.LIMIT, 2, bid), 0)
                self._apply(C.PlaceOrder(acct, sym, Side.SELL, OrderType.LIMIT, 2, ask), 0)

    def _ext(self) -> str:
        self.n_ext += 1
        return f"e{self.n_ext}"

    def _apply(self, cmd: C.Command, dt: int) -> list[Event]:
        self.seq += 1
        self.ts += dt
        a = self.fast.apply(cmd, self.seq, self.ts)
        b = self.naive.apply(cmd, self.seq, self.ts)
        assert a == b, f"{cmd}\nfast:  {a}\nnaive: {b}"
        self._check_events(a)
        for e in a:
            reason = getattr(e, "reason", None)
            self.kinds.add(type(e).__name__ if reason is None or isinstance(reason, str)
                           else f"{type(e).__name__}:{reason.name}")
        return a

    def _check_events(self, events: list[Event]) -> None:
        """Events carry final values, once per balance cell and book level; trades are
        priced and charged as the spec says."""
        cells: set[tuple[int, str]] = set()
        levels: set[tuple[str, int, int]] = set()
        bal = self.fast.balances
        for e in events:
            if isinstance(e, BalanceChanged):
                assert (e.account, e.asset) not in cells
                cells.add((e.account, e.asset))
                assert (e.available, e.frozen) == (bal.available(e.account, e.asset),
                                                   bal.frozen(e.account, e.asset))
            elif isinstance(e, BookLevelChanged):
                key = (e.symbol, e.side, e.price)
                assert key not in levels
                levels.add(key)
                assert e.qty == self.fast.symbols[e.symbol].book.level_qty(e.side, e.price)
            elif isinstance(e, Trade):
                spec = self.fast.symbols[e.symbol].spec
                assert e.qty > 0 and e.quote_amount == e.price * e.qty * spec.quote_per_tick_lot
                assert e.maker_fee == e.quote_amount * spec.maker_bps // 10_000
                assert e.taker_fee == e.quote_amount * spec.taker_bps // 10_000

    def _pick_order(self, acct: int, sym: str, pick: int) -> int:
        """Mostly one of the account's open orders, sometimes any id (maybe unknown)."""
        mine = sorted(self.fast.symbols[sym].by_account.get(acct, {}))
        if mine and pick % 5:
            return mine[pick % len(mine)]
        return pick % (self.fast.next_order_id + 2)

    # --- orders ----------------------------------------------------------------------

    @rule(acct=ACCOUNTS, sym=st.sampled_from(SYMBOLS), side=st.sampled_from(Side),
          price=PRICES, qty=st.integers(1, 6),
          tif=st.sampled_from(TimeInForce), stp=st.sampled_from(Stp), cid=CLIENT_IDS,
          maker=st.booleans(), dt=DT)
    def place_limit(self, acct, sym, side, price, qty, tif, stp, cid, maker, dt):
        kind = OrderType.LIMIT_MAKER if maker and tif == TimeInForce.GTC else OrderType.LIMIT
        self._apply(C.PlaceOrder(acct, sym, side, kind, qty, price, tif, cid, None, stp), dt)

    @rule(acct=ACCOUNTS, sym=st.sampled_from(SYMBOLS), side=st.sampled_from(Side),
          offset=st.integers(-1, 2), qty=st.integers(1, 8),
          tif=st.sampled_from(TimeInForce), stp=st.sampled_from(Stp), dt=DT)
    def place_crossing(self, acct, sym, side, offset, qty, tif, stp, dt):
        """A limit priced at (or through) the opposite best, so that it trades."""
        best = self.fast.symbols[sym].book.best_price(1 - side)
        if best is None:
            best = 100
        price = best + offset if side == Side.BUY else best - offset
        self._apply(C.PlaceOrder(acct, sym, side, OrderType.LIMIT, qty, price, tif, None,
                                 None, stp), dt)

    @rule(acct=ACCOUNTS, sym=st.sampled_from(SYMBOLS), side=st.sampled_from(Side),
          qty=st.integers(1, 12), stp=st.sampled_from(Stp), cid=CLIENT_IDS, dt=DT)
    def place_market_qty(self, acct, sym, side, qty, stp, cid, dt):
        self._apply(C.PlaceOrder(acct, sym, side, OrderType.MARKET, qty, None,
                                 TimeInForce.IOC, cid, None, stp), dt)

    @rule(acct=ACCOUNTS, sym=st.sampled_from(SYMBOLS), side=st.sampled_from(Side),
          quote=st.integers(0, 2_500), stp=st.sampled_from(Stp), dt=DT)
    def place_market_quote(self, acct, sym, side, quote, stp, dt):
        self._apply(C.PlaceOrder(acct, sym, side, OrderType.MARKET, None, None,
                                 TimeInForce.IOC, None, quote, stp), dt)

    @rule(acct=ACCOUNTS, sym=st.sampled_from(SYMBOLS), side=st.sampled_from(Side),
          price=st.none() | PRICES, qty=st.none() | st.integers(-1, 6),
          kind=st.sampled_from(OrderType), tif=st.sampled_from(TimeInForce),
          quote=st.none() | st.integers(0, 500), dt=DT)
    def place_anything(self, acct, sym, side, price, qty, kind, tif, quote, dt):
        """Any combination of fields, valid or not."""
        self._apply(C.PlaceOrder(acct, sym, side, kind, qty, price, tif, None, quote), dt)

    @rule(acct=ACCOUNTS, sym=st.sampled_from(SYMBOLS), pick=st.integers(0, 10**6),
          by_client=st.booleans(), cid=st.sampled_from(["x", "y"]), dt=DT)
    def cancel(self, acct, sym, pick, by_client, cid, dt):
        if by_client:
            cmd = C.CancelOrder(acct, sym, None, cid)
        else:
            cmd = C.CancelOrder(acct, sym, self._pick_order(acct, sym, pick), None)
        self._apply(cmd, dt)

    @rule(acct=ACCOUNTS, sym=st.sampled_from(SYMBOLS), dt=DT)
    def cancel_all(self, acct, sym, dt):
        self._apply(C.CancelAll(acct, sym), dt)

    @rule(acct=ACCOUNTS, sym=st.sampled_from(SYMBOLS), pick=st.integers(0, 10**6),
          new_price=st.none() | PRICES, new_qty=st.none() | st.integers(0, 8), dt=DT)
    def amend(self, acct, sym, pick, new_price, new_qty, dt):
        oid = self._pick_order(acct, sym, pick)
        self._apply(C.AmendOrder(acct, sym, oid, None, new_price, new_qty), dt)

    @rule(acct=ACCOUNTS, sym=st.sampled_from(SYMBOLS), pick=st.integers(0, 10**6),
          new_price=PRICES, dt=DT)
    def amend_price(self, acct, sym, pick, new_price, dt):
        oid = self._pick_order(acct, sym, pick)
        self._apply(C.AmendOrder(acct, sym, oid, None, new_price, None), dt)

    # --- funds and admin -------------------------------------------------------------

    @rule(acct=ACCOUNTS, asset=st.sampled_from(ASSETS), amount=st.integers(-5, 3_000),
          repeat=st.booleans())
    def deposit(self, acct, asset, amount, repeat):
        ext = f"e{self.n_ext}" if repeat else self._ext()
        self._apply(C.Deposit(acct, asset, amount, ext), 0)

    @rule(acct=ACCOUNTS, asset=st.sampled_from(ASSETS), amount=st.integers(0, 20_000))
    def withdraw_hold(self, acct, asset, amount):
        ext = self._ext()
        self.withdrawals.append(ext)
        self._apply(C.WithdrawHold(acct, asset, amount, ext), 0)

    @rule(pick=st.integers(0, 10**6), complete=st.booleans())
    def withdraw_finish(self, pick, complete):
        ext = self.withdrawals[pick % len(self.withdrawals)] if self.withdrawals else "none"
        cmd = C.WithdrawComplete(ext) if complete else C.WithdrawRefund(ext)
        self._apply(cmd, 0)

    @rule(acct=ACCOUNTS, active=st.sampled_from([False, False, True]), dt=DT)
    def kill_switch(self, acct, active, dt):
        self._apply(C.SetKillSwitch(acct, active), dt)

    @rule(sym=st.sampled_from(SYMBOLS + ["ZZ"]),
          status=st.sampled_from([SymbolStatus.TRADING] * 3 + list(SymbolStatus)[1:]))
    def set_status(self, sym, status):
        self._apply(C.SetSymbolStatus(sym, status), 0)

    # --- after every step ------------------------------------------------------------

    def teardown(self):
        for kind in sorted(self.kinds):
            event(kind)
        event(f"steps: {self.seq // 25 * 25}+")

    @invariant()
    def same_state(self):
        check(self.fast)
        check(self.naive)
        assert state_hash(self.fast) == state_hash(self.naive)
        for name in SYMBOLS:
            fb, nb = self.fast.symbols[name].book, self.naive.symbols[name].book
            for side in (0, 1):
                assert fb.depth(side, 100) == nb.depth(side, 100)
            assert self.fast.symbols[name].status == self.naive.symbols[name].status


TwoEngines.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_fast_engine_matches_naive_engine = TwoEngines.TestCase


class RejectsChangeNothing(TwoEngines):
    """The same random commands; a command answered by a lone OrderRejected must leave
    ``state_hash`` exactly as it was."""

    def _apply(self, cmd: C.Command, dt: int) -> list[Event]:
        before = state_hash(self.fast)
        events = super()._apply(cmd, dt)
        if len(events) == 1 and isinstance(events[0], OrderRejected):
            assert state_hash(self.fast) == before, f"rejected {cmd} changed the state"
        return events


RejectsChangeNothing.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_rejected_commands_change_nothing = RejectsChangeNothing.TestCase
