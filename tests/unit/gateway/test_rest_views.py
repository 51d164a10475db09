"""Account views: user-data events in spec order, statuses, replay gives the same views."""

from __future__ import annotations

import gc

import msgspec
from restfixtures import UNIT, Gateway, Signer

from chainbook.domain.commands import AmendOrder, Deposit, PlaceOrder, SetKillSwitch
from chainbook.domain.enums import OrderType, Side, Stp, TimeInForce
from chainbook.domain.events import OrderAccepted
from chainbook.gateway.views import AccountViews

ORDER = "/api/v3/order"


def _limit(side: str, price: str, qty: str) -> dict[str, str]:
    return {"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": "GTC",
            "quantity": qty, "price": price}


def test_fill_events_in_spec_order(gw: Gateway, alice: Signer, bob: Signer) -> None:
    alice.ccxt("POST", ORDER, _limit("SELL", "100.00", "0.3"))
    gw.sink.user.clear()
    bob.ccxt("POST", ORDER, _limit("BUY", "100.00", "0.5"))
    seq = [(acct, p["e"], p.get("x"), p.get("X")) for acct, p in gw.sink.user]
    a, b = gw.alice.account, gw.bob.account
    assert seq[:3] == [
        (b, "executionReport", "NEW", "NEW"),
        (a, "executionReport", "TRADE", "FILLED"),
        (b, "executionReport", "TRADE", "PARTIALLY_FILLED"),
    ]
    assert sorted(seq[3:]) == [(a, "outboundAccountPosition", None, None),
                               (b, "outboundAccountPosition", None, None)]
    maker = gw.sink.user[1][1]
    assert maker["m"] is True and maker["l"] == "0.30000000" and maker["L"] == "100.00000000"
    assert maker["n"] == "0.03000000" and maker["N"] == "USDT" and maker["t"] == 1
    assert maker["Y"] == "30.00000000" and maker["Z"] == "30.00000000"
    taker = gw.sink.user[2][1]
    assert taker["m"] is False and taker["z"] == "0.30000000" and taker["n"] == "0.06000000"
    pos = {acct: p for acct, p in gw.sink.user[3:]}
    assets = {x["a"]: x for x in pos[b]["B"]}
    assert set(assets) == {"BTC", "USDT"} and assets["BTC"]["f"] == "10.30000000"


def test_cancel_expire_and_deposit_events(gw: Gateway, alice: Signer, bob: Signer) -> None:
    placed = alice.ccxt("POST", ORDER, _limit("BUY", "90.00", "0.1")).json()
    gw.sink.user.clear()
    reply = alice.ccxt("DELETE", ORDER, {"symbol": "BTCUSDT", "orderId": placed["orderId"],
                                         "newClientOrderId": "my-cancel-1"}).json()
    assert (reply["clientOrderId"], reply["origClientOrderId"]) == (
        "my-cancel-1", placed["clientOrderId"])
    kinds = [(p["e"], p.get("x")) for p in gw.sink.events(gw.alice.account)]
    assert kinds == [("executionReport", "CANCELED"), ("outboundAccountPosition", None)]
    report = gw.sink.events(gw.alice.account)[0]
    # spec 7.3: c is the cancel's own id, C the order's (as the REST reply says)
    assert (report["c"], report["C"], report["X"]) == (
        "my-cancel-1", placed["clientOrderId"], "CANCELED")
    gw.sink.user.clear()
    bob.ccxt("POST", ORDER, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                             "quantity": "0.1"})
    assert [p.get("x") for p in gw.sink.events(gw.bob.account)] == ["NEW", "EXPIRED"]
    gw.sink.user.clear()
    gw.core.apply(Deposit(gw.alice.account, "BTC", UNIT, "tx-1"))
    upd, pos = gw.sink.events(gw.alice.account)
    assert upd["e"] == "balanceUpdate" and upd["a"] == "BTC" and upd["d"] == "1.00000000"
    assert pos["e"] == "outboundAccountPosition" and pos["B"][0]["f"] == "11.00000000"


def test_stp_expiry_is_expired_in_match(gw: Gateway, alice: Signer) -> None:
    maker = alice.ccxt("POST", ORDER, _limit("SELL", "100.00", "0.1")).json()
    r = alice.ccxt("POST", ORDER, {**_limit("BUY", "100.00", "0.1"),
                                   "selfTradePreventionMode": "EXPIRE_TAKER"}).json()
    assert r["status"] == "EXPIRED_IN_MATCH" and r["selfTradePreventionMode"] == "EXPIRE_TAKER"
    q = alice.ccxt("GET", ORDER, {"symbol": "BTCUSDT", "orderId": maker["orderId"]}).json()
    assert q["status"] == "NEW"


def test_kill_switch_shows_in_account(gw: Gateway, alice: Signer) -> None:
    alice.ccxt("POST", ORDER, _limit("BUY", "90.00", "0.1"))
    gw.core.apply(SetKillSwitch(gw.alice.account, True))
    acct = alice.ccxt("GET", "/api/v3/account").json()
    assert acct["canTrade"] is False
    orders = alice.ccxt("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"}).json()
    assert [o["status"] for o in orders] == ["CANCELED"]


