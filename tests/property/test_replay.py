"""Replay: a seeded 120k-command run, a real serialized snapshot in the middle, a restart.

The original engine and one restored from the msgpack-encoded snapshot apply the rest of
the commands: they must emit identical events and end with identical ``state_hash()``.
Per asset, the sum of all balances (fee account included) must equal what was deposited
minus what was withdrawn, counted from the events, not from the engine's own totals.
"""

from __future__ import annotations

import random

import msgspec

from chainbook.domain import commands as C
from chainbook.domain.enums import BreakerAction, OrderType, Side, Stp, TimeInForce
from chainbook.domain.events import (
    Deposited,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    SymbolStatusChanged,
    Trade,
    WithdrawalCompleted,
    WithdrawalHeld,
)
from chainbook.domain.instruments import SymbolSpec
from chainbook.engine import Engine
from chainbook.engine.state import EngineSnap, check, export_state, import_state, state_hash

SEED = 20_240_601
TOTAL = 200_000
SNAP_AT = 100_000
ACCOUNTS = 40
STEP_NS = 100_000  # 0.1 ms between commands

SPECS = (
    SymbolSpec(name="BTCUSDT", base="BTC", quote="USDT", lot_units=100, quote_per_tick_lot=1,
               maker_bps=8, taker_bps=20, band_bps=2_000, max_open_orders=200,
               default_stp=Stp.EXPIRE_MAKER),
    SymbolSpec(name="ETHUSDT", base="ETH", quote="USDT", lot_units=10, quote_per_tick_lot=3,
               maker_bps=0, taker_bps=15, min_notional=500, breaker_bps=120,
               breaker_window_ns=200_000_000, breaker_cooldown_ns=10_000_000,
               breaker_action=BreakerAction.HALT, default_stp=Stp.EXPIRE_TAKER),
)
FUNDS = {"USDT": 10**9, "BTC": 10**7, "ETH": 10**7}
STPS = list(Stp)


