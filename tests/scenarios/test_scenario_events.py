"""Exact event sequences in canonical cases, and order states derived via TRANSITIONS."""

from __future__ import annotations

from chainbook.domain import commands as C
from chainbook.domain.enums import (
    CancelReason,
    ExpireReason,
    OrderStatus,
    OrderType,
    Side,
    Stp,
    SymbolStatus,
    TimeInForce,
)
from chainbook.domain.events import (
    BalanceChanged,
    BookLevelChanged,
    KillSwitchChanged,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    SymbolStatusChanged,
    Trade,
)
from chainbook.domain.transitions import TERMINAL, Happening, next_state

BUY, SELL = Side.BUY, Side.SELL
_STATE_EVENTS = (BalanceChanged, BookLevelChanged)


def _grouped(events):
    """Events with each run of BalanceChanged / BookLevelChanged turned into a set: those
    carry final values once per cell or level, so their order within a run is free."""
    out: list = []
    for e in events:
        if isinstance(e, _STATE_EVENTS) and out and isinstance(out[-1], tuple) \
                and out[-1][0] is type(e):
            assert e not in out[-1][1], f"{e} twice"
            out[-1][1].add(e)
        elif isinstance(e, _STATE_EVENTS):
            out.append((type(e), {e}))
        else:
            out.append(e)
    return out


def assert_events(got, expected):
    """Exactly the expected events, in order, up to order inside a balance/level run."""
    assert _grouped(got) == _grouped(expected)
LIMIT, GTC, IOC = OrderType.LIMIT, TimeInForce.GTC, TimeInForce.IOC
EM = int(Stp.EXPIRE_MAKER)  # the symbol's default self-trade prevention, resolved
U = 10_000_000  # starting USDT
B = 1_000_000  # starting BTC


def test_resting_sell(ex):
    ev = ex.sell(2, 1000, 3, client_id="s1")
    assert_events(ev, [
        OrderAccepted(1, 2, "BTCUSDT", SELL, LIMIT, GTC, 1000, 3, 0, "s1", EM),
        BalanceChanged(2, "BTC", B - 300, 300),
        BookLevelChanged("BTCUSDT", SELL, 1000, 3),
    ])


def test_taker_across_two_levels(ex):
    ex.sell(2, 1000, 3)
    ex.sell(3, 1001, 5)
    ev = ex.buy(1, 1001, 5)
    assert_events(ev, [
        OrderAccepted(3, 1, "BTCUSDT", BUY, LIMIT, GTC, 1001, 5, 0, None, EM),
        Trade(1, "BTCUSDT", 1000, 3, 3000, BUY, 1, 3, 2, 1, 3, 6, 0, 2),
        Trade(2, "BTCUSDT", 1001, 2, 2002, BUY, 2, 3, 3, 1, 2, 4, 3, 0),
        # one BalanceChanged per touched (account, asset), with the final values
        BalanceChanged(1, "USDT", U - 5012, 0),  # 5015 reserved, 5012 spent, 3 back
        BalanceChanged(0, "USDT", 15, 0),
        BalanceChanged(1, "BTC", B + 500, 0),
        BalanceChanged(2, "BTC", B - 300, 0),
        BalanceChanged(2, "USDT", U + 2997, 0),
        BalanceChanged(3, "BTC", B - 500, 300),
        BalanceChanged(3, "USDT", U + 2000, 0),
        BookLevelChanged("BTCUSDT", SELL, 1000, 0),
        BookLevelChanged("BTCUSDT", SELL, 1001, 3),
    ])


def test_ioc_remainder(ex):
    ex.sell(3, 1001, 3)
    ev = ex.buy(1, 1001, 5, tif=IOC)
    assert_events(ev, [
        OrderAccepted(2, 1, "BTCUSDT", BUY, LIMIT, IOC, 1001, 5, 0, None, EM),
        Trade(1, "BTCUSDT", 1001, 3, 3003, BUY, 1, 2, 3, 1, 3, 6, 0, 2),
        OrderExpired(2, 1, "BTCUSDT", 2, 3, ExpireReason.IOC, None),
        BalanceChanged(1, "USDT", U - 3009, 0),
        BalanceChanged(0, "USDT", 9, 0),
        BalanceChanged(1, "BTC", B + 300, 0),
        BalanceChanged(3, "BTC", B - 300, 0),
        BalanceChanged(3, "USDT", U + 3000, 0),
        BookLevelChanged("BTCUSDT", SELL, 1001, 0),
    ])


