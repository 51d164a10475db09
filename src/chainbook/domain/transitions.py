"""Order matching state machine: ``TRANSITIONS[(state, happening)] -> state``.

The core derives an order's state from what happens to it; this table is the single
statement of which moves are legal, used by the engine's ``check()`` and by tests that
follow an order through the event journal.
"""

from __future__ import annotations

from enum import IntEnum

from chainbook.domain.enums import OrderStatus as S


class Happening(IntEnum):
    FILL_PART = 0  # a trade that leaves quantity open
    FILL_ALL = 1  # a trade that leaves nothing open
    CANCEL = 2
    EXPIRE = 3
    AMEND = 4


TERMINAL = frozenset({S.FILLED, S.CANCELED, S.PARTIALLY_CANCELED, S.REJECTED, S.EXPIRED})

TRANSITIONS: dict[tuple[S, Happening], S] = {
    (S.NEW, Happening.FILL_PART): S.PARTIALLY_FILLED,
    (S.NEW, Happening.FILL_ALL): S.FILLED,
    (S.NEW, Happening.CANCEL): S.CANCELED,
    (S.NEW, Happening.EXPIRE): S.EXPIRED,
    (S.NEW, Happening.AMEND): S.NEW,
    (S.PARTIALLY_FILLED, Happening.FILL_PART): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, Happening.FILL_ALL): S.FILLED,
    # a cancel only touches the remainder: the filled part stays, hence its own state
    (S.PARTIALLY_FILLED, Happening.CANCEL): S.PARTIALLY_CANCELED,
    # IOC/market remainder or STP after some fills: Binance reports EXPIRED as well
    (S.PARTIALLY_FILLED, Happening.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, Happening.AMEND): S.PARTIALLY_FILLED,
}


class IllegalTransition(ValueError):
    """An order was asked to move in a way the state machine forbids."""


def next_state(state: S, happening: Happening) -> S:
    """Return the state after ``happening``; raise IllegalTransition if it cannot happen."""
    try:
        return TRANSITIONS[(state, happening)]
    except KeyError:
        raise IllegalTransition(f"{state.name} cannot {happening.name}") from None
