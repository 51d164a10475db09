"""chainbook: a crypto spot exchange core with off-chain matching and on-chain settlement."""

__version__ = "0.1.0"
