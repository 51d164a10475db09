"""Market data derived from the event journal: depth, trades, klines, tickers, ticks."""
