"""Enumerations shared by commands, events and the core.

All are ``IntEnum`` so they encode as small integers in the log and compare fast in the
matching loop.  Reject reasons are grouped by the stage that raises them (accounts 1xx,
matching 2xx, admin/symbol 3xx, balance commands 4xx); the gateway maps them to Binance
error codes, the core never knows about HTTP.
"""

from __future__ import annotations

from enum import IntEnum


class Side(IntEnum):
    BUY = 0
    SELL = 1


class OrderType(IntEnum):
    LIMIT = 0
    MARKET = 1
    LIMIT_MAKER = 2  # post-only: rejected if it would take


class TimeInForce(IntEnum):
    GTC = 0
    IOC = 1
    FOK = 2


class Stp(IntEnum):
    """Self-trade prevention mode (Binance semantics; the taker's mode decides)."""

    NONE = 0
    EXPIRE_TAKER = 1
    EXPIRE_MAKER = 2
    EXPIRE_BOTH = 3
    DEFAULT = 4  # use the symbol's default mode


class OrderStatus(IntEnum):
    """Matching state of an order (DESIGN.md section 2)."""

    NEW = 0
    PARTIALLY_FILLED = 1
    FILLED = 2
    CANCELED = 3
    PARTIALLY_CANCELED = 4
    REJECTED = 5
    EXPIRED = 6


class SymbolStatus(IntEnum):
    TRADING = 0
    CANCEL_ONLY = 1  # cancels accepted, new orders and amends rejected
    HALTED = 2  # nothing but admin commands; the book is frozen as it is


class ExpireReason(IntEnum):
    IOC = 0  # unfilled remainder of an IOC or market order
    FOK = 1  # FOK that could not fill completely
    STP = 2  # self-trade prevention
    CIRCUIT_BREAKER = 4  # matching stopped by the circuit breaker


class CancelReason(IntEnum):
    USER = 0
    CANCEL_ALL = 1
    KILL_SWITCH = 2


class Reject(IntEnum):
    """Why a command was rejected. A rejected command changes nothing."""

    # accounts stage
    INSUFFICIENT_BALANCE = 100
    ACCOUNT_BLOCKED = 101  # kill switch active
    TOO_MANY_OPEN_ORDERS = 102
    # matching / order validation stage
    UNKNOWN_SYMBOL = 200
    SYMBOL_NOT_TRADING = 201
    INVALID_QUANTITY = 202
    INVALID_PRICE = 203
    QTY_OUT_OF_RANGE = 204
    NOTIONAL_OUT_OF_RANGE = 205
    PRICE_OUT_OF_BAND = 206
    WOULD_TAKE = 207  # LIMIT_MAKER that would cross
    UNKNOWN_ORDER = 208
    DUPLICATE_CLIENT_ORDER_ID = 209
    INVALID_ORDER_PARAMS = 210  # e.g. MARKET with FOK, LIMIT without price
    AMEND_INVALID = 211
    # admin / symbol stage
    SYMBOL_EXISTS = 300
    INVALID_SYMBOL_SPEC = 301
    # balance commands
    DUPLICATE_EXTERNAL_ID = 400
    UNKNOWN_WITHDRAWAL = 401
    WITHDRAWAL_NOT_PENDING = 402
    INVALID_AMOUNT = 403


class BreakerAction(IntEnum):
    """What the circuit breaker does to a symbol when it trips."""

    HALT = 2  # same value as SymbolStatus.HALTED
    CANCEL_ONLY = 1  # same value as SymbolStatus.CANCEL_ONLY
