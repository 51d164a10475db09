"""Decimal strings to integer steps: exact, never rounded; Binance's number format."""

from __future__ import annotations

import pytest

from chainbook.domain.instruments import SymbolSpec
from chainbook.domain.units import UnitError, amount_units, price_ticks, qty_lots

SPEC = SymbolSpec.from_decimal("BTCUSDT", "BTC", "USDT", base_decimals=8, quote_decimals=8,
                               tick_size="0.01", lot_size="0.00001")


def test_whole_steps_convert() -> None:
    assert price_ticks(SPEC, "49000.01") == 4_900_001
    assert price_ticks(SPEC, "49000.010000000000000000") == 4_900_001  # 18 decimals
    assert qty_lots(SPEC, "0.001") == 100
    assert amount_units("1.5", 8) == 150_000_000
    assert amount_units("0.000000000000000001", 18) == 1


@pytest.mark.parametrize("text", [
    "49000.00999999999999999999",  # 20 decimals, 1e-20 under a tick: not rounded up
    "49000.00000000000000000001",  # 1e-20 over a tick: not rounded down
    "49000.005",
])
def test_a_near_multiple_is_refused_not_rounded(text: str) -> None:
    with pytest.raises(UnitError) as err:
        price_ticks(SPEC, text)
    assert err.value.kind == "step"


def test_lots_and_amounts_are_exact_too() -> None:
    # the last: a 30-digit quotient, which 28-digit division rounded to 10^15 lots
    for text in ("0.00099999999999999999", "0.00100000000000000001",
                 "9999999999.99999999999999999999"):
        with pytest.raises(UnitError) as err:
            qty_lots(SPEC, text)
        assert err.value.kind == "step"
    with pytest.raises(UnitError) as err:
        amount_units("1.00000000000000000001", 8)
    assert err.value.kind == "step"


@pytest.mark.parametrize("text", [
    "49000.009999999999999999999999999",  # more than 20 decimals
    "1" * 21,  # more than 20 integer digits
    "", ".", "1e5", "-1", "1,5", "\u0661", " 1", "nan",
    "1.", ".5", "+1", "1.2.3",  # Binance: ^([0-9]{1,20})(\.[0-9]{1,20})?$
])
def test_beyond_binance_number_format_is_a_format_error(text: str) -> None:
    with pytest.raises(UnitError) as err:
        price_ticks(SPEC, text)
    assert err.value.kind == "format"
