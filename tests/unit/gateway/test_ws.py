"""Market-data WebSocket routes through Starlette's TestClient: the four connection styles,
the subscribe protocol and framing, with the real engine and market data behind them.

Commands go through ``client.portal.call(world.core.apply, cmd)`` so the listeners (and the
hub) run on the app's event loop, as they do under uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect
from wsfixtures import TestClient, World

from chainbook.domain.enums import Side
from chainbook.gateway.ws import valid_stream
from chainbook.service.keys import KeyStore


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(world.app) as c:
        yield c


def trade(world: World, client: TestClient, price: str = "100.00", qty: str = "0.5") -> None:
    """Alice rests a sell, Bob lifts it: one trade on BTCUSDT."""
    assert client.portal is not None
    client.portal.call(world.core.apply, world.limit(world.alice.account, Side.SELL, price, qty))
    client.portal.call(world.core.apply, world.limit(world.bob.account, Side.BUY, price, qty))


def request(ws: Any, method: str, params: Any = None, rid: Any = 1) -> Any:
    msg: dict[str, Any] = {"method": method, "id": rid}
    if params is not None:
        msg["params"] = params
    ws.send_json(msg)
    return ws.receive_json()


def test_valid_stream_names() -> None:
    symbols = {"BTCUSDT"}
    good = ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@depth", "btcusdt@depth@100ms",
            "btcusdt@depth@1000ms", "btcusdt@depth5", "btcusdt@depth20@100ms",
            "btcusdt@depth10@1000ms", "btcusdt@kline_1m", "btcusdt@kline_1M",
            "btcusdt@miniTicker", "btcusdt@ticker", "btcusdt@bookTicker", "!ticker@arr",
            "!miniTicker@arr", "!ticker@arr@1000ms", "!miniTicker@arr@1000ms"]
    bad = ["BTCUSDT@trade", "ethusdt@trade", "btcusdt@trades", "btcusdt@depth7",
           "btcusdt@depth@250ms", "btcusdt@kline_2m", "btcusdt", "@trade", "!bookTicker",
           "btcusdt@trade@100ms", "btcusdt@aggtrade", ""]
    assert [n for n in good if not valid_stream(n, symbols)] == []
    assert [n for n in bad if valid_stream(n, symbols)] == []


def test_ccxt_style_subscribe_list_unsubscribe_echo_the_id(world: World,
                                                         client: TestClient) -> None:
    with client.websocket_connect("/ws/0") as ws:
        assert request(ws, "SUBSCRIBE", ["btcusdt@trade", "ethusdt@trade"], 1) == {
            "result": None, "id": 1}
        assert request(ws, "LIST_SUBSCRIPTIONS", rid="abc") == {
            "result": ["btcusdt@trade", "ethusdt@trade"], "id": "abc"}
        trade(world, client)
        event = ws.receive_json()
        assert event["e"] == "trade" and event["s"] == "BTCUSDT"
        assert Decimal(event["p"]) == Decimal("100") and Decimal(event["q"]) == Decimal("0.5")
        assert event["m"] is False  # m = buyer is maker; Bob bought as the taker
        assert request(ws, "UNSUBSCRIBE", ["btcusdt@trade"], 3) == {"result": None, "id": 3}
        assert request(ws, "LIST_SUBSCRIPTIONS", rid=None) == {
            "result": ["ethusdt@trade"], "id": None}
        trade(world, client)
        # nothing was queued for btcusdt@trade: the next frame is this reply
        assert request(ws, "LIST_SUBSCRIPTIONS", rid=5) == {"result": ["ethusdt@trade"],
                                                           "id": 5}


def test_plain_ws_root_subscribes_later(world: World, client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        assert request(ws, "SUBSCRIBE", ["btcusdt@aggTrade"], 9) == {"result": None, "id": 9}
        trade(world, client)
        assert ws.receive_json()["e"] == "aggTrade"


def test_stream_in_the_path_is_subscribed_raw(world: World, client: TestClient) -> None:
    with client.websocket_connect("/ws/btcusdt@trade") as ws:
        trade(world, client, "101.00")
        event = ws.receive_json()
        assert event["e"] == "trade" and Decimal(event["p"]) == Decimal("101")
        assert request(ws, "LIST_SUBSCRIPTIONS", rid=2)["result"] == ["btcusdt@trade"]


def test_combined_streams_are_wrapped(world: World, client: TestClient) -> None:
    with client.websocket_connect("/stream?streams=btcusdt@trade/btcusdt@aggTrade") as ws:
        trade(world, client)
        frames = [ws.receive_json(), ws.receive_json()]
        by_stream = {f["stream"]: f["data"] for f in frames}
        assert set(by_stream) == {"btcusdt@trade", "btcusdt@aggTrade"}
        assert by_stream["btcusdt@trade"]["e"] == "trade"
        assert by_stream["btcusdt@aggTrade"]["e"] == "aggTrade"
        # a later SUBSCRIBE on a combined connection is wrapped too (its snapshot here)
        assert request(ws, "SUBSCRIBE", ["btcusdt@bookTicker"], 4) == {"result": None, "id": 4}
        snap = ws.receive_json()
        assert snap["stream"] == "btcusdt@bookTicker" and snap["data"]["s"] == "BTCUSDT"


def test_set_property_combined_switches_the_framing(world: World,
                                                   client: TestClient) -> None:
    """SET_PROPERTY/GET_PROPERTY ``combined`` (Binance §6.2): raw frames become
    ``{"stream","data"}`` and back; errors with Binance's codes 0, 1 and 2."""
    with client.websocket_connect("/ws") as ws:
        assert request(ws, "GET_PROPERTY", ["combined"], 1) == {"result": False, "id": 1}
        assert request(ws, "SUBSCRIBE", ["btcusdt@trade"], 2) == {"result": None, "id": 2}
        assert request(ws, "SET_PROPERTY", ["combined", True], 3) == {"result": None,
                                                                     "id": 3}
        assert request(ws, "GET_PROPERTY", ["combined"], 4) == {"result": True, "id": 4}
        trade(world, client)
        wrapped = ws.receive_json()
        assert wrapped["stream"] == "btcusdt@trade" and wrapped["data"]["e"] == "trade"
        assert request(ws, "SET_PROPERTY", ["combined", False], 5) == {"result": None,
                                                                      "id": 5}
        trade(world, client)
        assert ws.receive_json()["e"] == "trade"
        assert request(ws, "SET_PROPERTY", ["combined", "yes"], 6) == {
            "error": {"code": 1, "msg": "Invalid value type: expected Boolean"}, "id": 6}
        assert request(ws, "SET_PROPERTY", ["colour", True], 7)["error"]["code"] == 0
        assert request(ws, "GET_PROPERTY", [5], 8)["error"]["code"] == 2
        assert request(ws, "SET_PROPERTY", ["combined"], 9)["error"]["code"] == 2
        assert request(ws, "GET_PROPERTY", ["combined"], 10) == {"result": False, "id": 10}


