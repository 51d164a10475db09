"""Many commands' events -> the rows one ledger transaction writes. Pure: no I/O.

``LedgerState`` mirrors what the ledger needs to know between batches (balances, listed
symbols, known accounts, last seq); ``build_batch`` folds a run of ``(seq, ts, events)``
entries into a ``Batch``, updating the state as it goes.  Rows are collapsed per batch:
each touched balance is written once with its final value, each order once (a full row
if the order was accepted in this batch, else one delta update), so a busy batch costs
one row per thing rather than one per event.  If ``build_batch`` raises, the state is
half-updated: the caller reloads it from the database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from chainbook.domain.enums import OrderStatus, OrderType, Side, SymbolStatus, TimeInForce
from chainbook.domain.events import (
    BalanceChanged,
    BookLevelChanged,
    Deposited,
    Event,
    KillSwitchChanged,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
    SymbolAdded,
    SymbolStatusChanged,
    Trade,
    WithdrawalCompleted,
    WithdrawalHeld,
    WithdrawalRefunded,
)
from chainbook.ledger.postings import LedgerMismatch, SymbolInfo, command_postings
from chainbook.ledger.schema import NONE, SETTLED

Entry = tuple[int, int, list[Event]]  # (seq, ts, events of that command)
Row = dict[str, Any]

_CHAIN_ID = re.compile(r"^(0x[0-9a-fA-F]{64}):([0-9]{1,18})$")
_SIDE = {int(s): s.name for s in Side}
_TYPE = {int(s): s.name for s in OrderType}
_TIF = {int(s): s.name for s in TimeInForce}
_STATUS = {int(s): s.name for s in OrderStatus}
# events that write no rows here (BalanceChanged: _balances; the rest: market data only)
_SKIP = frozenset({BalanceChanged, BookLevelChanged, OrderRejected})
_FILLED, _PARTIAL = OrderStatus.FILLED.name, OrderStatus.PARTIALLY_FILLED.name


def chain_ref(external_id: str) -> tuple[str | None, int | None]:
    """``(tx_hash, log_index)`` of a chain deposit id ``<txhash>:<logindex>`` (hash
    lower-cased), or ``(None, None)`` for any other external id."""
    m = _CHAIN_ID.match(external_id)
    if m is None:
        return None, None
    return m.group(1).lower(), int(m.group(2))


class SequenceGap(ValueError):
    """Entries do not continue the ledger at ``last_seq + 1``."""


@dataclass
class LedgerState:
    """What the ledger holds that the next batch depends on."""

    last_seq: int = 0
    last_ts: int = 0
    balances: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    symbols: dict[str, SymbolInfo] = field(default_factory=dict)
    accounts: set[int] = field(default_factory=set)

    def balance(self, account: int, asset: str) -> tuple[int, int]:
        """(available, frozen), (0, 0) if never seen. O(1)."""
        return self.balances.get((account, asset), (0, 0))

    def symbol(self, name: str) -> SymbolInfo | None:
        return self.symbols.get(name)


@dataclass
class Batch:
    """The writes of one transaction, covering seqs ``first_seq .. last_seq``."""

    first_seq: int
    last_seq: int = 0
    last_ts: int = 0
    commands: int = 0
    accounts: list[Row] = field(default_factory=list)
    kill_switch: dict[int, bool] = field(default_factory=dict)
    symbols: list[Row] = field(default_factory=list)
    symbol_status: dict[str, str] = field(default_factory=dict)
    # (account, asset) -> (available, frozen, seq of the last change): final values only
    balances_new: dict[tuple[int, str], tuple[int, int, int]] = field(default_factory=dict)
    balances_upd: dict[tuple[int, str], tuple[int, int, int]] = field(default_factory=dict)
    orders_new: dict[int, Row] = field(default_factory=dict)
    orders_upd: dict[int, Row] = field(default_factory=dict)
    trades: list[tuple[Any, ...]] = field(default_factory=list)  # columns of S.trades
    # columns of S.transfers (trade legs are the trade rows: schema.POSTINGS_VIEW)
    transfers: list[tuple[Any, ...]] = field(default_factory=list)
    deposits: list[Row] = field(default_factory=list)
    withdrawals_new: dict[str, Row] = field(default_factory=dict)
    withdrawals_upd: dict[str, Row] = field(default_factory=dict)


def _account(b: Batch, state: LedgerState, acct: int, seq: int) -> None:
    if acct not in state.accounts:
        state.accounts.add(acct)
        b.accounts.append({"account": acct, "kind": "user", "first_seq": seq,
                           "kill_switch": False})


def _order_delta(b: Batch, oid: int, seq: int) -> Row:
    """The row to change for order ``oid``: its full row if accepted in this batch, else
    a delta (``d_filled`` added, None = leave the column as it is)."""
    row = b.orders_new.get(oid)
    if row is not None:
        row["updated_seq"] = seq
        return row
    row = b.orders_upd.get(oid)
    if row is None:
        row = b.orders_upd[oid] = {"oid": oid, "d_filled": 0, "open_qty": None, "status": None,
                                   "price": None, "qty": None, "last_trade_seq": None,
                                   "settlement": None, "updated_seq": seq}
    row["updated_seq"] = seq
    return row


def _fill(b: Batch, oid: int, qty: int, left: int, seq: int) -> None:
    row = b.orders_new.get(oid)
    if row is not None:
        row["filled"] += qty
    else:
        row = _order_delta(b, oid, seq)
        row["d_filled"] += qty
    row["open_qty"] = left
    row["status"] = _FILLED if left == 0 else _PARTIAL
    row["last_trade_seq"] = row["updated_seq"] = seq
    row["settlement"] = SETTLED


def _trade_row(t: Trade, seq: int, ts: int, lot_units: int) -> tuple[Any, ...]:
    """A ``trades`` row, in the table's column order."""
    return (t.trade_id, seq, ts, t.symbol, t.price, t.qty, t.quote_amount, t.qty * lot_units,
            _SIDE[t.taker_side], t.maker_order_id, t.taker_order_id, t.maker_account,
            t.taker_account, t.maker_fee, t.taker_fee, SETTLED)