class Flow:
    """Seeded command generator that follows the engine's events to know open orders."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.mid = {"BTCUSDT": 10_000, "ETHUSDT": 2_000}
        self.open_ids: list[int] = []  # resting orders, for O(1) random choice
        self.where: dict[int, tuple[int, str, int]] = {}  # id -> (account, symbol, index)
        self.client: dict[int, str] = {}
        self.n_ext = 0
        self.n_cid = 0
        self.held: list[str] = []
        self.deposited: dict[str, int] = {}
        self.withdrawn: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    # --- what happened -----------------------------------------------------------

    def _add(self, oid: int, account: int, symbol: str) -> None:
        self.where[oid] = (account, symbol, len(self.open_ids))
        self.open_ids.append(oid)

    def _drop(self, oid: int) -> None:
        entry = self.where.pop(oid, None)
        if entry is None:
            return
        idx = entry[2]
        last = self.open_ids.pop()
        if last != oid:
            self.open_ids[idx] = last
            a, s, _ = self.where[last]
            self.where[last] = (a, s, idx)
        self.client.pop(oid, None)

    def observe(self, events: list[Event]) -> None:
        """Track resting orders and money in/out from one command's events."""
        counts = self.counts
        for e in events:
            k = type(e).__name__
            counts[k] = counts.get(k, 0) + 1
            if isinstance(e, OrderAccepted):
                if e.type != OrderType.MARKET and e.tif == TimeInForce.GTC:
                    self._add(e.order_id, e.account, e.symbol)
                    if e.client_id is not None:
                        self.client[e.order_id] = e.client_id
            elif isinstance(e, Trade):
                if e.maker_left == 0:
                    self._drop(e.maker_order_id)
                if e.taker_left == 0:
                    self._drop(e.taker_order_id)
            elif isinstance(e, (OrderCanceled, OrderExpired)):
                self._drop(e.order_id)
            elif isinstance(e, OrderAmended) and not e.kept_priority:
                counts["requeued"] = counts.get("requeued", 0) + 1
            elif isinstance(e, Deposited):
                self.deposited[e.asset] = self.deposited.get(e.asset, 0) + e.amount
            elif isinstance(e, WithdrawalHeld):
                self.held.append(e.external_id)
            elif isinstance(e, WithdrawalCompleted):
                self.withdrawn[e.asset] = self.withdrawn.get(e.asset, 0) + e.amount
            elif isinstance(e, SymbolStatusChanged) and e.reason.startswith("circuit"):
                counts["breaker_trips"] = counts.get("breaker_trips", 0) + 1

    # --- what to do next ---------------------------------------------------------

    def setup(self) -> list[C.Command]:
        cmds: list[C.Command] = [C.AddSymbol(s) for s in SPECS]
        for acct in range(1, ACCOUNTS + 1):
            for asset, amount in FUNDS.items():
                cmds.append(self._deposit(acct, asset, amount))
        return cmds

    def _deposit(self, acct: int, asset: str, amount: int) -> C.Deposit:
        self.n_ext += 1
        return C.Deposit(acct, asset, amount, f"tx{self.n_ext}:0")

    def _pick_open(self) -> tuple[int, int, str] | None:
        if not self.open_ids:
            return None
        oid = self.open_ids[self.rng.randrange(len(self.open_ids))]
        acct, sym, _ = self.where[oid]
        return oid, acct, sym

    def next(self) -> C.Command:
        rng = self.rng
        sym = "BTCUSDT" if rng.random() < 0.6 else "ETHUSDT"
        if rng.random() < 0.05:
            self.mid[sym] = max(200, self.mid[sym] + rng.choice((-3, -1, 1, 3)))
        mid = self.mid[sym]
        acct = rng.randint(1, ACCOUNTS)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        sign = 1 if side == Side.BUY else -1
        stp = rng.choice(STPS) if rng.random() < 0.3 else Stp.DEFAULT
        r = rng.random()
        if r < 0.38:  # passive-ish GTC around the mid
            price = mid - sign * rng.randint(-3, 15)
            cid = None
            if rng.random() < 0.2:
                self.n_cid += 1
                cid = f"c{self.n_cid}"
            return C.PlaceOrder(acct, sym, side, OrderType.LIMIT, rng.randint(1, 20), price,
                                TimeInForce.GTC, cid, None, stp)
        if r < 0.45:  # aggressive IOC / FOK
            tif = TimeInForce.IOC if rng.random() < 0.75 else TimeInForce.FOK
            price = mid + sign * rng.randint(0, 10)
            return C.PlaceOrder(acct, sym, side, OrderType.LIMIT, rng.randint(1, 30), price,
                                tif, None, None, stp)
        if r < 0.48:  # post-only, sometimes rejected for crossing
            price = mid - sign * rng.randint(-2, 8)
            return C.PlaceOrder(acct, sym, side, OrderType.LIMIT_MAKER, rng.randint(1, 10),
                                price, TimeInForce.GTC, None, None, stp)
        if r < 0.52:  # market by quantity
            return C.PlaceOrder(acct, sym, side, OrderType.MARKET, rng.randint(1, 15), None,
                                TimeInForce.IOC, None, None, stp)
        if r < 0.54:  # market by quote amount
            quote = rng.randint(1, 20) * mid * SPECS[sym == "ETHUSDT"].quote_per_tick_lot
            return C.PlaceOrder(acct, sym, side, OrderType.MARKET, None, None,
                                TimeInForce.IOC, None, quote, stp)
        picked = self._pick_open()
        if r < 0.70 and picked is not None:  # amend (the "move" of exchange-core)
            oid, acct, sym = picked
            m = rng.random()
            if m < 0.6:
                return C.AmendOrder(acct, sym, oid, None, self.mid[sym] + rng.randint(-15, 15))
            if m < 0.85:
                return C.AmendOrder(acct, sym, oid, None, None, rng.randint(1, 12))
            return C.AmendOrder(acct, sym, oid, None, self.mid[sym] + rng.randint(-5, 5),
                                rng.randint(1, 25))
        if r < 0.86 and picked is not None:  # cancel
            oid, acct, sym = picked
            if oid in self.client and rng.random() < 0.5:
                return C.CancelOrder(acct, sym, None, self.client[oid])
            return C.CancelOrder(acct, sym, oid, None)
        if r < 0.87:
            return C.CancelAll(acct, sym)
        if r < 0.88 and self.held:  # finish a withdrawal
            ext = self.held.pop(rng.randrange(len(self.held)))
            return C.WithdrawComplete(ext) if rng.random() < 0.7 else C.WithdrawRefund(ext)
        if r < 0.89:
            self.n_ext += 1
            asset = rng.choice(("USDT", "BTC", "ETH"))
            return C.WithdrawHold(acct, asset, rng.randint(1, 10_000), f"w{self.n_ext}")
        if r < 0.895:  # a redelivered deposit: must be rejected
            return C.Deposit(acct, "USDT", 5, f"tx{rng.randint(1, self.n_ext)}:0")
        if r < 0.91:
            return self._deposit(acct, rng.choice(("USDT", "BTC", "ETH")), rng.randint(1, 10**6))
        price = mid - sign * rng.randint(1, 15)
        return C.PlaceOrder(acct, sym, side, OrderType.LIMIT, rng.randint(1, 20), price,
                            TimeInForce.GTC, None, None, stp)


