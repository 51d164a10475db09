"""Postings and batch rows are a pure function of the events: they balance and they
reproduce every BalanceChanged."""

from __future__ import annotations

import random

import pytest

from chainbook.domain import commands as C
from chainbook.domain.enums import OrderType, Side, TimeInForce
from chainbook.domain.events import BalanceChanged, Event, Trade
from chainbook.engine import Engine
from chainbook.ledger.batch import LedgerState, SequenceGap, build_batch, chain_ref
from chainbook.ledger.postings import (
    LedgerMismatch,
    SymbolInfo,
    Transfer,
    command_legs,
    command_postings,
    explicit_legs,
    sums_by_asset,
    trade_legs,
)
from chainbook.ledger.schema import AVAILABLE, FEE_ACCOUNT, FROZEN, WORLD_ACCOUNT
from chainbook.ledger.states import order_settlement, trade_settlement

BTC = SymbolInfo("BTC", "USDT", 100, 1)
TS = 1_700_000_000_000_000_000


def _trade(**kw: int) -> Trade:
    f = dict(trade_id=7, symbol="BTCUSDT", price=300, qty=4, quote_amount=1200, taker_side=0,
             maker_order_id=1, taker_order_id=2, maker_account=1, taker_account=2,
             maker_fee=1, taker_fee=2, maker_left=0, taker_left=3)
    f.update(kw)
    return Trade(**f)  # type: ignore[arg-type]


@pytest.mark.parametrize("taker_side", [0, 1])
def test_trade_legs_balance_per_asset_and_pay_from_frozen(taker_side):
    legs = trade_legs(_trade(taker_side=taker_side), BTC)
    per_asset: dict[str, int] = {}
    for _tid, _acct, asset, _bucket, _kind, amount in legs:
        per_asset[asset] = per_asset.get(asset, 0) + amount
    assert per_asset == {"USDT": 0, "BTC": 0}
    buyer, seller = (2, 1) if taker_side == 0 else (1, 2)
    bfee, sfee = (2, 1) if taker_side == 0 else (1, 2)
    assert (buyer, "USDT", FROZEN, "trade", -(1200 + bfee)) in [leg[1:] for leg in legs]
    assert (seller, "USDT", AVAILABLE, "trade", 1200 - sfee) in [leg[1:] for leg in legs]
    assert (FEE_ACCOUNT, "USDT", AVAILABLE, "fee", 3) in [leg[1:] for leg in legs]
    assert (seller, "BTC", FROZEN, "trade", -400) in [leg[1:] for leg in legs]
    assert (buyer, "BTC", AVAILABLE, "trade", 400) in [leg[1:] for leg in legs]


def test_zero_fee_leg_is_left_out_and_bad_notional_is_refused():
    legs = trade_legs(_trade(maker_fee=0, taker_fee=0), BTC)
    assert len(legs) == 4 and all(leg[5] for leg in legs)
    with pytest.raises(LedgerMismatch, match="quote amount"):
        trade_legs(_trade(quote_amount=1201), BTC)


def test_chain_ref_parses_only_txhash_logindex():
    h = "0x" + "Ab" * 32
    assert chain_ref(f"{h}:12") == (h.lower(), 12)
    assert chain_ref("demo:alice:USDT") == (None, None)
    assert chain_ref(f"{h}:") == (None, None)
    assert chain_ref("0x12:3") == (None, None)


def test_settlement_states():
    assert order_settlement(None, 10) == "NONE"
    assert order_settlement(11, 10) == "SETTLING"
    assert order_settlement(10, 10) == "SETTLED"
    assert trade_settlement(11, 10) == "MATCHED"
    assert trade_settlement(9, 10) == "SETTLED"


