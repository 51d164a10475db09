"""The order state table: each edge, terminal states, and the commands/events codecs."""

from __future__ import annotations

import msgspec
import pytest

from chainbook.domain import commands as C
from chainbook.domain import events as E
from chainbook.domain.enums import OrderStatus as S
from chainbook.domain.enums import Reject, Side, Stp
from chainbook.domain.instruments import SymbolSpec
from chainbook.domain.transitions import (
    TERMINAL,
    TRANSITIONS,
    Happening,
    IllegalTransition,
    next_state,
)

H = Happening


def test_the_documented_edges():
    assert next_state(S.NEW, H.FILL_PART) == S.PARTIALLY_FILLED
    assert next_state(S.NEW, H.FILL_ALL) == S.FILLED
    assert next_state(S.NEW, H.CANCEL) == S.CANCELED
    assert next_state(S.NEW, H.EXPIRE) == S.EXPIRED
    assert next_state(S.NEW, H.AMEND) == S.NEW
    assert next_state(S.PARTIALLY_FILLED, H.FILL_PART) == S.PARTIALLY_FILLED
    assert next_state(S.PARTIALLY_FILLED, H.FILL_ALL) == S.FILLED
    assert next_state(S.PARTIALLY_FILLED, H.CANCEL) == S.PARTIALLY_CANCELED
    assert next_state(S.PARTIALLY_FILLED, H.EXPIRE) == S.EXPIRED
    assert next_state(S.PARTIALLY_FILLED, H.AMEND) == S.PARTIALLY_FILLED


@pytest.mark.parametrize("state", sorted(TERMINAL))
@pytest.mark.parametrize("happening", list(Happening))
def test_terminal_states_are_final(state, happening):
    with pytest.raises(IllegalTransition, match=state.name):
        next_state(state, happening)


def test_table_only_leaves_open_states():
    assert {s for s, _ in TRANSITIONS} == {S.NEW, S.PARTIALLY_FILLED}
    assert set(S) - TERMINAL == {S.NEW, S.PARTIALLY_FILLED}
    assert S.REJECTED not in set(TRANSITIONS.values())


def test_commands_roundtrip_through_the_union():
    cmds = [
        C.PlaceOrder(1, "BTCUSDT", Side.BUY, 0, 5, 100, 0, "c", None, Stp.EXPIRE_BOTH),
        C.CancelOrder(1, "BTCUSDT", 7, None),
        C.CancelAll(1, "BTCUSDT"),
        C.AmendOrder(1, "BTCUSDT", None, "c", 101, 6),
        C.Deposit(1, "BTC", 5, "tx:0"),
        C.WithdrawHold(1, "BTC", 5, "w"),
        C.WithdrawComplete("w"),
        C.WithdrawRefund("w"),
        C.SetSymbolStatus("BTCUSDT", 2),
        C.SetKillSwitch(1, True),
        C.AddSymbol(SymbolSpec(name="BTCUSDT", base="BTC", quote="USDT", lot_units=100,
                               quote_per_tick_lot=1, band_bps=50)),
    ]
    blob = msgspec.msgpack.encode(cmds)
    back = msgspec.msgpack.decode(blob, type=list[C.AnyCommand])
    assert back == cmds and [type(c) for c in back] == [type(c) for c in cmds]


def test_events_roundtrip_through_the_union():
    evs = [
        E.OrderRejected(1, Reject.WOULD_TAKE, None, 1),
        E.Trade(1, "BTCUSDT", 100, 2, 200, 0, 1, 2, 3, 4, 0, 0, 0, 0),
        E.BookLevelChanged("BTCUSDT", 1, 100, 0),
        E.KillSwitchChanged(4, False),
    ]
    back = msgspec.msgpack.decode(msgspec.msgpack.encode(evs), type=list[E.AnyEvent])
    assert back == evs


def test_commands_and_events_are_immutable():
    with pytest.raises(AttributeError):
        C.CancelAll(1, "X").account = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        E.KillSwitchChanged(1, True).active = False  # type: ignore[misc]
