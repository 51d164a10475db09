"""Legacy user-data listenKeys (specs/binance-compat.md section 7.2).

A listenKey is 64 random alphanumerics naming one account's user-data stream.  POST
returns the account's current key while it is valid (Binance does the same, so several
watchers share one stream); a key expires 60 minutes after its creation or last
keepalive.  Keys live in memory only: clients create a new one after a restart.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable

TTL_MS = 60 * 60 * 1000
_ALPHABET = string.ascii_letters + string.digits


class ListenKeys:
    """listenKey registry: key -> (account, expiry)."""

    def __init__(self, clock_ms: Callable[[], int], ttl_ms: int = TTL_MS) -> None:
        self.clock_ms = clock_ms
        self.ttl_ms = ttl_ms
        self._keys: dict[str, tuple[int, int]] = {}  # key -> (account, expires at ms)
        self._by_account: dict[int, str] = {}

    def create(self, account: int) -> str:
        """Return ``account``'s valid key (kept alive), or a new one."""
        key = self._by_account.get(account)
        if key is not None and self.account_for(key) == account:
            self._keys[key] = (account, self.clock_ms() + self.ttl_ms)
            return key
        key = "".join(secrets.choice(_ALPHABET) for _ in range(64))
        self._keys[key] = (account, self.clock_ms() + self.ttl_ms)
        self._by_account[account] = key
        return key

    def keepalive(self, key: str, account: int) -> bool:
        """Extend ``key`` by the TTL; False if it is unknown, expired or not ``account``'s."""
        if self.account_for(key) != account:
            return False
        self._keys[key] = (account, self.clock_ms() + self.ttl_ms)
        return True

    def close(self, key: str, account: int) -> bool:
        """Delete ``key``; False if it is unknown, expired or not ``account``'s."""
        if self.account_for(key) != account:
            return False
        del self._keys[key]
        self._by_account.pop(account, None)
        return True

    def account_for(self, key: str) -> int | None:
        """The account of a valid ``key``, else None (an expired key is forgotten)."""
        entry = self._keys.get(key)
        if entry is None:
            return None
        account, expires = entry
        if self.clock_ms() >= expires:
            del self._keys[key]
            if self._by_account.get(account) == key:
                del self._by_account[account]
            return None
        return account