def _random_session(seed: int, n: int) -> list[tuple[int, int, list[Event]]]:
    """A seeded engine session (no I/O): entries (seq, ts, events)."""
    from chainbook.domain.instruments import SymbolSpec
    rng = random.Random(seed)
    eng = Engine()
    spec = SymbolSpec("BTCUSDT", "BTC", "USDT", lot_units=100, quote_per_tick_lot=1,
                      maker_bps=10, taker_bps=25)
    cmds: list[C.Command] = [C.AddSymbol(spec)]
    for a in range(1, 6):
        cmds += [C.Deposit(a, "USDT", 10**9, f"u{a}"), C.Deposit(a, "BTC", 10**7, f"b{a}")]
    for i in range(n):
        a, side = rng.randint(1, 5), Side(rng.randrange(2))
        r = rng.random()
        if r < 0.7:
            tif = TimeInForce.IOC if r < 0.15 else TimeInForce.GTC
            cmds.append(C.PlaceOrder(a, "BTCUSDT", side, OrderType.LIMIT, rng.randint(1, 9),
                                     1000 + rng.randint(-5, 5), tif))
        elif r < 0.8:
            cmds.append(C.PlaceOrder(a, "BTCUSDT", side, OrderType.MARKET, rng.randint(1, 5),
                                     tif=TimeInForce.IOC))
        elif r < 0.9:
            cmds.append(C.CancelAll(a, "BTCUSDT"))
        elif r < 0.95:
            cmds.append(C.WithdrawHold(a, "USDT", rng.randint(1, 1000), f"w{i}"))
        else:
            cmds.append(C.WithdrawComplete(f"w{i - 1}") if rng.random() < 0.5
                        else C.WithdrawRefund(f"w{i - 1}"))
    out = []
    for seq, cmd in enumerate(cmds, 1):
        out.append((seq, TS + seq, eng.apply(cmd, seq, TS + seq)))
    return out


def test_postings_reproduce_every_balance_changed_and_balance_per_command():
    entries = _random_session(3, 600)
    view = LedgerState()  # only its balance/symbol lookups are used here
    applied: dict[tuple[int, str, str], int] = {}
    trades = 0
    for seq, _ts, events in entries:
        for ev in events:
            if type(ev).__name__ == "SymbolAdded":
                s = ev.spec  # type: ignore[attr-defined]
                view.symbols[s.name] = SymbolInfo(s.base, s.quote, s.lot_units,
                                                  s.quote_per_tick_lot)
        rows, changes = command_postings(seq, events, view)
        for t in map(Transfer._make, rows):
            assert t.seq == seq and t.amount > 0
        legs = command_legs(rows, [e for e in events if isinstance(e, Trade)], view)
        assert all(v == 0 for v in sums_by_asset(legs).values()), seq
        for _tid, acct, asset, bucket, _kind, amount in legs:
            assert amount != 0
            key = (acct, asset, bucket)
            applied[key] = applied.get(key, 0) + amount
        for bc in changes:  # the postings alone, summed from zero, give the new values
            assert applied.get((bc.account, bc.asset, AVAILABLE), 0) == bc.available
            assert applied.get((bc.account, bc.asset, FROZEN), 0) == bc.frozen
            view.balances[(bc.account, bc.asset)] = (bc.available, bc.frozen)
        trades += sum(isinstance(e, Trade) for e in events)
    assert trades > 50
    world = {k: v for k, v in applied.items() if k[0] == WORLD_ACCOUNT}
    assert world and all(v < 0 for v in world.values())


def test_a_tampered_fee_is_a_mismatch_not_new_money():
    entries = _random_session(4, 300)
    state = LedgerState()
    for i, (seq, ts, events) in enumerate(entries):
        trade = next((e for e in events if isinstance(e, Trade)), None)
        if trade is not None and i > 20:
            bad = [Trade(*[getattr(e, f) if f != "taker_fee" else e.taker_fee + 1
                           for f in e.__struct_fields__]) if e is trade else e
                   for e in events]
            with pytest.raises(LedgerMismatch, match="total moved"):
                build_batch([(seq, ts, bad)], state)
            return
        build_batch([(seq, ts, events)], state)
    pytest.fail("no trade in the session")


