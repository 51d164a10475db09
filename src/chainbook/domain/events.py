"""Events: the immutable outputs of the core, in the order ``apply`` produced them.

One command yields a list of events; the journal frames the list with the command's
``seq`` and ``ts`` (events do not repeat them).  Balance and book-level events carry the
*new* absolute values, once per touched (account, asset) or (side, price) at the end of
the command (a kill switch, which spans symbols, emits each symbol's level changes right
after that symbol's cancels), so a consumer never has to sum deltas to know the state.
"""

from __future__ import annotations

import msgspec

from chainbook.domain.enums import (
    CancelReason,
    ExpireReason,
    OrderStatus,
    OrderType,
    Reject,
    Side,
    SymbolStatus,
    TimeInForce,
)
from chainbook.domain.instruments import SymbolSpec


class Event(msgspec.Struct, frozen=True, array_like=True, tag_field="k", gc=False):
    """Base of all events."""


class OrderAccepted(Event, tag=1, frozen=True):
    order_id: int
    account: int
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce
    price: int  # 0 for MARKET
    qty: int  # lots; for a MARKET order by quote amount, the lots it buys/sells now
    quote_qty: int  # quote units for a MARKET order by quote amount, else 0
    client_id: str | None
    # the self-trade prevention mode in force (an ``Stp`` value, DEFAULT resolved to the
    # symbol's); -1 in journals written before it was recorded (the command has it)
    stp: int = -1


class OrderRejected(Event, tag=2, frozen=True):
    account: int  # -1 for commands that have no account
    reason: Reject
    client_id: str | None
    command_kind: int  # the tag of the rejected command


class Trade(Event, tag=3, frozen=True):
    """A match. Final: nothing undoes it. ``*_left`` is what each order still has open."""

    trade_id: int
    symbol: str
    price: int
    qty: int
    quote_amount: int  # price * qty * quote_per_tick_lot
    taker_side: int  # Side (kept a plain int on the hot path)
    maker_order_id: int
    taker_order_id: int
    maker_account: int
    taker_account: int
    maker_fee: int  # quote units
    taker_fee: int  # quote units
    maker_left: int
    taker_left: int


class OrderCanceled(Event, tag=4, frozen=True):
    order_id: int
    account: int
    symbol: str
    status: OrderStatus  # CANCELED or PARTIALLY_CANCELED
    canceled_qty: int
    filled_qty: int
    reason: CancelReason
    client_id: str | None


class OrderExpired(Event, tag=5, frozen=True):
    order_id: int
    account: int
    symbol: str
    expired_qty: int
    filled_qty: int
    reason: ExpireReason
    client_id: str | None


class OrderAmended(Event, tag=6, frozen=True):
    order_id: int
    account: int
    symbol: str
    price: int
    qty: int  # new total quantity
    left: int  # new open quantity
    kept_priority: bool


class BalanceChanged(Event, tag=7, frozen=True):
    account: int
    asset: str
    available: int
    frozen: int


class BookLevelChanged(Event, tag=8, frozen=True):
    symbol: str
    side: int  # Side
    price: int
    qty: int  # total open lots at this level now, 0 = level gone


class SymbolAdded(Event, tag=9, frozen=True):
    spec: SymbolSpec


class SymbolStatusChanged(Event, tag=10, frozen=True):
    symbol: str
    status: SymbolStatus
    reason: str  # "admin", "circuit_breaker: ...", "cooldown_over"
    until_ts: int  # end of the cooldown for a breaker, else 0


class Deposited(Event, tag=11, frozen=True):
    account: int
    asset: str
    amount: int
    external_id: str


class WithdrawalHeld(Event, tag=12, frozen=True):
    account: int
    asset: str
    amount: int
    external_id: str


class WithdrawalCompleted(Event, tag=13, frozen=True):
    account: int
    asset: str
    amount: int
    external_id: str


class WithdrawalRefunded(Event, tag=14, frozen=True):
    account: int
    asset: str
    amount: int
    external_id: str


class KillSwitchChanged(Event, tag=15, frozen=True):
    account: int
    active: bool


AnyEvent = (
    OrderAccepted | OrderRejected | Trade | OrderCanceled | OrderExpired | OrderAmended
    | BalanceChanged | BookLevelChanged | SymbolAdded | SymbolStatusChanged | Deposited
    | WithdrawalHeld | WithdrawalCompleted | WithdrawalRefunded | KillSwitchChanged
)