def test_snapshot_follows_the_subscribe_reply(world: World, client: TestClient) -> None:
    assert client.portal is not None
    client.portal.call(world.core.apply,
                       world.limit(world.alice.account, Side.BUY, "99.00", "1"))
    client.portal.call(world.core.apply,
                       world.limit(world.alice.account, Side.SELL, "102.00", "2"))
    with client.websocket_connect("/ws/1") as ws:
        assert request(ws, "SUBSCRIBE", ["btcusdt@depth5"], 1) == {"result": None, "id": 1}
        snap = ws.receive_json()
        assert snap["lastUpdateId"] == world.market.depth("BTCUSDT", 5)["lastUpdateId"] > 0
        assert [[Decimal(p), Decimal(q)] for p, q in snap["bids"]] == [[99, 1]]
        assert [[Decimal(p), Decimal(q)] for p, q in snap["asks"]] == [[102, 2]]
        # a name repeated in one request: one snapshot (no amplification by repetition)
        assert request(ws, "SUBSCRIBE", ["btcusdt@bookTicker"] * 5, 2) == {"result": None,
                                                                             "id": 2}
        assert ws.receive_json()["s"] == "BTCUSDT"
        assert request(ws, "LIST_SUBSCRIPTIONS", rid=3) == {
            "result": ["btcusdt@bookTicker", "btcusdt@depth5"], "id": 3}  # nothing between