def test_stp_expire_maker_sequence(ex):
    ex.sell(1, 1002, 2)
    ex.sell(2, 1002, 2)
    ev = ex.buy(1, 1002, 3, stp=Stp.EXPIRE_MAKER)
    reserve = 3006 + 6
    assert_events(ev, [
        OrderAccepted(3, 1, "BTCUSDT", BUY, LIMIT, GTC, 1002, 3, 0, None, EM),
        OrderExpired(1, 1, "BTCUSDT", 2, 0, ExpireReason.STP, None),
        Trade(1, "BTCUSDT", 1002, 2, 2004, BUY, 2, 3, 2, 1, 2, 4, 0, 1),
        BalanceChanged(1, "USDT", U - reserve, reserve - 2008),
        BalanceChanged(1, "BTC", B + 200, 0),
        BalanceChanged(0, "USDT", 6, 0),
        BalanceChanged(2, "BTC", B - 200, 0),
        BalanceChanged(2, "USDT", U + 2002, 0),
        BookLevelChanged("BTCUSDT", SELL, 1002, 0),
        BookLevelChanged("BTCUSDT", BUY, 1002, 1),
    ])


def test_amend_reduce_sequence(ex):
    ex.sell(2, 1000, 5)
    ev = ex.amend(2, 1, new_qty=2)
    assert_events(ev, [
        OrderAmended(1, 2, "BTCUSDT", 1000, 2, 2, True),
        BalanceChanged(2, "BTC", B - 200, 200),
        BookLevelChanged("BTCUSDT", SELL, 1000, 2),
    ])


def test_breaker_sequence(make_exchange):
    ex = make_exchange(breaker_bps=100, breaker_window_ns=10**9, breaker_cooldown_ns=5 * 10**9)
    ex.sell(2, 1000, 1)
    ex.buy(3, 1000, 1)
    ex.sell(2, 1011, 1)  # +1.1%
    ev = ex.buy(1, 1011, 1)
    assert ev[0] == OrderAccepted(4, 1, "BTCUSDT", BUY, LIMIT, GTC, 1011, 1, 0, None, EM)
    st = ev[1]
    assert isinstance(st, SymbolStatusChanged)
    assert (st.symbol, st.status, st.until_ts) == ("BTCUSDT", SymbolStatus.HALTED,
                                                   ex.ts + 5 * 10**9)
    assert_events(ev[2:], [
        OrderExpired(4, 1, "BTCUSDT", 1, 0, ExpireReason.CIRCUIT_BREAKER, None),
        BalanceChanged(1, "USDT", U, 0),
    ])


def test_kill_switch_sequence(ex):
    """Cancels symbol by symbol (each symbol's level changes right after its cancels),
    then the switch, then one BalanceChanged per touched (account, asset)."""
    ex.buy(1, 990, 2)
    ex.buy(1, 991, 2)
    ex.sell(1, 50, 1, symbol="ETHUSDT")
    ev = ex.apply(C.SetKillSwitch(1, True))
    ks = CancelReason.KILL_SWITCH
    assert_events(ev, [
        OrderCanceled(1, 1, "BTCUSDT", OrderStatus.CANCELED, 2, 0, ks, None),
        OrderCanceled(2, 1, "BTCUSDT", OrderStatus.CANCELED, 2, 0, ks, None),
        BookLevelChanged("BTCUSDT", BUY, 990, 0),
        BookLevelChanged("BTCUSDT", BUY, 991, 0),
        OrderCanceled(3, 1, "ETHUSDT", OrderStatus.CANCELED, 1, 0, ks, None),
        BookLevelChanged("ETHUSDT", SELL, 50, 0),
        KillSwitchChanged(1, True),
        BalanceChanged(1, "USDT", U, 0),
        BalanceChanged(1, "ETH", B, 0),
    ])


# --- order states through the TRANSITIONS table ------------------------------------------


