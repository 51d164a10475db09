"""Per-account, per-asset balances: ``available`` and ``frozen``, never negative.

``Balances`` is a plain in-memory ledger owned by the engine.  It records every touched
(account, asset) so the engine can emit one ``BalanceChanged`` per command, and it keeps
per-asset totals of deposits and completed withdrawals for the conservation check:
for every asset, the sum of all balances (the fee account included) equals
deposits - withdrawals (``held``).  The two totals count from the last rebase: once an
asset's withdrawals reach ``REBASE_AT`` both are lowered by that amount, so they stay
within the snapshot's 64-bit integers however much passes through the exchange.
"""

from __future__ import annotations

from chainbook.accounts.errors import BalanceInvariantError

FEE_ACCOUNT = 0  # the exchange's own account: every fee is credited here
REBASE_AT = 2**62  # withdrawals total at which both per-asset totals are lowered


class Balances:
    """Balances keyed by account id then asset; each value is ``[available, frozen]``."""

    __slots__ = ("acct", "touched", "deposited", "withdrawn")

    def __init__(self) -> None:
        self.acct: dict[int, dict[str, list[int]]] = {}
        self.touched: dict[tuple[int, str], list[int]] = {}  # -> its cell
        self.deposited: dict[str, int] = {}
        self.withdrawn: dict[str, int] = {}

    def get(self, account: int, asset: str) -> list[int]:
        """The mutable ``[available, frozen]`` cell, created at zero if missing. O(1)."""
        assets = self.acct.get(account)
        if assets is None:
            assets = self.acct[account] = {}
        cell = assets.get(asset)
        if cell is None:
            cell = assets[asset] = [0, 0]
        return cell

    def available(self, account: int, asset: str) -> int:
        """Available amount (0 for an unknown account or asset)."""
        assets = self.acct.get(account)
        if assets is None:
            return 0
        cell = assets.get(asset)
        return 0 if cell is None else cell[0]

    def frozen(self, account: int, asset: str) -> int:
        """Frozen amount (0 for an unknown account or asset)."""
        assets = self.acct.get(account)
        if assets is None:
            return 0
        cell = assets.get(asset)
        return 0 if cell is None else cell[1]

    def credit(self, account: int, asset: str, amount: int) -> None:
        """Add to available (a deposit)."""
        cell = self.get(account, asset)
        cell[0] += amount
        self.deposited[asset] = self.deposited.get(asset, 0) + amount
        self.touched[(account, asset)] = cell

    def freeze(self, account: int, asset: str, amount: int) -> None:
        """Move ``amount`` from available to frozen; the caller has checked it is there."""
        cell = self.get(account, asset)
        cell[0] -= amount
        cell[1] += amount
        self.touched[(account, asset)] = cell

    def unfreeze(self, account: int, asset: str, amount: int) -> None:
        """Move ``amount`` from frozen back to available."""
        cell = self.get(account, asset)
        cell[0] += amount
        cell[1] -= amount
        self.touched[(account, asset)] = cell

    def burn_frozen(self, account: int, asset: str, amount: int) -> None:
        """Remove ``amount`` of frozen funds that left the exchange (a withdrawal)."""
        cell = self.get(account, asset)
        cell[1] -= amount
        out = self.withdrawn.get(asset, 0) + amount
        if out >= REBASE_AT:  # keep deposited - withdrawn, in numbers a snapshot holds
            self.deposited[asset] = self.deposited.get(asset, 0) - out
            out = 0
        self.withdrawn[asset] = out
        self.touched[(account, asset)] = cell

    def held(self, asset: str) -> int:
        """What the exchange holds of ``asset``: deposits - completed withdrawals."""
        return self.deposited.get(asset, 0) - self.withdrawn.get(asset, 0)

    def check(self) -> None:
        """Verify non-negativity and per-asset conservation in O(accounts x assets)."""
        totals: dict[str, int] = {}
        for account, assets in self.acct.items():
            for asset, (avail, frozen) in assets.items():
                if avail < 0 or frozen < 0:
                    raise BalanceInvariantError(
                        f"account {account} {asset}: available {avail}, frozen {frozen}"
                    )
                totals[asset] = totals.get(asset, 0) + avail + frozen
        for asset in set(totals) | set(self.deposited):
            expect = self.deposited.get(asset, 0) - self.withdrawn.get(asset, 0)
            if totals.get(asset, 0) != expect:
                raise BalanceInvariantError(
                    f"{asset}: balances sum to {totals.get(asset, 0)}, "
                    f"deposits - withdrawals = {expect}"
                )