def _records(b: Batch, state: LedgerState, seq: int, ts: int, events: list[Event]) -> None:
    """Rows other than postings and balances for one command."""
    for ev in events:
        t = type(ev)
        if t in _SKIP:
            continue
        if t is Trade:
            tr = cast(Trade, ev)
            b.trades.append((tr.trade_id, seq, ts, tr.symbol, tr.price, tr.qty,
                             tr.quote_amount, tr.qty * state.symbols[tr.symbol].lot_units,
                             _SIDE[tr.taker_side], tr.maker_order_id, tr.taker_order_id,
                             tr.maker_account, tr.taker_account, tr.maker_fee, tr.taker_fee,
                             SETTLED))  # _trade_row, inlined: the hot path
            _fill(b, tr.maker_order_id, tr.qty, tr.maker_left, seq)
            _fill(b, tr.taker_order_id, tr.qty, tr.taker_left, seq)
        elif isinstance(ev, OrderAccepted):
            _account(b, state, ev.account, seq)
            b.orders_new[ev.order_id] = {
                "order_id": ev.order_id, "account": ev.account, "symbol": ev.symbol,
                "side": _SIDE[ev.side], "type": _TYPE[ev.type], "tif": _TIF[ev.tif],
                "price": ev.price, "qty": ev.qty, "quote_qty": ev.quote_qty,
                "client_id": ev.client_id, "status": "NEW", "filled": 0, "open_qty": ev.qty,
                "settlement": NONE, "created_seq": seq, "updated_seq": seq,
                "last_trade_seq": None}
        else:
            _other(b, state, seq, ev)