def _derive_states(history):
    """Follow every order through the journal with ``next_state``; return final states.

    Raises IllegalTransition if the engine reports a move the table forbids."""
    state: dict[int, OrderStatus] = {}

    def move(oid, happening):
        state[oid] = next_state(state[oid], happening)

    for _cmd, events in history:
        for e in events:
            if isinstance(e, OrderAccepted):
                assert e.order_id not in state
                state[e.order_id] = OrderStatus.NEW
            elif isinstance(e, Trade):
                move(e.maker_order_id,
                     Happening.FILL_ALL if e.maker_left == 0 else Happening.FILL_PART)
                move(e.taker_order_id,
                     Happening.FILL_ALL if e.taker_left == 0 else Happening.FILL_PART)
            elif isinstance(e, OrderCanceled):
                move(e.order_id, Happening.CANCEL)
                assert state[e.order_id] == e.status
            elif isinstance(e, OrderExpired):
                move(e.order_id, Happening.EXPIRE)
            elif isinstance(e, OrderAmended):
                move(e.order_id, Happening.AMEND)
    return state


def test_every_order_follows_the_state_table(ex):
    ex.sell(2, 1000, 5)  # 1: partially filled, then canceled
    ex.buy(1, 1000, 2)  # 2: filled
    ex.cancel(2, 1)
    ex.sell(3, 1001, 4)  # 3: amended, then filled
    ex.amend(3, 3, new_qty=3)
    ex.buy(1, 1005, 3, tif=IOC)  # 4: filled
    ex.buy(1, 900, 1, tif=IOC)  # 5: expired untouched
    ex.sell(2, 1010, 2)  # 6: expired by STP (maker)
    ex.buy(2, 1010, 1, stp=Stp.EXPIRE_MAKER)  # 7: rests after expiring 6
    ex.sell(3, 1020, 2)  # 8: canceled untouched
    ex.cancel(3, 8)
    ex.sell(3, 1025, 3)  # 9: partially filled, open
    ex.buy(1, 1025, 1)  # 10: filled
    ex.sell(1, 1030, 1)  # 11: open
    states = _derive_states(ex.history)
    assert states == {
        1: OrderStatus.PARTIALLY_CANCELED,
        2: OrderStatus.FILLED,
        3: OrderStatus.FILLED,
        4: OrderStatus.FILLED,
        5: OrderStatus.EXPIRED,
        6: OrderStatus.EXPIRED,
        7: OrderStatus.NEW,
        8: OrderStatus.CANCELED,
        9: OrderStatus.PARTIALLY_FILLED,
        10: OrderStatus.FILLED,
        11: OrderStatus.NEW,
    }
    # exactly the non-terminal orders are still open
    assert sorted(o for o, s in states.items() if s not in TERMINAL) == (
        ex.open_ids())


def test_a_quote_amount_market_order_stopped_short_ends_expired_not_filled(make_exchange):
    """A MARKET order by quote amount that a self-trade or the breaker stops before the
    amount is spent must go NEW -> PARTIALLY_FILLED -> EXPIRED: it was not filled, and
    FILLED is terminal (an EXPIRED after it is an illegal move clients never see)."""
    ex = make_exchange(breaker_bps=500, breaker_window_ns=10**9,
                       breaker_cooldown_ns=10 * 10**9)
    ex.sell(2, 1000, 1)
    ex.sell(1, 1001, 2)  # account 1's own ask behind another account's
    ex.market(1, BUY, quote_qty=3003, stp=Stp.EXPIRE_TAKER)  # 3: stopped by STP
    ex.sell(3, 1000, 1)
    ex.market(1, BUY, quote_qty=3003, stp=Stp.EXPIRE_BOTH)  # 5: stopped, expires 2
    ex.sell(2, 1000, 1)
    ex.buy(3, 1000, 1)  # 7: a print at 1000 for the breaker's window
    ex.sell(2, 1010, 1)
    ex.sell(2, 1100, 1)  # 10% above the window: the breaker trips here
    ex.market(3, BUY, quote_qty=2200)  # 10: stopped by the breaker
    states = _derive_states(ex.history)
    assert (states[3], states[5], states[10]) == (OrderStatus.EXPIRED,) * 3
    assert states[2] == OrderStatus.EXPIRED
    reasons = {e.order_id: (e.reason, e.filled_qty) for _c, evs in ex.history
               for e in evs if isinstance(e, OrderExpired)}
    assert reasons[3] == (ExpireReason.STP, 1)
    assert reasons[5] == (ExpireReason.STP, 1)
    assert reasons[10] == (ExpireReason.CIRCUIT_BREAKER, 1)
    for account in (1, 3):
        assert ex.frozen(account, "USDT") == 0
