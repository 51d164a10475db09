"""The direct frame path (``gateway.wsdirect``) on a real uvicorn server, as ``chainbook
serve`` wires it (``expose_raw_send``, permessage-deflate off): frames are written straight
to the sockets, stay in order, replies still precede snapshots, and a client that stops
reading is still dropped as a slow consumer while the others get everything."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from test_ws_server import recv_json, run_slow_consumer, serving
from websockets.asyncio.client import connect
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
    try:
        got, slow_got, _, code = run_slow_consumer(world)
    finally:
        world.close()
    assert world.hub.stats.slow_dropped == 1 and code == SLOW_CONSUMER
    assert got == list(range(len(got))) and len(got) > len(slow_got)
    assert slow_got == list(range(len(slow_got)))  # an in-order prefix
    assert world.hub.stats.frames_direct > 0
