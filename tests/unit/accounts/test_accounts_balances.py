"""Balances: available/frozen moves, touched tracking, totals and check()."""

from __future__ import annotations

import pytest

from chainbook.accounts.balances import FEE_ACCOUNT, Balances
from chainbook.accounts.errors import BalanceInvariantError


def test_unknown_reads_as_zero_without_creating():
    b = Balances()
    assert b.available(5, "BTC") == 0 and b.frozen(5, "BTC") == 0
    assert b.acct == {} and b.touched == {}
    b.check()


def test_credit_freeze_unfreeze_burn():
    b = Balances()
    b.credit(1, "BTC", 100)
    b.freeze(1, "BTC", 30)
    assert (b.available(1, "BTC"), b.frozen(1, "BTC")) == (70, 30)
    b.unfreeze(1, "BTC", 10)
    assert (b.available(1, "BTC"), b.frozen(1, "BTC")) == (80, 20)
    b.burn_frozen(1, "BTC", 20)
    assert (b.available(1, "BTC"), b.frozen(1, "BTC")) == (80, 0)
    assert b.deposited == {"BTC": 100} and b.withdrawn == {"BTC": 20}
    assert list(b.touched) == [(1, "BTC")]
    b.check()


def test_moves_between_accounts_conserve():
    b = Balances()
    b.credit(1, "USDT", 1_000)
    b.freeze(1, "USDT", 500)
    b.get(1, "USDT")[1] -= 500
    b.get(2, "USDT")[0] += 490
    b.get(FEE_ACCOUNT, "USDT")[0] += 10
    b.check()


def test_check_finds_negative_available_and_frozen():
    b = Balances()
    b.credit(1, "BTC", 5)
    b.get(1, "BTC")[0] = -1
    b.get(2, "BTC")[0] = 6
    with pytest.raises(BalanceInvariantError, match="account 1"):
        b.check()
    b = Balances()
    b.credit(1, "BTC", 5)
    b.get(1, "BTC")[1] = -1
    b.get(1, "BTC")[0] = 6
    with pytest.raises(BalanceInvariantError, match="frozen -1"):
        b.check()


def test_check_finds_created_or_lost_money():
    b = Balances()
    b.credit(1, "BTC", 5)
    b.get(2, "BTC")[0] = 1
    with pytest.raises(BalanceInvariantError, match="BTC"):
        b.check()
    b = Balances()
    b.credit(1, "ETH", 5)
    b.get(1, "ETH")[0] = 4
    with pytest.raises(BalanceInvariantError, match="ETH"):
        b.check()


def test_check_counts_withdrawals():
    b = Balances()
    b.credit(1, "BTC", 5)
    b.freeze(1, "BTC", 5)
    b.burn_frozen(1, "BTC", 5)
    b.check()
    b.withdrawn["BTC"] = 4
    with pytest.raises(BalanceInvariantError):
        b.check()
