"""Units at the edge: decimal strings <-> integer ticks, lots and base units.

The core counts integers only (docs/core.md); the API speaks Binance decimal strings.
This module is the one place that converts between them, for the gateway, market data
and the CLI.  Parsing is strict: plain decimal notation (no sign, exponent, NaN or
whitespace), and a value that is not a whole number of steps is refused rather than
rounded (Binance rejects it with a filter failure; clients round before sending).
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation

from chainbook.domain.instruments import SymbolSpec

PLACES = 8  # Binance prints 8 decimals; more when an asset needs them
MAX_DIGITS = 20  # before and after the point: Binance's ^([0-9]{1,20})(\.[0-9]{1,20})?$
_MAX_LEN = 2 * MAX_DIGITS + 2  # with the point and a leading "+"
# Exact division: a quotient that needs more digits than this (or never ends) raises
# Inexact instead of being rounded.  Values and steps have at most 40 digits each, so a
# whole-number quotient always fits.
_EXACT = Context(prec=120, traps=[Inexact, InvalidOperation])


class UnitError(ValueError):
    """A decimal string that cannot be converted; ``kind`` says why.

    kind: "format" (not a plain decimal), "step" (not a whole number of steps),
    "range" (zero, negative or too large)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def fmt(value: Decimal, places: int = PLACES) -> str:
    """Format ``value`` with at least ``places`` decimals (more if it has them)."""
    exp = value.as_tuple().exponent
    need = max(places, -exp if isinstance(exp, int) and exp < 0 else 0)
    return f"{value:.{need}f}"


def amount_str(units: int, decimals: int) -> str:
    """``units`` base units of an asset with ``decimals`` decimals, as a string."""
    return fmt(Decimal(units).scaleb(-decimals), max(PLACES, decimals))


def price_str(spec: SymbolSpec, ticks: int) -> str:
    """Price of ``ticks`` ticks on ``spec`` as a decimal string."""
    return fmt(Decimal(ticks) * Decimal(spec.tick_size))


def qty_str(spec: SymbolSpec, lots: int) -> str:
    """Quantity of ``lots`` lots on ``spec`` as a decimal string (base asset)."""
    return fmt(Decimal(lots) * Decimal(spec.lot_size))


def quote_str(spec: SymbolSpec, units: int) -> str:
    """An amount of the quote asset in base units (notional, fee) as a string."""
    return amount_str(units, spec.quote_decimals)


def base_str(spec: SymbolSpec, units: int) -> str:
    """An amount of the base asset in base units as a string."""
    return amount_str(units, spec.base_decimals)


def parse_decimal(text: str) -> Decimal:
    """Parse a plain non-negative decimal string; raise UnitError("format") otherwise."""
    if not isinstance(text, str) or not text or len(text) > _MAX_LEN:
        raise UnitError("format", f"not a decimal number: {text!r}")
    # Binance's number format, ^([0-9]{1,20})(\.[0-9]{1,20})?$: no sign, digits on
    # both sides of a point ("1." and ".5" are refused, as Binance refuses them)
    whole, point, frac = text.partition(".")
    digits = whole + frac
    if (not whole or (point and not frac) or not digits.isascii() or not digits.isdigit()
            or len(whole) > MAX_DIGITS or len(frac) > MAX_DIGITS):
        raise UnitError("format", f"not a decimal number: {text!r}")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - excluded by the character check
        raise UnitError("format", f"not a decimal number: {text!r}") from None


def _steps(value: Decimal, step: Decimal, what: str) -> int:
    try:
        n: Decimal | None = _EXACT.divide(value, step)  # never rounded
    except Inexact:  # a near-multiple: its quotient does not end within the precision
        n = None
    if n is None or n != n.to_integral_value():
        raise UnitError("step", f"{what} {value} is not a multiple of {step}")
    if n <= 0:
        raise UnitError("range", f"{what} must be positive")
    if n >= 2**62:
        raise UnitError("range", f"{what} {value} is too large")
    return int(n)


def price_ticks(spec: SymbolSpec, text: str) -> int:
    """Price string -> ticks; UnitError unless a positive multiple of the tick size."""
    return _steps(parse_decimal(text), Decimal(spec.tick_size), "price")


def qty_lots(spec: SymbolSpec, text: str) -> int:
    """Quantity string -> lots; UnitError unless a positive multiple of the lot size."""
    return _steps(parse_decimal(text), Decimal(spec.lot_size), "quantity")


def amount_units(text: str, decimals: int) -> int:
    """Asset amount string -> base units; UnitError if finer than the asset allows."""
    return _steps(parse_decimal(text), Decimal(1).scaleb(-decimals), "amount")


def quote_units(spec: SymbolSpec, text: str) -> int:
    """Quote amount string (quoteOrderQty) -> quote base units."""
    return amount_units(text, spec.quote_decimals)
