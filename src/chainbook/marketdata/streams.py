"""Market stream names (spec section 6.3): parse ``btcusdt@depth5@100ms`` and friends.

The symbol part is the lower-case symbol; the rest is case-sensitive as Binance spells
it (``aggTrade``, ``bookTicker``, ``kline_1M`` is a month and ``kline_1m`` a minute).
"""

from __future__ import annotations

from dataclasses import dataclass

from chainbook.marketdata.klines import INTERVALS

PARTIAL_LEVELS = (5, 10, 20)
ALL_TICKERS = "!ticker@arr"
ALL_MINI_TICKERS = "!miniTicker@arr"
# the same arrays under the names with Binance's update-speed suffix (python-binance's
# miniticker_socket subscribes "!miniTicker@arr@1000ms")
ALL_TICKERS_1S = ALL_TICKERS + "@1000ms"
ALL_MINI_TICKERS_1S = ALL_MINI_TICKERS + "@1000ms"


@dataclass(frozen=True, slots=True)
class StreamKey:
    """A parsed stream name.

    kind: trade, aggTrade, depth (diff), partial, kline, miniTicker, ticker, bookTicker,
    allTickers, allMiniTickers. ``symbol`` is upper-case ("" for the ``!`` arrays);
    ``arg`` is the cadence for depth ("100ms"/"1000ms"), "<levels>@<cadence>" for
    partial depth, the interval for klines, else ""."""

    kind: str
    symbol: str
    arg: str = ""


_SIMPLE = {"trade", "aggTrade", "miniTicker", "ticker", "bookTicker"}


def parse_stream(stream: str) -> StreamKey | None:
    """The key of ``stream``, or None if it is not a market stream name we serve."""
    if stream in (ALL_TICKERS, ALL_TICKERS_1S):
        return StreamKey("allTickers", "")
    if stream in (ALL_MINI_TICKERS, ALL_MINI_TICKERS_1S):
        return StreamKey("allMiniTickers", "")
    sym, sep, rest = stream.partition("@")
    if not sep or not sym or sym != sym.lower():
        return None
    symbol = sym.upper()
    if rest in _SIMPLE:
        return StreamKey(rest, symbol)
    if rest.startswith("kline_"):
        interval = rest[6:]
        return StreamKey("kline", symbol, interval) if interval in INTERVALS else None
    name, _, cadence = rest.partition("@")
    if cadence not in ("", "100ms", "1000ms"):
        return None
    cadence = cadence or "1000ms"
    if name == "depth":
        return StreamKey("depth", symbol, cadence)
    levels = name[5:]
    if name.startswith("depth") and levels.isascii() and levels.isdigit() and int(
            levels) in PARTIAL_LEVELS:
        return StreamKey("partial", symbol, f"{int(levels)}@{cadence}")
    return None


def partial_streams(sym: str) -> list[tuple[str, int, str]]:
    """``(stream, levels, cadence)`` of every partial-depth stream name of ``sym``
    (lower-case), both spellings of the 1000 ms cadence included."""
    out = []
    for n in PARTIAL_LEVELS:
        out.append((f"{sym}@depth{n}", n, "1000ms"))
        out.append((f"{sym}@depth{n}@1000ms", n, "1000ms"))
        out.append((f"{sym}@depth{n}@100ms", n, "100ms"))
    return out
