"""Binance JSON shapes of market data (spec sections 4.3-4.7 and 6.3), from integers.

Prices, quantities and volumes become decimal strings through ``chainbook.domain.units``;
ids, counts and times (ms) stay JSON integers. Pure functions, no state.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from chainbook.domain.instruments import SymbolSpec
from chainbook.domain.units import PLACES, fmt, price_str, qty_str, quote_str
from chainbook.marketdata.klines import Kline
from chainbook.marketdata.tickers import WINDOW, Stats
from chainbook.marketdata.trades import AggRec, TradeRec

Json = dict[str, Any]
Levels = list[tuple[int, int]]
Top = tuple[int, int, int, int]  # bid price, bid qty, ask price, ask qty

_PCT = Decimal("0.001")


def levels(spec: SymbolSpec, rows: Levels) -> list[list[str]]:
    """``[[price, qty], ...]`` as strings."""
    return [[price_str(spec, p), qty_str(spec, q)] for p, q in rows]


def depth_snapshot(spec: SymbolSpec, last_id: int, bids: Levels, asks: Levels) -> Json:
    """REST depth and partial-depth stream payload."""
    return {"lastUpdateId": last_id, "bids": levels(spec, bids), "asks": levels(spec, asks)}


def depth_diff(spec: SymbolSpec, now_ms: int, first: int, last: int, bids: Levels,
               asks: Levels) -> Json:
    """A ``depthUpdate`` diff event covering update ids ``first..last`` (no ``pu``)."""
    return {"e": "depthUpdate", "E": now_ms, "s": spec.name, "U": first, "u": last,
            "b": levels(spec, bids), "a": levels(spec, asks)}


def trade(spec: SymbolSpec, t: TradeRec) -> Json:
    """REST ``/api/v3/trades`` row."""
    return {"id": t.id, "price": price_str(spec, t.price), "qty": qty_str(spec, t.qty),
            "quoteQty": quote_str(spec, t.quote), "time": t.time,
            "isBuyerMaker": t.buyer_maker, "isBestMatch": True}


def trade_event(spec: SymbolSpec, t: TradeRec, now_ms: int) -> Json:
    """``<s>@trade`` payload."""
    return {"e": "trade", "E": now_ms, "s": spec.name, "t": t.id,
            "p": price_str(spec, t.price), "q": qty_str(spec, t.qty), "T": t.time,
            "m": t.buyer_maker, "M": True}


def agg_trade(spec: SymbolSpec, a: AggRec) -> Json:
    """REST ``/api/v3/aggTrades`` row."""
    return {"a": a.id, "p": price_str(spec, a.price), "q": qty_str(spec, a.qty),
            "f": a.first, "l": a.last, "T": a.time, "m": a.buyer_maker, "M": True}


def agg_trade_event(spec: SymbolSpec, a: AggRec, now_ms: int) -> Json:
    """``<s>@aggTrade`` payload."""
    return {"e": "aggTrade", "E": now_ms, "s": spec.name, **agg_trade(spec, a)}


def kline_row(spec: SymbolSpec, k: Kline) -> list[Any]:
    """REST ``/api/v3/klines`` row (12 items)."""
    return [k.open_ms, price_str(spec, k.o), price_str(spec, k.h), price_str(spec, k.l),
            price_str(spec, k.c), qty_str(spec, k.v), k.close_ms, quote_str(spec, k.q), k.n,
            qty_str(spec, k.tv), quote_str(spec, k.tq), "0"]


def kline_event(spec: SymbolSpec, interval: str, k: Kline, now_ms: int,
                closed: bool) -> Json:
    """``<s>@kline_<interval>`` payload; ``closed`` sets ``x``."""
    return {"e": "kline", "E": now_ms, "s": spec.name, "k": {
        "t": k.open_ms, "T": k.close_ms, "s": spec.name, "i": interval, "f": k.first,
        "L": k.last, "o": price_str(spec, k.o), "c": price_str(spec, k.c),
        "h": price_str(spec, k.h), "l": price_str(spec, k.l), "v": qty_str(spec, k.v),
        "n": k.n, "x": closed, "q": quote_str(spec, k.q), "V": qty_str(spec, k.tv),
        "Q": quote_str(spec, k.tq), "B": "0"}}


def _places(spec: SymbolSpec) -> int:
    exp = Decimal(spec.tick_size).as_tuple().exponent
    return max(PLACES, -exp if isinstance(exp, int) and exp < 0 else 0)


def weighted_avg(spec: SymbolSpec, volume: int, quote_volume: int) -> str:
    """Quote volume / base volume as a price string (0 with no volume), rounded to the
    printed decimals."""
    if not volume:
        return price_str(spec, 0)
    ticks = Decimal(quote_volume) / Decimal(volume * spec.quote_per_tick_lot)
    value = ticks * Decimal(spec.tick_size)
    return fmt(value.quantize(Decimal(1).scaleb(-_places(spec))))


def change_percent(open_: int, last: int) -> str:
    """``(last - open) / open`` in percent with 3 decimals, as Binance prints it."""
    if not open_:
        return "0.000"
    return str((Decimal(last - open_) * 100 / Decimal(open_)).quantize(_PCT))


def ticker(spec: SymbolSpec, s: Stats, top: Top, now_ms: int) -> Json:
    """REST ``/api/v3/ticker/24hr`` object (all fields)."""
    p = price_str
    return {
        "symbol": spec.name, "priceChange": p(spec, s.last - s.open),
        "priceChangePercent": change_percent(s.open, s.last),
        "weightedAvgPrice": weighted_avg(spec, s.volume, s.quote_volume),
        "prevClosePrice": p(spec, s.prev_close), "lastPrice": p(spec, s.last),
        "lastQty": qty_str(spec, s.last_qty), "bidPrice": p(spec, top[0]),
        "bidQty": qty_str(spec, top[1]), "askPrice": p(spec, top[2]),
        "askQty": qty_str(spec, top[3]), "openPrice": p(spec, s.open),
        "highPrice": p(spec, s.high), "lowPrice": p(spec, s.low),
        "volume": qty_str(spec, s.volume), "quoteVolume": quote_str(spec, s.quote_volume),
        "openTime": now_ms - WINDOW, "closeTime": now_ms, "firstId": s.first_id,
        "lastId": s.last_id, "count": s.count,
    }


_TICKER_KEYS = (
    ("p", "priceChange"), ("P", "priceChangePercent"), ("w", "weightedAvgPrice"),
    ("x", "prevClosePrice"), ("c", "lastPrice"), ("Q", "lastQty"), ("b", "bidPrice"),
    ("B", "bidQty"), ("a", "askPrice"), ("A", "askQty"), ("o", "openPrice"),
    ("h", "highPrice"), ("l", "lowPrice"), ("v", "volume"), ("q", "quoteVolume"),
    ("O", "openTime"), ("C", "closeTime"), ("F", "firstId"), ("L", "lastId"), ("n", "count"),
)
_MINI_KEYS = (("c", "lastPrice"), ("o", "openPrice"), ("h", "highPrice"),
              ("l", "lowPrice"), ("v", "volume"), ("q", "quoteVolume"))


def ticker_event(t: Json, now_ms: int) -> Json:
    """``<s>@ticker`` payload from a REST ticker object."""
    return {"e": "24hrTicker", "E": now_ms, "s": t["symbol"],
            **{short: t[long] for short, long in _TICKER_KEYS}}


def mini_ticker_event(t: Json, now_ms: int) -> Json:
    """``<s>@miniTicker`` payload from a REST ticker object."""
    return {"e": "24hrMiniTicker", "E": now_ms, "s": t["symbol"],
            **{short: t[long] for short, long in _MINI_KEYS}}


def book_ticker(spec: SymbolSpec, top: Top) -> Json:
    """REST ``/api/v3/ticker/bookTicker`` object."""
    return {"symbol": spec.name, "bidPrice": price_str(spec, top[0]),
            "bidQty": qty_str(spec, top[1]), "askPrice": price_str(spec, top[2]),
            "askQty": qty_str(spec, top[3])}


def book_ticker_event(spec: SymbolSpec, top: Top, update_id: int) -> Json:
    """``<s>@bookTicker`` payload; ``u`` is the depth update id."""
    return {"u": update_id, "s": spec.name, "b": price_str(spec, top[0]),
            "B": qty_str(spec, top[1]), "a": price_str(spec, top[2]),
            "A": qty_str(spec, top[3])}