@pytest.mark.parametrize(("frame", "rid", "why"), [
    ('{"method":"SUBSCRIBE","params":["btcusdt@nope"],"id":7}', 7, "invalid stream"),
    ('{"method":"SUBSCRIBE","params":["xrpusdt@trade"],"id":"s"}', "s", "invalid stream"),
    ('{"method":"SUBSCRIBE","params":["BTCUSDT@trade"],"id":8}', 8, "invalid stream"),
    ('{"method":"SUBSCRIBE","params":[5],"id":8}', 8, "invalid stream"),
    ('{"method":"SUBSCRIBE","params":"btcusdt@trade","id":8}', 8, "params"),
    ('{"method":"SUBSCRIBEX","params":[],"id":9}', 9, "unknown method"),
    ('{"method":"SUBSCRIBE","params":[],"id":true}', None, "'id'"),
    ('{"method":"SUBSCRIBE","params":[],"id":1.5}', None, "'id'"),
    ("not json", None, "malformed JSON"),
    ("[1,2]", None, "JSON object"),
])
def test_bad_requests_get_code_2(client: TestClient, frame: str, rid: Any, why: str) -> None:
    with client.websocket_connect("/ws/0") as ws:
        ws.send_text(frame)
        reply = ws.receive_json()
        assert reply["id"] == rid and type(reply["id"]) is type(rid)
        assert reply["error"]["code"] == 2
        assert reply["error"]["msg"].startswith("Invalid request: ") and why in reply[
            "error"]["msg"]
        # the connection stays usable and nothing was subscribed
        assert request(ws, "LIST_SUBSCRIPTIONS", rid=2) == {"result": [], "id": 2}