def test_batch_collapses_rows_and_rejects_gaps():
    entries = _random_session(5, 400)
    state = LedgerState()
    b = build_batch(entries, state)
    assert b.first_seq == 1 and b.last_seq == len(entries) and state.last_seq == len(entries)
    final: dict[tuple[int, str], tuple[int, int]] = {}
    for _seq, _ts, events in entries:
        for ev in events:
            if isinstance(ev, BalanceChanged):
                final[(ev.account, ev.asset)] = (ev.available, ev.frozen)
    assert {k: (r[0], r[1]) for k, r in b.balances_new.items()} == final
    assert not b.balances_upd and not b.orders_upd  # one batch from seq 1: all rows new
    filled = {r["order_id"]: r for r in b.orders_new.values()}
    for t in b.trades:
        assert filled[t[9]]["settlement"] == "SETTLED" == filled[t[10]]["settlement"]
    with pytest.raises(SequenceGap):
        build_batch([(len(entries) + 2, TS, [])], state)


def _reference_transfers(seq: int, events: list[Event], view: LedgerState) -> list[tuple]:
    """The generic derivation (explicit_legs for every event, then a reserve pair for
    what they leave unexplained), turned into transfer rows by pairing the legs: the
    ledger's hot path must equal it."""
    legs: list[tuple] = []
    moves: list[tuple] = []
    for ev in events:
        got = explicit_legs(ev, view) or []
        legs += got
        if got and not isinstance(ev, Trade):
            moves += [got]
    now: dict[tuple[int, str], tuple[int, int]] = {}
    net: dict[tuple[int, str], list[int]] = {}
    for _tid, acct, asset, bucket, _kind, amount in legs:
        net.setdefault((acct, asset), [0, 0])[0 if bucket == AVAILABLE else 1] += amount
    for bc in (e for e in events if isinstance(e, BalanceChanged)):
        key = (bc.account, bc.asset)
        old = now.get(key, view.balance(*key))
        d = net.pop(key, (0, 0))
        r_a = bc.available - old[0] - d[0]
        if r_a:
            moves += [[(None, bc.account, bc.asset, AVAILABLE, "reserve", r_a),
                       (None, bc.account, bc.asset, FROZEN, "reserve", -r_a)]]
        now[key] = (bc.available, bc.frozen)
    out = []
    for i, (a, b) in enumerate(moves):
        src, dst = (a, b) if a[5] < 0 else (b, a)
        assert src[5] == -dst[5] and src[4] == dst[4] and src[2] == dst[2]
        out.append((seq, i, src[4], src[2], src[1], src[3], dst[1], dst[3], dst[5]))
    return out


def test_the_trade_fast_path_equals_the_generic_postings():
    entries = _random_session(6, 800)
    state = LedgerState()
    zero_fee = _trade(maker_fee=0, taker_fee=0, taker_left=0)
    rows = 0
    for seq, ts, events in entries:
        want = _reference_transfers(seq, events, state)
        got, _ = command_postings(seq, events, state)
        assert got == want, seq
        rows += len(got)
        build_batch([(seq, ts, events)], state)
    assert rows > 400
    # a zero fee leaves its leg out; the reserves released are transfers 0 and 1
    state = LedgerState(symbols={"BTCUSDT": BTC})
    state.balances.update({(1, "BTC"): (0, 400), (2, "USDT"): (0, 1300)})
    ev = [zero_fee, BalanceChanged(1, "BTC", 0, 0), BalanceChanged(1, "USDT", 1200, 0),
          BalanceChanged(2, "BTC", 400, 0), BalanceChanged(2, "USDT", 100, 0)]
    got, _ = command_postings(99, ev, state)
    assert got == _reference_transfers(99, ev, state)
    assert got == [(99, 0, "reserve", "USDT", 2, FROZEN, 2, AVAILABLE, 100)]
    assert len(command_legs(got, [zero_fee], state)) == 2 + 4
