"""ccxt.pro against a real server: a watched book stays identical to REST depth through a
burst of orders; public streams deliver; user data arrives for every order change."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import ccxt
from gwclient import D, Server, fee, pro_client

BTC = "BTC/USDT"
TIMEOUT = 10.0


async def _until(watch: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool],
                 timeout: float = TIMEOUT) -> Any:
    """Call ``watch`` until ``ok(result)``; fail after ``timeout`` seconds."""
    async def loop() -> Any:
        while True:
            result = await watch()
            if ok(result):
                return result

    return await asyncio.wait_for(loop(), timeout)


def _levels(side: Any) -> list[tuple[Decimal, Decimal]]:
    return [(D(p), D(q)) for p, q in side]


async def _book_matches_rest(pub: Any, watcher: asyncio.Task[None]) -> int:
    """Wait until the watched book reaches REST's lastUpdateId; compare every level."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        rest = await pub.fetch_order_book(BTC, limit=1000)
        while True:
            if watcher.done():
                watcher.result()  # raises ChecksumError & co.
                raise AssertionError("the watch_order_book loop ended")
            local = pub.orderbooks[BTC]
            if local["nonce"] >= rest["nonce"] or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.02)
        if local["nonce"] == rest["nonce"]:
            assert _levels(local["bids"]) == _levels(rest["bids"])
            assert _levels(local["asks"]) == _levels(rest["asks"])
            return int(rest["nonce"])
        assert local["nonce"] > rest["nonce"], (
            f"the watched book is stuck at {local['nonce']} < REST {rest['nonce']}")


async def _burst(srv: Server) -> tuple[int, int]:
    pub, a, b = pro_client(srv, None), pro_client(srv, "demo1"), pro_client(srv, "demo2")
    try:
        await asyncio.gather(pub.load_markets(), a.load_markets(), b.load_markets())
        await a.create_order(BTC, "limit", "buy", 0.001, 29900.0)
        await b.create_order(BTC, "limit", "sell", 0.001, 30100.0)
        first = await pub.watch_order_book(BTC)
        assert first["bids"] and first["asks"]

        async def keep_watching() -> None:
            while True:
                await pub.watch_order_book(BTC)

        watcher = asyncio.create_task(keep_watching())
        rng = random.Random(20240611)
        open_ids: dict[Any, list[str]] = {a: [], b: []}
        traded = 0

        async def act(ex: Any) -> None:
            nonlocal traded
            ids = open_ids[ex]
            if ids and rng.random() < 0.25:
                oid = ids.pop(rng.randrange(len(ids)))
                try:
                    await ex.cancel_order(oid, BTC)
                except ccxt.OrderNotFound:
                    pass  # filled (or expired by self-trade prevention) meanwhile
                return
            side = rng.choice(("buy", "sell"))
            price = 29950.0 + rng.randrange(0, 200) * 0.5
            qty = rng.randrange(2, 30) * 0.0001
            order = await ex.create_order(BTC, "limit", side, qty, price)
            traded += bool(order["filled"])
            if order["status"] == "open":
                ids.append(order["id"])

        checks = 0
        for step in range(50):  # 200 orders/cancels, four at a time from both accounts
            await asyncio.gather(act(a), act(b), act(a), act(b))
            if step % 10 == 9:
                await _book_matches_rest(pub, watcher)
                checks += 1
        watcher.cancel()
        return checks, traded
    finally:
        await asyncio.gather(pub.close(), a.close(), b.close())


def test_watch_order_book_equals_rest_depth_through_a_burst(clean: Server) -> None:
    checks, traded = asyncio.run(_burst(clean))
    assert checks == 5 and traded > 10  # the burst did cross the book


