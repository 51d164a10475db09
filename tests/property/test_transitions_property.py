"""The order state table against a tiny model, on every sequence of happenings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainbook.domain.enums import OrderStatus as S
from chainbook.domain.transitions import TERMINAL, Happening, IllegalTransition, next_state

H = Happening


def _model(state: S, filled: bool, h: Happening) -> S:
    """What DESIGN.md section 2 says happens next (for an open order)."""
    if h == H.FILL_PART:
        return S.PARTIALLY_FILLED
    if h == H.FILL_ALL:
        return S.FILLED
    if h == H.CANCEL:
        return S.PARTIALLY_CANCELED if filled else S.CANCELED
    if h == H.EXPIRE:
        return S.EXPIRED
    return state  # AMEND changes neither fills nor status


@settings(max_examples=500, derandomize=True, database=None)
@given(st.lists(st.sampled_from(Happening), max_size=12))
def test_any_sequence_follows_the_model(happenings):
    state, filled = S.NEW, False
    for h in happenings:
        if state in TERMINAL:
            with pytest.raises(IllegalTransition):
                next_state(state, h)
            return
        new = next_state(state, h)
        assert new == _model(state, filled, h)
        filled = filled or h in (H.FILL_PART, H.FILL_ALL)
        # PARTIALLY_* states exactly when something filled and something did not
        assert (new in (S.PARTIALLY_FILLED, S.PARTIALLY_CANCELED)) == (
            filled and new not in (S.FILLED, S.EXPIRED))
        state = new
