"""Binance-compatible REST and WebSocket gateway (docs/serve.md)."""
