"""The market-dependent price rules the engine and order/test share (symbol_state.py)."""

from __future__ import annotations

from chainbook.engine.symbol_state import band_reference, outside_band, would_take


def test_band_reference_is_last_price_else_mid_else_none() -> None:
    assert band_reference(1_000, 900, 1_100) == 1_000
    assert band_reference(0, 900, 1_101) == 1_000  # mid, rounded down
    assert band_reference(0, 900, 0) == 0 and band_reference(0, 0, 1_100) == 0


def test_band_edges() -> None:
    # 10% band around 1,000: 900 and 1,100 are inside, one tick beyond is not
    assert not outside_band(1_100, 1_000, 1_000) and not outside_band(900, 1_000, 1_000)
    assert outside_band(1_101, 1_000, 1_000) and outside_band(899, 1_000, 1_000)
    assert not outside_band(10**9, 0, 1_000)  # no reference: no band
    assert not outside_band(10**9, 1_000, 0)  # band_bps 0: no band


def test_would_take() -> None:
    assert would_take(0, 100, 100) and not would_take(0, 99, 100)  # buy against the ask
    assert would_take(1, 100, 100) and not would_take(1, 101, 100)  # sell against the bid
    assert not would_take(0, 10**9, 0) and not would_take(1, 1, 0)  # empty side
