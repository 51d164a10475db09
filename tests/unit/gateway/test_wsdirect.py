"""The direct frame path (``gateway.wsdirect``) on a real uvicorn server, as ``chainbook
serve`` wires it (``expose_raw_send``, permessage-deflate off): frames are written straight
to the sockets, stay in order, replies still precede snapshots, and a client that stops
reading is still dropped as a slow consumer while the others get everything."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from test_ws_server import recv_json, serving
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame
from websockets.streams import StreamReader
from wsfixtures import World

from chainbook.gateway.hub import SLOW_CONSUMER
from chainbook.gateway.wsdirect import expose_raw_send, text_frame


def _parse(frame: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(frame)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("the frame was not complete")


def test_text_frames_of_every_length_class_parse_back() -> None:
    for n in (0, 125, 126, 65535, 65536):
        payload = b"x" * n
        frame = _parse(text_frame(payload))
        assert frame.fin and frame.opcode.name == "TEXT" and frame.data == payload


def test_frames_go_straight_to_the_socket_in_order(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.app = expose_raw_send(world.app)

    async def main() -> tuple[list[Any], list[Any]]:
        async with serving(world, ws_per_message_deflate=False) as url:
            async with connect(f"{url}/ws/0", compression=None) as raw, \
                    connect(f"{url}/stream?streams=btcusdt@trade", compression=None) as comb:
                await raw.send(json.dumps({"method": "SUBSCRIBE",
                                           "params": ["btcusdt@depth5"], "id": 7}))
                assert await recv_json(raw) == {"result": None, "id": 7}  # before the snapshot
                assert "lastUpdateId" in await recv_json(raw)
                await raw.send(json.dumps({"method": "SUBSCRIBE",
                                           "params": ["btcusdt@trade"], "id": 8}))
                assert await recv_json(raw) == {"result": None, "id": 8}
                for n in range(300):
                    world.hub.publish("btcusdt@trade", {"n": n})
                got_raw = [await recv_json(raw) for _ in range(300)]
                got_comb = [await recv_json(comb) for _ in range(300)]
                return got_raw, got_comb

    try:
        got_raw, got_comb = asyncio.run(main())
    finally:
        world.close()
    assert [m["n"] for m in got_raw] == list(range(300))
    assert [m["data"]["n"] for m in got_comb] == list(range(300))
    assert {m["stream"] for m in got_comb} == {"btcusdt@trade"}
    assert world.hub.stats.frames_direct >= 600  # no queue, no writer task


def test_a_client_that_stops_reading_is_still_dropped(tmp_path: Path) -> None:
    world = World(tmp_path, max_queue=64)
    world.app = expose_raw_send(world.app)
    pad = "x" * 16384

    async def main() -> tuple[list[int], list[int], int | None]:
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
                    for _ in range(8):
                        world.hub.publish("btcusdt@trade", {"n": sent, "pad": pad})
                        sent += 1
                    async with asyncio.timeout(10):
                        while len(got) < sent:
                            await asyncio.sleep(0.001)
                slow_got: list[int] = []
                code: int | None = None
                try:
                    async with asyncio.timeout(10):
                        async for frame in slow:
                            slow_got.append(json.loads(frame)["n"])
                except ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd else None
                reader.cancel()
                return got, slow_got, code

    try:
        got, slow_got, code = asyncio.run(main())
    finally:
        world.close()
    assert world.hub.stats.slow_dropped == 1 and code == SLOW_CONSUMER
    assert got == list(range(len(got))) and len(got) > len(slow_got)
    assert slow_got == list(range(len(slow_got)))  # an in-order prefix
    assert world.hub.stats.frames_direct > 0
