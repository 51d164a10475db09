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

The ledger stores each fact once (the ``postings`` view shows every leg,
schema.POSTINGS_VIEW): a trade's legs are computed from its trade row, and every other
movement is a pair of legs of equal size, one out of a bucket and one into another,
stored as one ``transfers`` row.  So ``command_postings`` returns transfer rows and uses
the trade legs only to explain the balance changes.

``BalanceChanged`` carries the absolute new values.  Whatever part of a change the
postings above do not explain must be a move between the account's own available and
frozen buckets (a reserve taken when an order is accepted, released when it ends or is
amended): it becomes a ``reserve`` transfer.  If the unexplained part does not net to zero
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


class Transfer(NamedTuple):
    """One row of the ``transfers`` table: ``amount`` (> 0) out of the source bucket
    into the destination bucket; ``(seq, idx)`` is its key.  The hot path carries plain
    tuples in this field order (``TransferRow``)."""

    seq: int
    idx: int
    kind: str
    asset: str
    src_account: int
    src_bucket: str
    dst_account: int
    dst_bucket: str
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
TransferRow = tuple[int, int, str, str, int, str, int, str, int]  # Transfer's fields
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


Move = tuple[str, str, int, str, int, str, int]  # Transfer's fields after seq and idx


def money_move(ev: Event) -> Move | None:
    """The transfer a deposit or withdrawal event makes (None for other events)."""
    if isinstance(ev, Deposited):
        return ("deposit", ev.asset, WORLD_ACCOUNT, AVAILABLE, ev.account, AVAILABLE,
                ev.amount)
    if isinstance(ev, WithdrawalHeld):
        return ("withdrawal_hold", ev.asset, ev.account, AVAILABLE, ev.account, FROZEN,
                ev.amount)
    if isinstance(ev, WithdrawalCompleted):
        return ("withdrawal", ev.asset, ev.account, FROZEN, WORLD_ACCOUNT, AVAILABLE,
                ev.amount)
    if isinstance(ev, WithdrawalRefunded):
        return ("withdrawal_refund", ev.asset, ev.account, FROZEN, ev.account, AVAILABLE,
                ev.amount)
    return None


def transfer_legs(move: Move) -> list[Leg]:
    """The two postings of a transfer (``Move`` or a ``Transfer`` row's last seven
    fields), as the ``postings`` view shows them: out of the source, into the
    destination."""
    kind, asset, src, src_bucket, dst, dst_bucket, amount = move
    return [(None, src, asset, src_bucket, kind, -amount),
            (None, dst, asset, dst_bucket, kind, amount)]


def explicit_legs(ev: Event, view: BalanceView) -> list[Leg] | None:
    """The postings an event implies by itself (None for events that move no money)."""
    if isinstance(ev, Trade):
        sym = view.symbol(ev.symbol)
        if sym is None:
            raise LedgerMismatch(f"trade {ev.trade_id} on unknown symbol {ev.symbol}")
        return trade_legs(ev, sym)
    move = money_move(ev)
    return None if move is None else transfer_legs(move)


def _net_trade(net: dict[tuple[int, str], list[int]], t: Trade, sym: SymbolInfo) -> None:
    """Add the legs of ``trade_legs(t, sym)`` to ``net``: the hot path, without building
    the legs (they are stored as the trade row)."""
    n = t.quote_amount
    if n != t.price * t.qty * sym.quote_per_tick_lot:
        trade_legs(t, sym)  # raises the mismatch
    if t.taker_side == BUY:
        buyer, bfee, seller, sfee = t.taker_account, t.taker_fee, t.maker_account, t.maker_fee
    else:
        buyer, bfee, seller, sfee = t.maker_account, t.maker_fee, t.taker_account, t.taker_fee
    b, q, base = t.qty * sym.lot_units, sym.quote, sym.base
    for key, col, amount in (((buyer, q), 1, -(n + bfee)), ((seller, q), 0, n - sfee),
                             ((FEE_ACCOUNT, q), 0, bfee + sfee), ((seller, base), 1, -b),
                             ((buyer, base), 0, b)):
        cell = net.get(key)
        if cell is None:
            net[key] = [amount, 0] if col == 0 else [0, amount]
        else:
            cell[col] += amount


def command_postings(seq: int, events: Sequence[Event],
                     view: BalanceView) -> tuple[list[TransferRow], list[BalanceChanged]]:
    """Transfer rows (``Transfer`` field order) of command ``seq`` and its
    ``BalanceChanged`` events, in order.  The trade legs are not rows (the trade row
    holds them) but explain balance changes like the transfers do.

    ``view`` must hold the balances as they were before the command.  O(events).
    Raises LedgerMismatch when the postings cannot explain a balance change."""
    rows: list[TransferRow] = []
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
            _net_trade(net, tr, sym)
        elif t in _MONEY_EVENTS:
            move = cast(Move, money_move(ev))
            rows.append((seq, len(rows), *move))
            for _tid, acct, asset, bucket, _kind, amount in transfer_legs(move):
                cell = net.get((acct, asset))
                if cell is None:
                    cell = net[(acct, asset)] = [0, 0]
                cell[0 if bucket == AVAILABLE else 1] += amount
    if not changes and not net:
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
        if r_a < 0:  # reserved: available -> frozen
            rows.append((seq, len(rows), "reserve", bc.asset, bc.account, AVAILABLE,
                         bc.account, FROZEN, -r_a))
        elif r_a:  # released: frozen -> available
            rows.append((seq, len(rows), "reserve", bc.asset, bc.account, FROZEN,
                         bc.account, AVAILABLE, r_a))
        now[key] = (bc.available, bc.frozen)
    for (acct, asset), (d_a, d_f) in net.items():
        if acct != WORLD_ACCOUNT and (d_a or d_f):
            raise LedgerMismatch(f"seq {seq}: postings move account {acct} {asset} but no "
                                 "BalanceChanged reports it")
    return rows, changes


def command_legs(rows: Sequence[TransferRow], trades: Sequence[Trade],
                 view: BalanceView) -> list[Leg]:
    """Every posting of a command, as the ``postings`` view shows it: the legs of its
    transfer ``rows`` and of its ``trades`` (for tests and audits; not the hot path)."""
    legs = [leg for r in rows for leg in transfer_legs(r[2:])]
    for t in trades:
        legs += explicit_legs(t, view) or ()
    return legs


def sums_by_asset(legs: Sequence[Leg]) -> dict[str, int]:
    """Sum of ``amount`` per asset (zero for every asset when the books balance)."""
    out: dict[str, int] = {}
    for leg in legs:
        out[leg[2]] = out.get(leg[2], 0) + leg[5]
    return out
