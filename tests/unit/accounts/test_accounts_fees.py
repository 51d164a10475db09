"""Fee arithmetic: notional, rounding down, buy reserve, max_affordable (brute-forced)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chainbook.accounts.fees import buy_reserve, fee, max_affordable, notional

FEE_RATES = (0, 1, 7, 10, 25, 100, 3333, 9999, 10_000)


def test_notional():
    assert notional(1000, 7, 3) == 21_000
    assert notional(1, 1, 1) == 1


def test_fee_rounds_down():
    assert fee(10_000, 10) == 10
    assert fee(9_999, 10) == 9  # 9.999
    assert fee(4_999, 20) == 9  # 9.998
    assert fee(499, 20) == 0
    assert fee(123, 0) == 0
    assert fee(123, 10_000) == 123


def test_buy_reserve_is_notional_plus_fee():
    assert buy_reserve(1000, 10, 1, 20) == 10_020
    assert buy_reserve(999, 3, 7, 15) == 999 * 3 * 7 + fee(999 * 3 * 7, 15)


def test_reserve_covers_any_split_of_fills():
    """sum(floor(x_i)) <= floor(sum x_i): fees on parts never exceed the reserved fee."""
    total = 37
    for bps in FEE_RATES:
        reserved_fee = fee(notional(1234, total, 1), bps)
        for first in range(1, total):
            parts = [first, total - first]
            assert sum(fee(notional(1234, q, 1), bps) for q in parts) <= reserved_fee


def _brute(budget, price, qptl, bps):
    q = 0
    while True:
        n = notional(price, q + 1, qptl)
        if n + fee(n, bps) > budget:
            return q
        q += 1


def test_max_affordable_exact_on_a_small_range():
    for bps in FEE_RATES:
        for price in range(1, 25):
            for qptl in (1, 2, 3):
                for budget in range(0, 400):
                    assert max_affordable(budget, price, qptl, bps) == _brute(
                        budget, price, qptl, bps
                    ), (budget, price, qptl, bps)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.integers(0, 10**15), st.integers(1, 10**6), st.integers(1, 1000),
       st.integers(0, 10_000))
def test_max_affordable_is_the_largest_affordable(budget, price, qptl, bps):
    q = max_affordable(budget, price, qptl, bps)
    n = notional(price, q, qptl)
    assert n + fee(n, bps) <= budget
    n1 = notional(price, q + 1, qptl)
    assert n1 + fee(n1, bps) > budget
