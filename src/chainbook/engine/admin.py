"""Admin commands and the circuit breaker: symbols, statuses, the account kill switch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chainbook.domain import commands as C
from chainbook.domain.enums import CancelReason, Reject, SymbolStatus
from chainbook.domain.events import (
    Event,
    KillSwitchChanged,
    OrderRejected,
    SymbolAdded,
    SymbolStatusChanged,
)
from chainbook.engine.symbol_state import SymbolState

if TYPE_CHECKING:
    from chainbook.engine.engine import Engine


def add_symbol(engine: Engine, cmd: C.AddSymbol, ev: list[Event]) -> None:
    """List a new symbol; reject a duplicate name or an unusable spec."""
    spec = cmd.spec
    if spec.name in engine.symbols:
        ev.append(OrderRejected(-1, Reject.SYMBOL_EXISTS, None, 9))
        return
    if spec.validate() is not None:
        ev.append(OrderRejected(-1, Reject.INVALID_SYMBOL_SPEC, None, 9))
        return
    engine.symbols[spec.name] = SymbolState(spec, engine.book_factory())
    ev.append(SymbolAdded(spec))


def set_status(engine: Engine, cmd: C.SetSymbolStatus, ev: list[Event]) -> None:
    """Halt, resume or set cancel-only by hand; clears any breaker cooldown."""
    sym = engine.symbols.get(cmd.symbol)
    if sym is None:
        ev.append(OrderRejected(-1, Reject.UNKNOWN_SYMBOL, None, 10))
        return
    sym.status = SymbolStatus(cmd.status)
    sym.until_ts = 0
    ev.append(SymbolStatusChanged(cmd.symbol, sym.status, "admin", 0))


def kill_switch(engine: Engine, cmd: C.SetKillSwitch, ev: list[Event]) -> None:
    """Turn an account's kill switch on (cancel all its orders everywhere, block new
    ones and amends) or off (accept orders again)."""
    if cmd.active:
        engine.blocked.add(cmd.account)
        for sym in engine.symbols.values():
            for order in sym.open_orders_of(cmd.account):
                engine.cancel_resting(sym, order, CancelReason.KILL_SWITCH, ev)
            engine.flush_book(sym, ev)  # one symbol at a time: apply() flushes only one
        engine._dirty = None
    else:
        engine.blocked.discard(cmd.account)
    ev.append(KillSwitchChanged(cmd.account, cmd.active))


def trip_breaker(engine: Engine, sym: SymbolState, price: int, ts: int,
                 ev: list[Event]) -> None:
    """Stop the symbol: the trade at ``price`` would move more than breaker_bps within
    the window.  The status applies from this very command; it lifts at the first order
    command whose ts reaches ``until_ts`` (never, if the cooldown is 0: admin resumes)."""
    spec = sym.spec
    bounds = sym.window_bounds(ts)
    lo, hi = bounds if bounds is not None else (price, price)
    sym.status = SymbolStatus(int(spec.breaker_action))
    sym.until_ts = ts + spec.breaker_cooldown_ns if spec.breaker_cooldown_ns else 0
    reason = (f"circuit_breaker: trade at {price} is more than {spec.breaker_bps} bps "
              f"from the range {lo}..{hi} of the last {spec.breaker_window_ns} ns")
    ev.append(SymbolStatusChanged(spec.name, sym.status, reason, sym.until_ts))
