"""KeyStore: accounts from 1, keys with permissions, revocation, two processes on one file."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from chainbook.service.keys import ApiKey, KeyStore, KeyStoreError, parse_perms


def test_accounts_start_at_one_and_names_are_unique(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "g.sqlite") as ks:
        assert ks.create_account("alice") == 1
        assert ks.create_account("bob") == 2
        assert ks.account_id("bob") == 2 and ks.account_id("carol") is None
        assert [a.name for a in ks.accounts()] == ["alice", "bob"]
        assert ks.account("2") == ks.account("bob") == ks.account(2)
        with pytest.raises(KeyStoreError, match="already exists"):
            ks.create_account("alice")
        for bad in ("", "123", "a b", "x" * 65):
            with pytest.raises(KeyStoreError, match="bad account name"):
                ks.create_account(bad)


def test_keys_are_64_alphanumerics_with_validated_perms(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "g.sqlite") as ks:
        acct = ks.create_account("alice")
        k = ks.create_key(acct, {"read", "trade"})
        assert len(k.key) == 64 and k.key.isalnum() and k.key.isascii()
        assert len(k.secret) == 64 and k.secret.isalnum() and k.secret != k.key
        assert ks.get_key(k.key) == ApiKey(k.key, k.secret, acct, frozenset({"read", "trade"}))
        assert ks.get_key("nope") is None
        with pytest.raises(KeyStoreError, match="unknown permission"):
            ks.create_key(acct, {"read", "admin"})
        with pytest.raises(KeyStoreError, match="at least one"):
            ks.create_key(acct, set())
        with pytest.raises(KeyStoreError, match="unknown account"):
            ks.create_key(99, {"read"})
        assert parse_perms("read, withdraw") == {"read", "withdraw"}
        with pytest.raises(KeyStoreError):
            parse_perms("read,root")


def test_revoke(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "g.sqlite") as ks:
        acct = ks.create_account("alice")
        k1 = ks.create_key(acct, {"read"})
        k2 = ks.create_key(acct, {"trade"})
        assert ks.get_key(k1.key) is not None  # cached now
        assert ks.revoke_key(k1.key) is True
        assert ks.revoke_key(k1.key) is False
        assert ks.get_key(k1.key) is None
        assert ks.keys(acct) == [k2]
        assert ks.keys() == [k2]


_CHILD = """
import sys
from chainbook.service.keys import KeyStore
ks = KeyStore(sys.argv[1])
if sys.argv[2] == "create":
    k = ks.create_key(ks.account_id("alice"), {"read"})
    print(k.key)
else:
    print(ks.revoke_key(sys.argv[3]))
"""


def _child(*args: str) -> str:
    out = subprocess.run([sys.executable, "-c", _CHILD, *args], check=True,
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def test_another_process_sees_new_and_revoked_keys_at_once(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    with KeyStore(path, recheck_s=0) as server:
        server.create_account("alice")
        mine = server.create_key(1, {"trade"})
        assert server.get_key(mine.key) is not None  # in the server's cache
        key = _child(str(path), "create")  # e.g. `chainbook apikey create` meanwhile
        got = server.get_key(key)
        assert got is not None and got.account == 1 and got.perms == {"read"}
        assert _child(str(path), "revoke", mine.key) == "True"
        assert server.get_key(mine.key) is None  # the cache did not hide the revocation
        assert server.get_key(key) is not None


def test_revocation_by_another_process_is_seen_after_the_recheck_interval(
        tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    with KeyStore(path, recheck_s=3600) as server:
        server.create_account("alice")
        mine = server.create_key(1, {"trade"})
        assert server.get_key(mine.key) == mine
        key = _child(str(path), "create")
        assert server.get_key(key) is not None  # not cached yet: looked up at once
        assert _child(str(path), "revoke", mine.key) == "True"
        assert server.get_key(mine.key) == mine  # cached until the next check
        server.recheck_s = 0  # the interval has passed
        assert server.get_key(mine.key) is None
        assert server.get_key(key) is not None


def test_the_key_store_file_is_private(tmp_path: Path) -> None:
    """It holds every API secret in the clear: readable by its owner only (it was 0644
    under the usual umask; found by review)."""
    store = KeyStore(tmp_path / "d" / "gateway.sqlite")
    try:
        store.create_key(store.create_account("alice"), {"read"})
        assert stat.S_IMODE((tmp_path / "d" / "gateway.sqlite").stat().st_mode) == 0o600
    finally:
        store.close()