def _conserved(engine: Engine, flow: Flow) -> None:
    totals: dict[str, int] = {}
    for assets in engine.balances.acct.values():
        for asset, (avail, frozen) in assets.items():
            assert avail >= 0 and frozen >= 0
            totals[asset] = totals.get(asset, 0) + avail + frozen
    for asset in set(totals) | set(flow.deposited):
        expect = flow.deposited.get(asset, 0) - flow.withdrawn.get(asset, 0)
        assert totals.get(asset, 0) == expect, asset


def test_replay_from_a_serialized_snapshot_gives_identical_events_and_state():
    flow = Flow(SEED)
    original = Engine()
    seq, ts = 0, 1_700_000_000 * 10**9
    for cmd in flow.setup():
        seq += 1
        flow.observe(original.apply(cmd, seq, ts))
    while seq < SNAP_AT:
        seq += 1
        ts += STEP_NS
        flow.observe(original.apply(flow.next(), seq, ts))
        if seq % 10_000 == 0:
            check(original)
    check(original)

    blob = msgspec.msgpack.encode(export_state(original))
    restored = import_state(msgspec.msgpack.decode(blob, type=EngineSnap))
    check(restored)
    assert state_hash(restored) == state_hash(original)
    resting_at_snapshot = sum(len(s.orders) for s in restored.symbols.values())
    assert resting_at_snapshot > 100

    trades_before = flow.counts.get("Trade", 0)
    while seq < TOTAL:
        seq += 1
        ts += STEP_NS
        cmd = flow.next()
        events = original.apply(cmd, seq, ts)
        assert restored.apply(cmd, seq, ts) == events, f"diverged at seq {seq}: {cmd}"
        flow.observe(events)
        if seq % 10_000 == 0:
            check(original)
            check(restored)

    check(original)
    check(restored)
    assert state_hash(restored) == state_hash(original)
    _conserved(original, flow)
    _conserved(restored, flow)
    # the run exercised what it claims to
    c = flow.counts
    assert c.get("Trade", 0) - trades_before > 5_000
    assert c["OrderAmended"] > 5_000 and c["requeued"] > 1_000
    assert c["OrderCanceled"] > 5_000 and c["OrderExpired"] > 1_000
    assert c["WithdrawalCompleted"] > 10 and c["OrderRejected"] > 100
    assert c.get("breaker_trips", 0) > 0
