"""Market data derived from the event journal: depth, trades, klines, tickers, ticks."""

from chainbook.marketdata.market import MarketData

__all__ = ["MarketData"]