def test_a_subscribe_with_one_bad_name_subscribes_nothing(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        reply = request(ws, "SUBSCRIBE", ["btcusdt@trade", "btcusdt@bad"], 1)
        assert reply["error"]["code"] == 2
        assert request(ws, "LIST_SUBSCRIPTIONS", rid=2)["result"] == []


def test_subscription_cap(tmp_path: Path) -> None:
    world = World(tmp_path, max_streams=2)
    try:
        with TestClient(world.app) as client, client.websocket_connect("/ws/0") as ws:
            assert request(ws, "SUBSCRIBE", ["btcusdt@trade", "ethusdt@trade"], 1)[
                "result"] is None
            reply = request(ws, "SUBSCRIBE", ["btcusdt@aggTrade"], 2)
            assert "too many subscriptions" in reply["error"]["msg"]
            assert request(ws, "SUBSCRIBE", ["btcusdt@trade"], 3) == {"result": None, "id": 3}
    finally:
        world.close()


def test_an_invalid_stream_in_the_url_is_refused(client: TestClient) -> None:
    for url in ("/ws/btcusdt@nonsense", "/stream?streams=btcusdt@trade/dogeusdt@trade"):
        with pytest.raises(WebSocketDisconnect) as err, client.websocket_connect(url):
            pass
        assert err.value.code == 1008


def test_legacy_listen_key_stream_gets_raw_user_events(world: World,
                                                       client: TestClient) -> None:
    key = world.views.listen_keys.create(world.bob.account)
    with client.websocket_connect(f"/ws/{key}") as ws:
        trade(world, client)
        events = [ws.receive_json() for _ in range(3)]
        # Bob's taker order: NEW, then TRADE, then his balances
        assert [(e["e"], e.get("x")) for e in events] == [
            ("executionReport", "NEW"), ("executionReport", "TRADE"),
            ("outboundAccountPosition", None)]
        assert events[1]["S"] == "BUY" and "subscriptionId" not in events[0]


def test_a_deleted_listen_key_ends_its_stream(world: World, client: TestClient) -> None:
    """DELETE /api/v3/userDataStream (or expiry, or the revoke of the only API key that
    obtained it) ends the streams on that key with listenKeyExpired."""
    from chainbook.gateway.listenkeys import ListenKeys

    keys: ListenKeys = world.views.listen_keys
    key = keys.create(world.bob.account, world.bob.key)
    with client.websocket_connect(f"/ws/{key}") as ws:
        assert keys.close(key, world.bob.account)
        assert client.portal is not None
        assert client.portal.call(world.hub.end_revoked_users, world.clock()) == 1
        assert ws.receive_json() == {"e": "listenKeyExpired", "E": world.clock(),
                                     "listenKey": key}
        trade(world, client)
        # an event would come before this reply
        assert request(ws, "LIST_SUBSCRIPTIONS", rid=1) == {"result": [], "id": 1}
    key = keys.create(world.bob.account, world.bob.key)
    with client.websocket_connect(f"/ws/{key}") as ws:
        with KeyStore(world.keys.path) as other:  # another process's connection
            assert other.revoke_key(world.bob.key)
        assert client.portal.call(world.hub.end_revoked_users, world.clock()) == 1
        assert ws.receive_json()["e"] == "listenKeyExpired"


def test_a_listen_key_of_revoked_api_keys_is_refused_and_not_handed_out_again(
        world: World, client: TestClient) -> None:
    """Whoever holds the listenKey cannot reconnect once the API keys behind it are
    revoked (not even before the hub's once-a-second check), and a new POST by another
    API key of the account gets a new listenKey, not the old one revived."""
    from chainbook.gateway.ws_api import key_reads_for

    lkeys = world.views.listen_keys
    old = lkeys.create(world.bob.account, world.bob.key)
    with KeyStore(world.keys.path) as other:  # `chainbook apikey revoke`, another process
        assert other.revoke_key(world.bob.key)
    with pytest.raises(WebSocketDisconnect) as err, client.websocket_connect(f"/ws/{old}"):
        pass
    assert err.value.code == 1008 and world.hub.connections == 0
    fresh = world.keys.create_key(world.bob.account, {"read"})
    active = key_reads_for(world.keys, world.bob.account)
    assert not lkeys.keepalive(old, world.bob.account, fresh.key, active)
    new = lkeys.create(world.bob.account, fresh.key, active)
    assert new != old and lkeys.account_for(old) is None
    with client.websocket_connect(f"/ws/{new}") as ws:
        assert request(ws, "LIST_SUBSCRIPTIONS", rid=1) == {"result": [], "id": 1}


def test_an_unknown_listen_key_is_refused(world: World, client: TestClient) -> None:
    """A deleted or expired key (or one from before a restart) is refused at the
    handshake (HTTP 403), so a client learns it must create a new one rather than
    listening to silence."""
    with pytest.raises(WebSocketDisconnect) as err, client.websocket_connect("/ws/" + "k" * 64):
        pass
    assert err.value.code == 1008
    assert world.hub.connections == 0
    with client.websocket_connect("/ws/0") as ws:  # ccxt's numbered sockets still work
        assert request(ws, "LIST_SUBSCRIPTIONS", rid=1) == {"result": [], "id": 1}


def test_disconnect_forgets_the_connection(world: World, client: TestClient) -> None:
    with client.websocket_connect("/stream?streams=btcusdt@trade") as ws:
        assert request(ws, "LIST_SUBSCRIPTIONS", rid=1)["result"] == ["btcusdt@trade"]
        assert world.hub.wants("btcusdt@trade")
    assert client.portal is not None
    assert not client.portal.call(world.hub.wants, "btcusdt@trade")
    assert world.hub.connections == 0


def test_a_connection_flooding_requests_is_closed(world: World, client: TestClient) -> None:
    """A burst of requests is served (ccxt.pro subscribes to many streams at once);
    past it, faster than the rate, the connection is closed with 1008."""
    from chainbook.gateway.ws import REQUEST_BURST

    with client.websocket_connect("/ws/1") as ws:
        for i in range(REQUEST_BURST // 2):  # well within the burst: every one answered
            assert request(ws, "LIST_SUBSCRIPTIONS", rid=i) == {"result": [], "id": i}
    with client.websocket_connect("/ws/1") as ws:
        for i in range(REQUEST_BURST + 20):
            ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": i})
        answered = 0
        with pytest.raises(WebSocketDisconnect) as err:
            while answered < REQUEST_BURST + 20:  # all answered: no limit (DID NOT RAISE)
                ws.receive_json()
                answered += 1
        assert err.value.code == 1008
        assert REQUEST_BURST <= answered < REQUEST_BURST + 20
    assert world.hub.connections == 0


def test_websocket_connections_per_ip_are_limited(world: World, client: TestClient) -> None:
    """[rate_limits] ws_connections_per_5m (Binance: 300 per IP per 5 minutes): beyond,
    the handshake is refused; the next window admits again."""
    world.ctx.limits.ws_connections_per_5m = 2
    with client.websocket_connect("/ws") as ws:
        assert request(ws, "LIST_SUBSCRIPTIONS", rid=1) == {"result": [], "id": 1}
    with client.websocket_connect("/ws-api/v3"):
        pass
    for path in ("/ws", "/stream?streams=btcusdt@trade", "/ws-api/v3", "/ws/0"):
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect(path):
                pass
        assert refused.value.code == 1008
    world.clock.advance(300_000)  # the next 5-minute window
    with client.websocket_connect("/ws") as ws:
        assert request(ws, "LIST_SUBSCRIPTIONS", rid=2) == {"result": [], "id": 2}
