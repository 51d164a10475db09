"""Balances per account and asset, fees and the pre-trade risk arithmetic."""

from chainbook.accounts.balances import FEE_ACCOUNT, Balances
from chainbook.accounts.errors import BalanceInvariantError
from chainbook.accounts.fees import fee, notional

__all__ = ["FEE_ACCOUNT", "Balances", "BalanceInvariantError", "fee", "notional"]