def test_replay_rebuilds_the_same_views(gw: Gateway, alice: Signer, bob: Signer) -> None:
    alice.ccxt("POST", ORDER, _limit("SELL", "100.00", "0.3"))
    bob.ccxt("POST", ORDER, _limit("BUY", "100.00", "0.5"))
    gw.core.apply(PlaceOrder(gw.alice.account, "BTCUSDT", Side.SELL, OrderType.LIMIT, 10_000,
                             10_000, TimeInForce.GTC, None, None, Stp.NONE))
    replayed = AccountViews(gw.core, None, clock_ms=gw.clock)
    history = [type(a)(a.seq, a.ts, None, a.events) for a in gw.core.log]
    replayed.on_batch(history, False)
    for acct in (gw.alice.account, gw.bob.account):
        assert replayed.account(acct).balances == gw.views.account(acct).balances
        assert replayed.trades(acct, "BTCUSDT") == gw.views.trades(acct, "BTCUSDT")
        live = gw.views.all_orders(acct, "BTCUSDT")
        again = replayed.all_orders(acct, "BTCUSDT")
        # the STP mode comes from OrderAccepted, not from the command (absent in replay)
        assert [(v.order_id, v.status, v.executed, v.cum_quote, v.stp) for v in again] == [
            (v.order_id, v.status, v.executed, v.cum_quote, v.stp) for v in live]
    alices = replayed.all_orders(gw.alice.account, "BTCUSDT")
    assert [v.stp for v in alices] == [Stp.EXPIRE_MAKER, Stp.NONE]  # default, then NONE


def test_an_old_journal_without_the_stp_mode_falls_back_to_the_default(
        gw: Gateway) -> None:
    """Journals written before OrderAccepted carried ``stp`` decode it as -1: the view
    takes the command's mode, and in a replay (no command) the symbol's default."""
    gw.core.apply(PlaceOrder(gw.alice.account, "BTCUSDT", Side.SELL, OrderType.LIMIT, 10_000,
                             10_000, TimeInForce.GTC, None, None, Stp.EXPIRE_BOTH))
    last = gw.core.log[-1]
    old_events = [msgspec.structs.replace(e, stp=-1) if isinstance(e, OrderAccepted) else e
                  for e in last.events]
    live = AccountViews(gw.core, None, clock_ms=gw.clock)
    live.on_batch([type(last)(last.seq, last.ts, last.command, old_events)], True)
    replayed = AccountViews(gw.core, None, clock_ms=gw.clock)
    replayed.on_batch([type(last)(last.seq, last.ts, None, old_events)], False)
    oid = next(e.order_id for e in old_events if isinstance(e, OrderAccepted))
    assert live.orders[oid].stp == Stp.EXPIRE_BOTH
    assert replayed.orders[oid].stp == Stp.EXPIRE_MAKER


def test_history_is_bounded(gw: Gateway) -> None:
    views = AccountViews(gw.core, None, clock_ms=gw.clock, max_history=8)
    gw.core.listeners.append(views.on_batch)
    for i in range(30):
        gw.core.apply(PlaceOrder(gw.alice.account, "BTCUSDT", Side.BUY, OrderType.LIMIT, 10_000,
                                 10_000 + i, TimeInForce.IOC, f"c{i}"))
    kept = views.all_orders(gw.alice.account, "BTCUSDT")
    assert 8 <= len(kept) <= 9 and kept[-1].client_id == "c29"
    assert views.order(gw.alice.account, "BTCUSDT", client_id="c0") is None


def test_kept_history_is_not_tracked_by_the_collector(gw: Gateway, alice: Signer,
                                                     bob: Signer) -> None:
    """Kept orders and trades are no work for the cyclic GC: with tens of thousands of
    them, every full collection otherwise paused the whole server for 20-40 ms."""
    alice.ccxt("POST", ORDER, _limit("SELL", "100.00", "0.3"))
    bob.ccxt("POST", ORDER, _limit("BUY", "100.00", "0.5"))
    views = gw.views.all_orders(gw.alice.account, "BTCUSDT") + gw.views.all_orders(
        gw.bob.account, "BTCUSDT")
    rows = gw.views.trades(gw.alice.account, "BTCUSDT") + gw.views.trades(
        gw.bob.account, "BTCUSDT")
    assert len(views) == 2 and len(rows) == 2
    assert not any(gc.is_tracked(x) for x in [*views, *rows])
    views[1].status = "CANCELED"  # still a mutable view of an order
    assert gw.views.all_orders(gw.bob.account, "BTCUSDT")[0].status == "CANCELED"


def test_amend_reports_replaced(gw: Gateway, alice: Signer) -> None:
    oid = alice.ccxt("POST", ORDER, _limit("BUY", "90.00", "0.2")).json()["orderId"]
    gw.sink.user.clear()
    gw.core.apply(AmendOrder(gw.alice.account, "BTCUSDT", oid, new_qty=10_000))
    report = gw.sink.events(gw.alice.account)[0]
    assert (report["x"], report["X"], report["q"]) == ("REPLACED", "NEW", "0.10000000")
    q = alice.ccxt("GET", ORDER, {"symbol": "BTCUSDT", "orderId": oid}).json()
    assert q["origQty"] == "0.10000000"
