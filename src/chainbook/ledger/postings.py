"""Double-entry postings of one command, derived from its events. Pure: no I/O.

A posting moves ``amount`` base units of ``asset`` into (positive) or out of (negative)
one bucket, ``available`` or ``frozen``, of one account.  The postings of one command sum
to zero per asset, and so do those of each trade.  They come from the events that say
*why* money moved:

* ``Trade``: buyer frozen quote ``-(notional + buyer fee)``, seller available quote
  ``+(notional - seller fee)``, fee account available quote ``+(both fees)``, seller
  frozen base ``-base``, buyer available base ``+base`` (docs/core.md: fills are paid
  out of frozen funds, proceeds land in available);
* ``Deposited``: world ``-amount``, account available ``+amount``;
* ``WithdrawalHeld``: available -> frozen; ``WithdrawalCompleted``: frozen -> world;
  ``WithdrawalRefunded``: frozen -> available.

``BalanceChanged`` carries the absolute new values.  Whatever part of a change the
postings above do not explain must be a move between the account's own available and
frozen buckets (a reserve taken when an order is accepted, released when it ends or is
amended): it becomes a ``reserve`` pair.  If the unexplained part does not net to zero
for an (account, asset), the events contradict each other and ``LedgerMismatch`` is
raised: the ledger never invents money to make the books balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, cast

from chainbook.domain.events import (
    BalanceChanged,
    Deposited,
    Event,
    Trade,
    WithdrawalCompleted,
    WithdrawalHeld,
    WithdrawalRefunded,
)
from chainbook.ledger.schema import AVAILABLE, FEE_ACCOUNT, FROZEN, WORLD_ACCOUNT

BUY = 0


class Posting(NamedTuple):
    """One row of the ``postings`` table; ``(seq, idx)`` is its key.  The hot path
    carries plain tuples in this field order (``PostingRow``)."""

    seq: int
    idx: int
    trade_id: int | None
    account: int
    asset: str
    bucket: str
    kind: str
    amount: int


class SymbolInfo(NamedTuple):
    """What the ledger needs of a symbol to post a trade."""

    base: str
    quote: str
    lot_units: int
    quote_per_tick_lot: int


class LedgerMismatch(ValueError):
    """The events of a command do not add up (postings vs absolute balances)."""


class BalanceView(Protocol):
    """Balances before the command and the listed symbols."""

    def balance(self, account: int, asset: str) -> tuple[int, int]:
        """(available, frozen) of ``account`` in ``asset``; (0, 0) if never seen."""
        ...

    def symbol(self, name: str) -> SymbolInfo | None: ...


Leg = tuple[int | None, int, str, str, str, int]  # trade_id, account, asset, bucket, kind, amount
PostingRow = tuple[int, int, int | None, int, str, str, str, int]  # Posting's fields, in order
_MONEY_EVENTS = frozenset({Deposited, WithdrawalHeld, WithdrawalCompleted, WithdrawalRefunded})


def trade_legs(t: Trade, sym: SymbolInfo) -> list[Leg]:
    """The postings of one trade (zero legs left out); they sum to zero per asset."""
    if t.quote_amount != t.price * t.qty * sym.quote_per_tick_lot:
        raise LedgerMismatch(f"trade {t.trade_id}: quote amount {t.quote_amount} is not "
                             f"price x qty x {sym.quote_per_tick_lot}")
    if t.taker_side == BUY:
        buyer, bfee, seller, sfee = t.taker_account, t.taker_fee, t.maker_account, t.maker_fee
    else:
        buyer, bfee, seller, sfee = t.maker_account, t.maker_fee, t.taker_account, t.taker_fee
    n, b, tid, q = t.quote_amount, t.qty * sym.lot_units, t.trade_id, sym.quote
    legs: list[Leg] = [
        (tid, buyer, q, FROZEN, "trade", -(n + bfee)),
        (tid, seller, q, AVAILABLE, "trade", n - sfee),
        (tid, FEE_ACCOUNT, q, AVAILABLE, "fee", bfee + sfee),
        (tid, seller, sym.base, FROZEN, "trade", -b),
        (tid, buyer, sym.base, AVAILABLE, "trade", b),
    ]
    return [leg for leg in legs if leg[5]]


def _move(asset: str, amount: int, kind: str, src: tuple[int, str],
          dst: tuple[int, str]) -> list[Leg]:
    return [(None, src[0], asset, src[1], kind, -amount),
            (None, dst[0], asset, dst[1], kind, amount)]


def explicit_legs(ev: Event, view: BalanceView) -> list[Leg] | None:
    """The postings an event implies by itself (None for events that move no money)."""
    if isinstance(ev, Trade):
        sym = view.symbol(ev.symbol)
        if sym is None:
            raise LedgerMismatch(f"trade {ev.trade_id} on unknown symbol {ev.symbol}")
        return trade_legs(ev, sym)
    if isinstance(ev, Deposited):
        return _move(ev.asset, ev.amount, "deposit", (WORLD_ACCOUNT, AVAILABLE),
                     (ev.account, AVAILABLE))
    if isinstance(ev, WithdrawalHeld):
        return _move(ev.asset, ev.amount, "withdrawal_hold", (ev.account, AVAILABLE),
                     (ev.account, FROZEN))
    if isinstance(ev, WithdrawalCompleted):
        return _move(ev.asset, ev.amount, "withdrawal", (ev.account, FROZEN),
                     (WORLD_ACCOUNT, AVAILABLE))
    if isinstance(ev, WithdrawalRefunded):
        return _move(ev.asset, ev.amount, "withdrawal_refund", (ev.account, FROZEN),
                     (ev.account, AVAILABLE))
    return None


def _post_trade(rows: list[PostingRow], net: dict[tuple[int, str], list[int]], seq: int,
                t: Trade, sym: SymbolInfo) -> None:
    """Append the rows of ``trade_legs(t, sym)`` (same legs, same order) and add them to
    ``net``: the hot path, without the intermediate leg tuples."""
    n = t.quote_amount
    if n != t.price * t.qty * sym.quote_per_tick_lot:
        trade_legs(t, sym)  # raises the mismatch
    if t.taker_side == BUY:
        buyer, bfee, seller, sfee = t.taker_account, t.taker_fee, t.maker_account, t.maker_fee
    else:
        buyer, bfee, seller, sfee = t.maker_account, t.maker_fee, t.taker_account, t.taker_fee
    b, tid, q, base = t.qty * sym.lot_units, t.trade_id, sym.quote, sym.base
    for acct, asset, col, bucket, kind, amount in (
            (buyer, q, 1, FROZEN, "trade", -(n + bfee)),
            (seller, q, 0, AVAILABLE, "trade", n - sfee),
            (FEE_ACCOUNT, q, 0, AVAILABLE, "fee", bfee + sfee),
            (seller, base, 1, FROZEN, "trade", -b),
            (buyer, base, 0, AVAILABLE, "trade", b)):
        if amount:
            rows.append((seq, len(rows), tid, acct, asset, bucket, kind, amount))
            cell = net.get((acct, asset))
            if cell is None:
                net[(acct, asset)] = [amount, 0] if col == 0 else [0, amount]
            else:
                cell[col] += amount


def command_postings(seq: int, events: Sequence[Event],
                     view: BalanceView) -> tuple[list[PostingRow], list[BalanceChanged]]:
    """Posting rows (``Posting`` field order) of command ``seq`` and its
    ``BalanceChanged`` events, in order.

    ``view`` must hold the balances as they were before the command.  O(events).
    Raises LedgerMismatch when the postings cannot explain a balance change."""
    rows: list[PostingRow] = []
    changes: list[BalanceChanged] = []
    # (account, asset) -> [available, frozen] moved by the explicit postings
    net: dict[tuple[int, str], list[int]] = {}
    for ev in events:
        t = type(ev)
        if t is BalanceChanged:
            changes.append(cast(BalanceChanged, ev))
        elif t is Trade:
            tr = cast(Trade, ev)
            sym = view.symbol(tr.symbol)
            if sym is None:
                raise LedgerMismatch(f"seq {seq}: trade on unknown symbol {tr.symbol}")
            _post_trade(rows, net, seq, tr, sym)
        elif t in _MONEY_EVENTS:
            for tid, acct, asset, bucket, kind, amount in explicit_legs(ev, view) or ():
                rows.append((seq, len(rows), tid, acct, asset, bucket, kind, amount))
                cell = net.get((acct, asset))
                if cell is None:
                    cell = net[(acct, asset)] = [0, 0]
                cell[0 if bucket == AVAILABLE else 1] += amount
    if not changes and not rows:
        return rows, changes
    now: dict[tuple[int, str], tuple[int, int]] = {}
    for bc in changes:
        key = (bc.account, bc.asset)
        old_a, old_f = now[key] if key in now else view.balance(*key)
        d_a, d_f = net.pop(key, (0, 0))
        r_a = bc.available - old_a - d_a
        r_f = bc.frozen - old_f - d_f
        if r_a + r_f:
            raise LedgerMismatch(
                f"seq {seq}: account {bc.account} {bc.asset} total moved by "
                f"{bc.available + bc.frozen - old_a - old_f} but its postings say "
                f"{d_a + d_f}")
        if r_a:
            i = len(rows)
            rows.append((seq, i, None, bc.account, bc.asset, AVAILABLE, "reserve", r_a))
            rows.append((seq, i + 1, None, bc.account, bc.asset, FROZEN, "reserve", r_f))
        now[key] = (bc.available, bc.frozen)
    for (acct, asset), (d_a, d_f) in net.items():
        if acct != WORLD_ACCOUNT and (d_a or d_f):
            raise LedgerMismatch(f"seq {seq}: postings move account {acct} {asset} but no "
                                 "BalanceChanged reports it")
    return rows, changes


def sums_by_asset(rows: Sequence[PostingRow]) -> dict[str, int]:
    """Sum of ``amount`` per asset (zero for every asset when the books balance)."""
    out: dict[str, int] = {}
    for p in rows:
        out[p[4]] = out.get(p[4], 0) + p[7]
    return out
