"""Money arithmetic on integers: notional, fees, what an order must reserve.

Fees are charged in the quote asset on both sides (the buyer pays notional + fee, the
seller receives notional - fee) and rounded *down* per trade.  Rounding down is what
makes the reserve safe: for fills q1..qk of one order, sum(floor(x_i)) <= floor(sum x_i),
so the fee frozen on entry, computed on the whole order at its limit price with the
higher of the maker and taker rates, always covers the fees actually charged.
"""

from __future__ import annotations

from chainbook.domain.instruments import BPS


def notional(price: int, qty: int, quote_per_tick_lot: int) -> int:
    """Quote units for ``qty`` lots at ``price`` ticks."""
    return price * qty * quote_per_tick_lot


def fee(amount: int, bps: int) -> int:
    """Fee on ``amount`` quote units at ``bps`` basis points, rounded down."""
    return amount * bps // BPS


def buy_reserve(price: int, qty: int, quote_per_tick_lot: int, fee_bps: int) -> int:
    """Quote a LIMIT buy of ``qty`` lots at ``price`` must freeze: notional + max fee."""
    n = price * qty * quote_per_tick_lot
    return n + n * fee_bps // BPS


def max_affordable(budget: int, price: int, quote_per_tick_lot: int, fee_bps: int) -> int:
    """Largest q with q*price*qptl + fee(q*price*qptl) <= budget (0 if none). O(1)."""
    unit = price * quote_per_tick_lot
    q = budget * BPS // (unit * (BPS + fee_bps))
    # flooring the fee can make one more lot affordable, never two
    n = (q + 1) * unit
    if n + n * fee_bps // BPS <= budget:
        q += 1
    return q
