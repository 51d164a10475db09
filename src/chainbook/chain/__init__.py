"""On-chain settlement, deposits and withdrawals (docs/chain.md)."""
