"""SymbolSpec: from_decimal scales and errors, validate() on every unusable field."""

from __future__ import annotations

import msgspec
import pytest

from chainbook.domain.enums import BreakerAction, Stp
from chainbook.domain.instruments import SymbolSpec


def _spec(**kw):
    base = dict(name="BTCUSDT", base="BTC", quote="USDT", lot_units=1000, quote_per_tick_lot=1)
    base.update(kw)
    return SymbolSpec(**base)


def test_from_decimal_scales():
    s = SymbolSpec.from_decimal("BTCUSDT", "BTC", "USDT", base_decimals=8, quote_decimals=8,
                                tick_size="0.01", lot_size="0.001", maker_bps=10,
                                taker_bps=20, min_notional=5)
    assert s.lot_units == 100_000  # 0.001 BTC in satoshi
    assert s.quote_per_tick_lot == 1_000  # 0.01 x 0.001 = 0.00001 USDT at 8 decimals
    assert (s.tick_size, s.lot_size, s.base_decimals, s.quote_decimals) == (
        "0.01", "0.001", 8, 8)
    assert (s.maker_bps, s.taker_bps, s.min_notional) == (10, 20, 5)
    assert s.validate() is None
    # 1.5 BTC at 65,000.00 USDT: qty 1500 lots, price 6_500_000 ticks
    assert 6_500_000 * 1500 * s.quote_per_tick_lot == 97_500 * 10**8


def test_from_decimal_integer_sizes():
    s = SymbolSpec.from_decimal("ETHBTC", "ETH", "BTC", base_decimals=0, quote_decimals=0,
                                tick_size="1", lot_size="1")
    assert (s.lot_units, s.quote_per_tick_lot) == (1, 1)


@pytest.mark.parametrize("tick,lot,bd,qd,match", [
    ("0.01", "0.000000001", 8, 8, "lot size"),  # finer than a satoshi
    ("0.01", "0", 8, 8, "lot size"),
    ("0.01", "-0.001", 8, 8, "lot size"),
    ("0.01", "0.00001", 8, 6, "quote decimals"),  # 0.0000001 USDT is not a unit
    ("0", "0.001", 8, 8, "tick"),
    ("-0.01", "0.001", 8, 8, "tick"),
])
def test_from_decimal_refuses_sizes_that_do_not_fit(tick, lot, bd, qd, match):
    with pytest.raises(ValueError, match=match):
        SymbolSpec.from_decimal("BTCUSDT", "BTC", "USDT", base_decimals=bd, quote_decimals=qd,
                                tick_size=tick, lot_size=lot)


def test_from_decimal_refuses_unknown_limits():
    with pytest.raises(TypeError):
        SymbolSpec.from_decimal("BTCUSDT", "BTC", "USDT", base_decimals=8, quote_decimals=8,
                                tick_size="0.01", lot_size="0.001", not_a_field=1)


@pytest.mark.parametrize("fields", [
    dict(name=""), dict(base=""), dict(quote=""), dict(quote="BTC"),
    dict(lot_units=0), dict(quote_per_tick_lot=0), dict(lot_units=-1),
    dict(min_qty=0), dict(min_price=0),
    dict(max_qty=-1), dict(max_price=-1), dict(min_notional=-1), dict(max_notional=-1),
    dict(band_bps=-1), dict(max_open_orders=-1), dict(breaker_bps=-1),
    dict(breaker_window_ns=-1), dict(breaker_cooldown_ns=-1),
    dict(maker_bps=-1), dict(taker_bps=10_001),
    dict(min_qty=5, max_qty=4), dict(min_price=100, max_price=1),
    dict(min_notional=100, max_notional=99),
    dict(breaker_bps=100),  # no window
    dict(default_stp=Stp.DEFAULT),
], ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
def test_validate_names_the_problem(fields):
    assert isinstance(_spec(**fields).validate(), str)


def test_valid_spec_and_max_fee():
    s = _spec(maker_bps=30, taker_bps=5, max_qty=5, min_qty=5, breaker_bps=100,
              breaker_window_ns=1, breaker_action=BreakerAction.CANCEL_ONLY)
    assert s.validate() is None
    assert s.max_fee_bps == 30


def test_spec_roundtrips_through_msgpack():
    s = _spec(band_bps=50, default_stp=Stp.EXPIRE_BOTH)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(s), type=SymbolSpec) == s
