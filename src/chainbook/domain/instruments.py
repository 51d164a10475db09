"""Symbol specifications: integer scales, filters, fees and risk settings.

Inside the core a price is an integer number of ticks, a quantity an integer number of
lots and an amount an integer number of an asset's base units (e.g. satoshi).  For a
symbol, ``quote_per_tick_lot`` is the number of quote base units paid for one lot at a
price of one tick, so the notional of ``qty`` lots at ``price`` ticks is
``price * qty * quote_per_tick_lot`` and ``qty`` lots are ``qty * lot_units`` base units.
``SymbolSpec.from_decimal`` builds a spec from human sizes and refuses sizes whose product
is not a whole number of quote units (choose a finer quote scale instead).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from chainbook.domain.enums import BreakerAction, Stp

BPS = 10_000  # basis points in one


class SymbolSpec(msgspec.Struct, frozen=True, array_like=True):
    """One tradable symbol. All numbers are integers; 0 disables an optional limit."""

    name: str
    base: str
    quote: str
    lot_units: int  # base units per lot
    quote_per_tick_lot: int  # quote units for one lot at one tick
    tick_size: str = "1"  # human price step, only for the API edge
    lot_size: str = "1"  # human quantity step, only for the API edge
    base_decimals: int = 0
    quote_decimals: int = 0
    min_qty: int = 1  # lots
    max_qty: int = 0  # lots per order, 0 = unlimited
    min_price: int = 1  # ticks
    max_price: int = 0  # ticks, 0 = unlimited
    min_notional: int = 0  # quote units per order
    max_notional: int = 0  # quote units per order, 0 = unlimited
    maker_bps: int = 0
    taker_bps: int = 0
    band_bps: int = 0  # price band around the reference price, 0 = off
    max_open_orders: int = 0  # per account on this symbol, 0 = unlimited
    breaker_bps: int = 0  # circuit breaker move threshold, 0 = off
    breaker_window_ns: int = 0
    breaker_cooldown_ns: int = 0
    breaker_action: BreakerAction = BreakerAction.HALT
    default_stp: Stp = Stp.EXPIRE_MAKER

    def validate(self) -> str | None:
        """Return why this spec is unusable, or None if it is valid."""
        if not self.name or not self.base or not self.quote or self.base == self.quote:
            return "name, base and quote must be set and base != quote"
        if self.lot_units <= 0 or self.quote_per_tick_lot <= 0:
            return "lot_units and quote_per_tick_lot must be positive"
        if self.min_qty <= 0 or self.min_price <= 0:
            return "min_qty and min_price must be positive"
        for f in ("max_qty", "max_price", "min_notional", "max_notional", "band_bps",
                  "max_open_orders", "breaker_bps", "breaker_window_ns", "breaker_cooldown_ns"):
            if getattr(self, f) < 0:
                return f"{f} must not be negative"
        if not (0 <= self.maker_bps <= BPS and 0 <= self.taker_bps <= BPS):
            return "fees must be between 0 and 10000 bps"
        if self.max_qty and self.max_qty < self.min_qty:
            return "max_qty < min_qty"
        if self.max_price and self.max_price < self.min_price:
            return "max_price < min_price"  # every order would fail PRICE_FILTER
        if self.max_notional and self.max_notional < self.min_notional:
            return "max_notional < min_notional"
        if self.breaker_bps and self.breaker_window_ns <= 0:
            return "breaker needs a positive window"
        if self.default_stp == Stp.DEFAULT:
            return "default_stp must be a concrete mode"
        return None

    @property
    def max_fee_bps(self) -> int:
        return max(self.maker_bps, self.taker_bps)

    @classmethod
    def from_decimal(
        cls,
        name: str,
        base: str,
        quote: str,
        *,
        base_decimals: int,
        quote_decimals: int,
        tick_size: str,
        lot_size: str,
        **limits: object,
    ) -> SymbolSpec:
        """Build a spec from human tick/lot sizes; raise ValueError if they do not fit."""
        tick = Decimal(tick_size)
        lot = Decimal(lot_size)
        lot_units = lot * (Decimal(10) ** base_decimals)
        qptl = tick * lot * (Decimal(10) ** quote_decimals)
        if lot_units != lot_units.to_integral_value() or lot_units <= 0:
            raise ValueError(f"lot size {lot_size} is not a whole number of {base} units")
        if qptl != qptl.to_integral_value() or qptl <= 0:
            raise ValueError(
                f"tick {tick_size} x lot {lot_size} is not a whole number of {quote} units; "
                "use more quote decimals"
            )
        return cls(
            name=name, base=base, quote=quote, lot_units=int(lot_units),
            quote_per_tick_lot=int(qptl), tick_size=tick_size, lot_size=lot_size,
            base_decimals=base_decimals, quote_decimals=quote_decimals,
            **limits,  # type: ignore[arg-type]
        )