async def _public_streams(srv: Server) -> None:
    pub, a, b = pro_client(srv, None), pro_client(srv, "demo1"), pro_client(srv, "demo2")
    try:
        await asyncio.gather(pub.load_markets(), a.load_markets(), b.load_markets())
        watching = asyncio.create_task(pub.watch_trades(BTC))
        placed: set[str] = set()
        for _ in range(20):  # trade until the (asynchronous) subscription has caught one
            await a.create_order(BTC, "limit", "sell", 0.00123, 30001.0)
            taker = await b.create_order(BTC, "limit", "buy", 0.00123, 30001.0)
            placed.update(t["id"] for t in taker["trades"])
            done, _ = await asyncio.wait({watching}, timeout=0.5)
            if done:
                break
        trades = watching.result()
        assert trades, "watch_trades returned nothing"
        for t in trades:
            assert t["id"] in placed and t["symbol"] == BTC and t["side"] == "buy"
            assert (D(t["price"]), D(t["amount"])) == (Decimal("30001"), Decimal("0.00123"))
        ticker = await asyncio.wait_for(pub.watch_ticker(BTC), TIMEOUT)
        assert ticker["symbol"] == BTC and D(ticker["last"]) == Decimal("30001")
    finally:
        await asyncio.gather(pub.close(), a.close(), b.close())


def test_watch_trades_and_ticker_receive_data(clean: Server) -> None:
    asyncio.run(_public_streams(clean))


async def _user_data(srv: Server) -> None:
    a, b = pro_client(srv, "demo1"), pro_client(srv, "demo2")
    try:
        await asyncio.gather(a.load_markets(), b.load_markets())
        await a.authenticate()  # userDataStream.subscribe.signature, confirmed
        start = await a.fetch_balance()

        def watch(cid: str, status: str, filled: str) -> asyncio.Task[Any]:
            """Watch a's orders until client order ``cid`` shows ``status`` and ``filled``."""
            return asyncio.create_task(_until(lambda: a.watch_orders(BTC), lambda orders: any(
                o["clientOrderId"] == cid and o["status"] == status
                and D(o["filled"]) == Decimal(filled) for o in orders)))

        # 1. NEW: a resting bid (the balance moves into "used")
        new_seen = watch("ud-bid", "open", "0")
        balance = asyncio.create_task(_until(
            a.watch_balance, lambda bal: D(bal["USDT"]["used"]) > D(start["USDT"]["used"])))
        await asyncio.sleep(0.05)
        bid = await a.create_order(BTC, "limit", "buy", 0.003, 29990.0,
                                   {"clientOrderId": "ud-bid"})
        await new_seen
        bal = await balance
        reserve = Decimal("29990") * Decimal("0.003") + fee(Decimal("29990"), Decimal("0.003"))
        assert D(bal["USDT"]["used"]) == D(start["USDT"]["used"]) + reserve

        # 2. TRADE: partially filled by demo2; the trade reaches watch_my_trades too
        partial = watch("ud-bid", "open", "0.001")
        mine = asyncio.create_task(_until(lambda: a.watch_my_trades(BTC),
                                          lambda ts: any(t["order"] == bid["id"] for t in ts)))
        await asyncio.sleep(0.05)
        sell = await b.create_order(BTC, "limit", "sell", 0.001, 29990.0)
        await partial
        trade = next(t for t in await mine if t["order"] == bid["id"])
        assert trade["id"] == sell["trades"][0]["id"] and trade["takerOrMaker"] == "maker"
        assert (D(trade["price"]), D(trade["amount"])) == (Decimal("29990"), Decimal("0.001"))
        assert D(trade["fee"]["cost"]) == fee(Decimal("29990"), Decimal("0.001"))

        # 3. CANCELED with the filled part kept
        canceled = watch("ud-bid", "canceled", "0.001")
        await asyncio.sleep(0.05)
        await a.cancel_order(bid["id"], BTC)
        await canceled

        # 4. a taker order: NEW then TRADE to FILLED
        await b.create_order(BTC, "limit", "sell", 0.002, 30005.0)
        filled = watch("ud-taker", "closed", "0.002")
        btc = D(start["BTC"]["total"]) + Decimal("0.003")
        balance = asyncio.create_task(_until(a.watch_balance,
                                             lambda x: D(x["BTC"]["total"]) == btc))
        await asyncio.sleep(0.05)
        await a.create_order(BTC, "limit", "buy", 0.002, 30010.0, {"clientOrderId": "ud-taker"})
        await filled
        bal = await balance
        final = await a.fetch_balance()
        assert D(bal["USDT"]["free"]) == D(final["USDT"]["free"])
        assert D(bal["USDT"]["used"]) == D(final["USDT"]["used"])
    finally:
        await asyncio.gather(a.close(), b.close())


def test_user_data_for_every_order_change(clean: Server) -> None:
    asyncio.run(_user_data(clean))
