"""The WebSocket routes on a real uvicorn server (free port) with the ``websockets`` client:
subscribe protocol, ws-api user events, ping/pong in both directions, and a client that
stops reading being disconnected while another keeps receiving everything in order.

Server, client and core share one event loop (``asyncio.run``), as the core's listeners
and the sockets do in ``chainbook serve``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from wsfixtures import World, signed_subscribe

from chainbook.domain.enums import Side
from chainbook.gateway.hub import SLOW_CONSUMER


@contextlib.asynccontextmanager
async def serving(world: World, **config: Any) -> AsyncIterator[str]:
    """Run ``world.app`` under uvicorn on a free loopback port; yield its ws:// base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(world.app, log_config=None, log_level="warning",
                                           lifespan="off", **config))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why the server did not start
            await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{port}"
    finally:
        world.hub.close_all()
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


class PingCounter(ClientConnection):
    """A client connection that counts the server's ping frames (it still answers them)."""

    pings = 0

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            type(self).pings += 1
        super().process_event(event)


async def recv_json(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


def test_streams_user_data_and_keepalive_over_real_sockets(tmp_path: Path) -> None:
    world = World(tmp_path)

    async def main() -> None:
        async with serving(world, ws_ping_interval=0.1, ws_ping_timeout=2) as url:
            async with connect(f"{url}/ws/0", create_connection=PingCounter) as market, \
                    connect(f"{url}/ws-api/v3") as api, \
                    connect(f"{url}/stream?streams=btcusdt@trade") as combined:
                await market.send(json.dumps({"method": "SUBSCRIBE",
                                              "params": ["btcusdt@trade"], "id": 1}))
                assert await recv_json(market) == {"result": None, "id": 1}
                latency = await asyncio.wait_for(await market.ping(), 5)  # server pongs
                assert latency >= 0
                await api.send(json.dumps(signed_subscribe(world.bob, world.clock(), "1",
                                                           recvWindow=10000)))
                assert await recv_json(api) == {"id": "1", "status": 200, "rateLimits": [],
                                                "result": {"subscriptionId": 0}}
                await world.core.submit(world.limit(world.alice.account, Side.SELL,
                                                    "100.00", "0.5"))
                await world.core.submit(world.limit(world.bob.account, Side.BUY,
                                                    "100.00", "0.5"))
                assert (await recv_json(market))["e"] == "trade"
                wrapped = await recv_json(combined)
                assert wrapped["stream"] == "btcusdt@trade" and wrapped["data"]["e"] == "trade"
                events = [await recv_json(api) for _ in range(3)]
                assert [e["subscriptionId"] for e in events] == [0, 0, 0]
                assert [e["event"].get("x") for e in events] == ["NEW", "TRADE", None]
                await asyncio.sleep(0.35)  # a few server keepalive intervals
                assert PingCounter.pings >= 2
                assert world.hub.connections == 3
            for _ in range(100):  # the server notices the three closes
                if world.hub.connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert world.hub.connections == 0 and not world.hub.wants("btcusdt@trade")

    try:
        asyncio.run(main())
    finally:
        world.close()


def run_slow_consumer(world: World) -> tuple[list[int], list[int], int, int | None]:
    """Serve ``world``; a fast and a slow (never reading) client on one stream; publish
    big frames until the slow one is dropped, then 10 more. Return (frames the fast one
    got, frames the slow one got, frames sent before the drop, the slow one's close code)."""
    pad = "x" * 16384  # big frames fill the socket buffers quickly (no compression)

    async def main() -> tuple[list[int], list[int], int, int | None]:
        async with serving(world, ws_per_message_deflate=False) as url:
            stream = f"{url}/ws/btcusdt@trade"
            async with connect(stream, compression=None) as fast, \
                    connect(stream, compression=None) as slow:
                for ws in (fast, slow):
                    await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 0}))
                    assert (await recv_json(ws))["result"] == ["btcusdt@trade"]
                got: list[int] = []

                async def read_fast() -> None:
                    async for frame in fast:
                        got.append(json.loads(frame)["n"])

                reader = asyncio.ensure_future(read_fast())
                sent = 0
                while sent < 20_000 and world.hub.stats.slow_dropped == 0:
                    for _ in range(8):  # publish is synchronous: a burst in one loop step
                        world.hub.publish("btcusdt@trade", {"n": sent, "pad": pad})
                        sent += 1
                    async with asyncio.timeout(10):
                        while len(got) < sent:  # the fast client keeps up
                            await asyncio.sleep(0.001)
                dropped_at = sent
                for _ in range(10):
                    world.hub.publish("btcusdt@trade", {"n": sent, "pad": pad})
                    sent += 1
                async with asyncio.timeout(10):
                    while len(got) < sent:
                        await asyncio.sleep(0.001)
                slow_got: list[int] = []
                code: int | None = None
                try:  # now read what reached the slow client before it was cut off
                    async with asyncio.timeout(10):
                        async for frame in slow:
                            slow_got.append(json.loads(frame)["n"])
                except ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd else None
                reader.cancel()
                return got, slow_got, dropped_at, code

    return asyncio.run(main())


def test_a_client_that_stops_reading_is_dropped_and_others_are_not(tmp_path: Path) -> None:
    world = World(tmp_path, max_queue=64)
    try:
        got, slow_got, dropped_at, code = run_slow_consumer(world)
    finally:
        world.close()
    assert world.hub.stats.slow_dropped == 1
    assert got == list(range(dropped_at + 10))  # everything, in order
    assert slow_got == list(range(len(slow_got)))  # an in-order prefix ...
    assert len(slow_got) < dropped_at  # ... that stops before the drop
    assert code == SLOW_CONSUMER
