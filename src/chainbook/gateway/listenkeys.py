"""Legacy user-data listenKeys (specs/binance-compat.md section 7.2).

A listenKey is 64 random alphanumerics naming one account's user-data stream.  POST
returns the account's current key while it is valid (Binance does the same, so several
watchers share one stream); a key expires 60 minutes after its creation or last
keepalive.  Keys live in memory only: clients create a new one after a restart.

A listenKey is a bearer token for the account's stream, so it also ends when no API key
that created it or kept it alive is active any more (``valid``): revoking an API key cuts
the streams opened with a listenKey only that key obtained (the hub checks every second),
a new connection on it is refused, and the key is forgotten: the next POST makes another
one, so whoever held the old key cannot listen again.
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
        self._api_keys: dict[str, set[str]] = {}  # listenKey -> API keys that used it

    def create(self, account: int, api_key: str = "",
               active: Callable[[str], bool] | None = None) -> str:
        """Return ``account``'s valid key (kept alive), or a new one; ``api_key`` (the
        caller's) is one of those that keep it valid.  With ``active`` (see ``valid``), a
        key whose API keys were all revoked is not handed out again: a new one is made."""
        key = self._by_account.get(account)
        if key is not None and active is not None:
            self.valid(key, account, active)  # forgets it if its API keys are revoked
        if key is None or self.account_for(key) != account:
            key = "".join(secrets.choice(_ALPHABET) for _ in range(64))
            self._by_account[account] = key
            self._api_keys[key] = set()
        self._keys[key] = (account, self.clock_ms() + self.ttl_ms)
        if api_key:
            self._api_keys[key].add(api_key)
        return key

    def keepalive(self, key: str, account: int, api_key: str = "",
                  active: Callable[[str], bool] | None = None) -> bool:
        """Extend ``key`` by the TTL; False if it is unknown, expired or not ``account``'s
        (or, with ``active``, no longer ``valid``)."""
        if self.account_for(key) != account or (
                active is not None and not self.valid(key, account, active)):
            return False
        self._keys[key] = (account, self.clock_ms() + self.ttl_ms)
        if api_key:
            self._api_keys[key].add(api_key)
        return True

    def valid(self, key: str, account: int, active: Callable[[str], bool]) -> bool:
        """``key`` is ``account``'s, not expired, and one of the API keys that created or
        kept it alive is still ``active`` (a key made without one only expires).  A key
        whose API keys are all revoked is forgotten, as an expired one is."""
        if self.account_for(key) != account:
            return False
        used = self._api_keys.get(key)
        if not used or any(map(active, used)):
            return True
        self._forget(key, account)
        return False

    def _forget(self, key: str, account: int) -> None:
        self._keys.pop(key, None)
        self._api_keys.pop(key, None)
        if self._by_account.get(account) == key:
            del self._by_account[account]

    def close(self, key: str, account: int) -> bool:
        """Delete ``key``; False if it is unknown, expired or not ``account``'s."""
        if self.account_for(key) != account:
            return False
        del self._keys[key]
        self._api_keys.pop(key, None)
        self._by_account.pop(account, None)
        return True

    def account_for(self, key: str) -> int | None:
        """The account of a valid ``key``, else None (an expired key is forgotten)."""
        entry = self._keys.get(key)
        if entry is None:
            return None
        account, expires = entry
        if self.clock_ms() >= expires:
            self._forget(key, account)
            return None
        return account
