"""Hub: framing, user routing, bounded queues and slow-consumer disconnects.

The writers run on a real event loop (``asyncio.run``); a connection's socket is an
in-memory channel: a list that records frames, or a send that never completes (a client
that stopped reading)."""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

import pytest

from chainbook.gateway.hub import GOING_AWAY, SLOW_CONSUMER, Conn, Hub


class Sink:
    """A socket that records every frame it is given."""

    def __init__(self) -> None:
        self.frames: list[Any] = []

    async def send(self, frame: str) -> None:
        self.frames.append(json.loads(frame))


async def _stuck(frame: str) -> None:
    """A socket whose peer never reads: the first send never completes."""
    await asyncio.Event().wait()


async def _drain() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_publish_frames_raw_and_combined_once_per_call() -> None:
    async def main() -> tuple[list[Any], list[Any], list[Any]]:
        hub = Hub()
        raw, comb, other = hub.open(), hub.open(combined=True), hub.open()
        sinks = [Sink(), Sink(), Sink()]
        tasks = [asyncio.ensure_future(c.pump(s.send)) for c, s in zip(
            (raw, comb, other), sinks, strict=True)]
        assert not hub.wants("btcusdt@trade")
        hub.subscribe(raw, "btcusdt@trade")
        hub.subscribe(comb, "btcusdt@trade")
        hub.subscribe(other, "ethusdt@trade")
        assert hub.wants("btcusdt@trade") and not hub.wants("btcusdt@depth")
        hub.publish("btcusdt@trade", {"e": "trade", "t": 1})
        hub.publish("btcusdt@depth", {"ignored": True})  # nobody listens: a no-op
        hub.publish("!ticker@arr", [{"s": "BTCUSDT"}])
        await _drain()
        for t in tasks:
            t.cancel()
        return sinks[0].frames, sinks[1].frames, sinks[2].frames

    raw, comb, other = asyncio.run(main())
    assert raw == [{"e": "trade", "t": 1}]
    assert comb == [{"stream": "btcusdt@trade", "data": {"e": "trade", "t": 1}}]
    assert other == []


def test_unsubscribe_and_detach_forget_the_connection() -> None:
    hub = Hub()
    a, b = hub.open(), hub.open()
    hub.subscribe(a, "x@trade")
    hub.subscribe(b, "x@trade")
    hub.unsubscribe(a, "x@trade")
    assert a.streams == set() and hub.wants("x@trade")
    hub.detach(b)
    assert not hub.wants("x@trade") and hub.connections == 1
    hub.publish("x@trade", {"n": 1})
    assert a.queued == 0 and b.queued == 0


def test_stream_cap_per_connection() -> None:
    hub = Hub(max_streams=2)
    conn = hub.open()
    assert hub.subscribe(conn, "a@trade") and hub.subscribe(conn, "b@trade")
    assert hub.subscribe(conn, "a@trade")  # already there: not a new stream
    assert not hub.subscribe(conn, "c@trade")
    assert conn.streams == {"a@trade", "b@trade"}


def test_user_events_raw_for_listen_key_and_wrapped_for_ws_api() -> None:
    async def main() -> tuple[list[Any], list[Any], list[Any]]:
        hub = Hub()
        legacy, api, bystander = hub.open(), hub.open(), hub.open()
        sinks = [Sink(), Sink(), Sink()]
        tasks = [asyncio.ensure_future(c.pump(s.send)) for c, s in zip(
            (legacy, api, bystander), sinks, strict=True)]
        assert hub.subscribe_user(legacy, 7, wrapped=False) is None
        assert hub.subscribe_user(api, 7, wrapped=True) == 0
        assert hub.subscribe_user(api, 8, wrapped=True) == 1
        assert hub.subscribe_user(bystander, 9, wrapped=True) == 0
        hub.publish_user(7, {"e": "executionReport", "i": 1})
        hub.publish_user(8, {"e": "outboundAccountPosition"})
        await _drain()
        assert hub.unsubscribe_user(api, 0) and not hub.unsubscribe_user(api, 0)
        hub.publish_user(7, {"e": "executionReport", "i": 2})
        await _drain()
        for t in tasks:
            t.cancel()
        return sinks[0].frames, sinks[1].frames, sinks[2].frames

    legacy, api, bystander = asyncio.run(main())
    assert legacy == [{"e": "executionReport", "i": 1}, {"e": "executionReport", "i": 2}]
    assert api == [{"subscriptionId": 0, "event": {"e": "executionReport", "i": 1}},
                   {"subscriptionId": 1, "event": {"e": "outboundAccountPosition"}}]
    assert bystander == []


def test_slow_consumer_is_dropped_and_others_get_everything_in_order() -> None:
    limit, total = 8, 200

    async def main() -> tuple[Hub, Conn, Sink]:
        hub = Hub(max_queue=limit)
        fast, slow = hub.open(), hub.open(combined=True)
        sink = Sink()
        writers = [asyncio.ensure_future(fast.pump(sink.send)),
                   asyncio.ensure_future(slow.pump(_stuck))]
        for c in (fast, slow):
            hub.subscribe(c, "btcusdt@trade")
            hub.subscribe_user(c, 1, wrapped=True)
        for n in range(total):
            # publish is a plain function: it returns without yielding to the loop
            assert hub.publish("btcusdt@trade", {"n": n}) is None
            if n % 4 == 3:
                await asyncio.sleep(0)  # the fast writer drains between bursts
        hub.publish_user(1, {"e": "after"})
        await _drain()
        for w in writers:
            w.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
        return hub, slow, sink

    hub, slow, sink = asyncio.run(main())
    assert [f["n"] for f in sink.frames[:-1]] == list(range(total))
    assert sink.frames[-1] == {"subscriptionId": 0, "event": {"e": "after"}}
    assert slow.close_code == SLOW_CONSUMER and slow.close_reason == "slow consumer"
    assert slow.queued == 0 and slow.streams == set() and slow.user_subs == {}
    assert hub.stats.slow_dropped == 1 and hub.connections == 1
    assert not slow.offer("late")  # a finished connection accepts nothing


def test_publish_is_synchronous() -> None:
    for name in ("publish", "publish_user", "wants", "reply", "send_stream"):
        assert not inspect.iscoroutinefunction(getattr(Hub, name)), name


def test_full_queue_on_a_reply_also_drops_the_connection() -> None:
    hub = Hub(max_queue=2)
    conn = hub.open()
    hub.subscribe(conn, "a@trade")
    hub.reply(conn, {"id": 1})
    hub.reply(conn, {"id": 2})
    assert conn.close_code is None
    hub.reply(conn, {"id": 3})
    assert conn.close_code == SLOW_CONSUMER and not hub.wants("a@trade")


def test_close_all_finishes_every_connection() -> None:
    async def main() -> list[Conn]:
        hub = Hub()
        conns = [hub.open(), hub.open(combined=True)]
        for c in conns:
            hub.subscribe(c, "a@trade")
            hub.subscribe_user(c, 3, wrapped=False)
        waiters = [asyncio.ensure_future(c.wait_finished()) for c in conns]
        hub.close_all()
        await asyncio.wait_for(asyncio.gather(*waiters), 1)
        assert not hub.wants("a@trade") and hub.connections == 0
        hub.publish_user(3, {"e": "x"})
        return conns

    for conn in asyncio.run(main()):
        assert conn.close_code == GOING_AWAY and conn.queued == 0


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        Hub(max_queue=0)
