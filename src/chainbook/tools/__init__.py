"""Offline tools that drive the core with external data (not imported by the core)."""
