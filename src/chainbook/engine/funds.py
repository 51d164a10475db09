"""Balance commands: deposits and the withdrawal lifecycle, idempotent by external id.

A withdrawal is held (available -> frozen), then completed (frozen leaves the exchange)
or refunded (frozen -> available).  Each external id is applied once; a repeat is
rejected with DUPLICATE_EXTERNAL_ID and changes nothing, which is what makes a redelivered
deposit or withdrawal harmless.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from chainbook.domain import commands as C
from chainbook.domain.enums import Reject
from chainbook.domain.events import (
    Deposited,
    Event,
    OrderRejected,
    WithdrawalCompleted,
    WithdrawalHeld,
    WithdrawalRefunded,
)

if TYPE_CHECKING:
    from chainbook.engine.engine import Engine

HELD = 0
COMPLETED = 1
REFUNDED = 2


class Withdrawal(msgspec.Struct, array_like=True):
    """A withdrawal the core knows of; ``state`` is HELD, COMPLETED or REFUNDED."""

    account: int
    asset: str
    amount: int
    state: int = HELD


MAX_AMOUNT = 2**63 - 1  # every balance and per-asset total fits a signed 64-bit int


def deposit(engine: Engine, cmd: C.Deposit, ev: list[Event]) -> None:
    """Credit a deposit once per external id.

    Rejects (INVALID_AMOUNT) a deposit that would take the asset's total past
    MAX_AMOUNT: balances, the log and snapshots stay within signed 64-bit integers, so
    an asset's base unit must be chosen to fit (e.g. ETH in gwei, not wei).  The total
    is what the exchange holds now (withdrawals completed are out of it), not every
    deposit ever made."""
    total = engine.balances.held(cmd.asset)
    if cmd.amount <= 0 or not cmd.asset or cmd.amount > MAX_AMOUNT - total:
        ev.append(OrderRejected(cmd.account, Reject.INVALID_AMOUNT, None, 5))
        return
    if cmd.external_id in engine.external_ids:
        ev.append(OrderRejected(cmd.account, Reject.DUPLICATE_EXTERNAL_ID, None, 5))
        return
    engine.external_ids.add(cmd.external_id)
    engine.balances.credit(cmd.account, cmd.asset, cmd.amount)
    ev.append(Deposited(cmd.account, cmd.asset, cmd.amount, cmd.external_id))


def withdraw_hold(engine: Engine, cmd: C.WithdrawHold, ev: list[Event]) -> None:
    """Freeze funds for a withdrawal; reject if not available or the id was seen."""
    if cmd.amount <= 0 or not cmd.asset:
        ev.append(OrderRejected(cmd.account, Reject.INVALID_AMOUNT, None, 6))
        return
    if cmd.external_id in engine.external_ids:
        ev.append(OrderRejected(cmd.account, Reject.DUPLICATE_EXTERNAL_ID, None, 6))
        return
    if engine.balances.available(cmd.account, cmd.asset) < cmd.amount:
        ev.append(OrderRejected(cmd.account, Reject.INSUFFICIENT_BALANCE, None, 6))
        return
    engine.external_ids.add(cmd.external_id)
    engine.balances.freeze(cmd.account, cmd.asset, cmd.amount)
    engine.withdrawals[cmd.external_id] = Withdrawal(cmd.account, cmd.asset, cmd.amount)
    ev.append(WithdrawalHeld(cmd.account, cmd.asset, cmd.amount, cmd.external_id))


def _pending(engine: Engine, external_id: str, kind: int,
             ev: list[Event]) -> Withdrawal | None:
    w = engine.withdrawals.get(external_id)
    if w is None:
        ev.append(OrderRejected(-1, Reject.UNKNOWN_WITHDRAWAL, None, kind))
        return None
    if w.state != HELD:
        ev.append(OrderRejected(w.account, Reject.WITHDRAWAL_NOT_PENDING, None, kind))
        return None
    return w


def withdraw_complete(engine: Engine, cmd: C.WithdrawComplete, ev: list[Event]) -> None:
    """The withdrawal left: its frozen funds are gone for good."""
    w = _pending(engine, cmd.external_id, 7, ev)
    if w is None:
        return
    engine.balances.burn_frozen(w.account, w.asset, w.amount)
    w.state = COMPLETED
    ev.append(WithdrawalCompleted(w.account, w.asset, w.amount, cmd.external_id))


def withdraw_refund(engine: Engine, cmd: C.WithdrawRefund, ev: list[Event]) -> None:
    """The withdrawal failed: return its funds to available."""
    w = _pending(engine, cmd.external_id, 8, ev)
    if w is None:
        return
    engine.balances.unfreeze(w.account, w.asset, w.amount)
    w.state = REFUNDED
    ev.append(WithdrawalRefunded(w.account, w.asset, w.amount, cmd.external_id))