def _other(b: Batch, state: LedgerState, seq: int, ev: Event) -> None:
    """The less frequent events: order ends and amends, funds, symbols, kill switch."""
    if isinstance(ev, OrderCanceled | OrderExpired):
        row = _order_delta(b, ev.order_id, seq)
        row["open_qty"] = 0
        row["status"] = (_STATUS[ev.status] if isinstance(ev, OrderCanceled)
                         else OrderStatus.EXPIRED.name)
    elif isinstance(ev, OrderAmended):
        row = _order_delta(b, ev.order_id, seq)
        row["price"], row["qty"], row["open_qty"] = ev.price, ev.qty, ev.left
    elif isinstance(ev, Deposited):
        _account(b, state, ev.account, seq)
        tx, li = chain_ref(ev.external_id)
        b.deposits.append({"external_id": ev.external_id, "account": ev.account,
                           "asset": ev.asset, "amount": ev.amount, "seq": seq,
                           "tx_hash": tx, "log_index": li})
    elif isinstance(ev, WithdrawalHeld):
        _account(b, state, ev.account, seq)
        b.withdrawals_new[ev.external_id] = {
            "external_id": ev.external_id, "account": ev.account, "asset": ev.asset,
            "amount": ev.amount, "state": "HELD", "held_seq": seq, "closed_seq": None}
    elif isinstance(ev, WithdrawalCompleted | WithdrawalRefunded):
        done = "COMPLETED" if isinstance(ev, WithdrawalCompleted) else "REFUNDED"
        held = b.withdrawals_new.get(ev.external_id)
        if held is None:
            held = b.withdrawals_upd[ev.external_id] = {"external_id": ev.external_id}
        held["state"], held["closed_seq"] = done, seq
    elif isinstance(ev, SymbolAdded):
        s = ev.spec
        state.symbols[s.name] = SymbolInfo(s.base, s.quote, s.lot_units, s.quote_per_tick_lot)
        b.symbols.append({"symbol": s.name, "base": s.base, "quote": s.quote,
                          "lot_units": s.lot_units, "quote_per_tick_lot": s.quote_per_tick_lot,
                          "status": SymbolStatus.TRADING.name, "added_seq": seq})
    elif isinstance(ev, SymbolStatusChanged):
        b.symbol_status[ev.symbol] = SymbolStatus(ev.status).name
    elif isinstance(ev, KillSwitchChanged):
        _account(b, state, ev.account, seq)
        b.kill_switch[ev.account] = ev.active


def _balances(b: Batch, state: LedgerState, seq: int, changes: list[BalanceChanged]) -> None:
    bal = state.balances
    new, upd = b.balances_new, b.balances_upd
    for bc in changes:
        key = (bc.account, bc.asset)
        if bc.account not in state.accounts:
            _account(b, state, bc.account, seq)
        if key in new or key not in bal:
            new[key] = (bc.available, bc.frozen, seq)
        else:
            upd[key] = (bc.available, bc.frozen, seq)
        bal[key] = (bc.available, bc.frozen)


def build_batch(entries: Sequence[Entry], state: LedgerState) -> Batch:
    """Fold ``entries`` (contiguous from ``state.last_seq + 1``) into one Batch.

    Raises SequenceGap for a hole or an entry already applied, LedgerMismatch when
    events contradict each other. O(events)."""
    if not entries:
        raise ValueError("an empty batch")
    b = Batch(first_seq=entries[0][0])
    expect = state.last_seq + 1
    for seq, ts, events in entries:
        if seq != expect:
            raise SequenceGap(f"entry seq {seq} does not follow the ledger's {expect - 1}")
        expect += 1
        b.commands += 1
        if events:
            # postings first: it validates symbols and reads balances before this command
            postings, changes = command_postings(seq, events, state)
            _records(b, state, seq, ts, events)
            b.transfers.extend(postings)
            _balances(b, state, seq, changes)
        state.last_seq, state.last_ts = seq, ts
        b.last_seq, b.last_ts = seq, ts
    return b


__all__ = ["Batch", "Entry", "LedgerMismatch", "LedgerState", "SequenceGap", "build_batch",
           "chain_ref"]
