"""The WebSocket API (``/ws-api/v3``): signed user-data subscriptions and their events,
with the real engine, account views and key store behind them (TestClient)."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from wsfixtures import TestClient, World, sign, signed_subscribe

from chainbook.domain.enums import Side
from chainbook.gateway.ws_api import signed_payload
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


def call(ws: Any, msg: Any) -> Any:
    ws.send_json(msg)
    return ws.receive_json()


def trade(world: World, client: TestClient) -> None:
    """Alice rests a sell, Bob lifts it."""
    assert client.portal is not None
    client.portal.call(world.core.apply,
                       world.limit(world.alice.account, Side.SELL, "100.00", "0.5"))
    client.portal.call(world.core.apply,
                       world.limit(world.bob.account, Side.BUY, "100.00", "0.5"))


def test_signed_payload_sorts_and_skips_the_signature() -> None:
    params = {"timestamp": 5, "apiKey": "K", "recvWindow": 10000, "signature": "x"}
    assert signed_payload(params) == "apiKey=K&recvWindow=10000&timestamp=5"


def test_ping_and_time(world: World, client: TestClient) -> None:
    with client.websocket_connect("/ws-api/v3") as ws:
        assert call(ws, {"id": 5, "method": "ping"}) == {
            "id": 5, "status": 200, "result": {}, "rateLimits": []}
        world.clock.ms += 123
        reply = call(ws, {"id": "t", "method": "time", "params": {}})
        assert reply["id"] == "t" and reply["result"] == {"serverTime": world.clock.ms}


def test_ccxt_subscription_then_wrapped_events(world: World, client: TestClient) -> None:
    with client.websocket_connect("/ws-api/v3") as ws:
        req = signed_subscribe(world.alice, world.clock(), "1", recvWindow=10000)
        assert call(ws, req) == {"id": "1", "status": 200, "result": {"subscriptionId": 0},
                                 "rateLimits": []}
        trade(world, client)
        frames = [ws.receive_json() for _ in range(4)]
        assert {f["subscriptionId"] for f in frames} == {0}
        # Alice: her maker order NEW and balances, then the fill and balances again
        assert [(f["event"]["e"], f["event"].get("x")) for f in frames] == [
            ("executionReport", "NEW"), ("outboundAccountPosition", None),
            ("executionReport", "TRADE"), ("outboundAccountPosition", None)]
        assert frames[2]["event"]["S"] == "SELL" and frames[2]["event"]["m"] is True


def test_two_accounts_on_one_connection_python_binance_style(world: World,
                                                             client: TestClient) -> None:
    with client.websocket_connect("/ws-api/v3") as ws:
        rid_a, rid_b = str(uuid.uuid4()), str(uuid.uuid4())
        a = call(ws, signed_subscribe(world.alice, world.clock(), rid_a))  # no recvWindow
        b = call(ws, signed_subscribe(world.bob, world.clock(), rid_b))
        assert (a["id"], a["result"]) == (rid_a, {"subscriptionId": 0})
        assert (b["id"], b["result"]) == (rid_b, {"subscriptionId": 1})
        again = call(ws, signed_subscribe(world.bob, world.clock(), 3))
        assert again["result"] == {"subscriptionId": 1}  # one subscription per account
        assert call(ws, {"id": 4, "method": "session.subscriptions"})["result"] == [
            {"subscriptionId": 0}, {"subscriptionId": 1}]
        trade(world, client)
        frames = [ws.receive_json() for _ in range(7)]
        owners = {0: world.alice.account, 1: world.bob.account}
        for f in frames:
            event = f["event"]
            if event["e"] == "executionReport":
                side = "SELL" if owners[f["subscriptionId"]] == world.alice.account else "BUY"
                assert event["S"] == side
        assert sorted(f["subscriptionId"] for f in frames) == [0, 0, 0, 0, 1, 1, 1]


def test_unsubscribe_stops_the_events(world: World, client: TestClient) -> None:
    with client.websocket_connect("/ws-api/v3") as ws:
        assert call(ws, signed_subscribe(world.bob, world.clock()))["status"] == 200
        assert call(ws, {"id": 2, "method": "userDataStream.unsubscribe",
                         "params": {"subscriptionId": 0}}) == {
            "id": 2, "status": 200, "result": {}, "rateLimits": []}
        trade(world, client)
        # had an event been queued it would come before this reply
        assert call(ws, {"id": 3, "method": "ping"})["id"] == 3
        missing = call(ws, {"id": 4, "method": "userDataStream.unsubscribe",
                            "params": {"subscriptionId": 0}})
        assert missing["status"] == 400 and "does not exist" in missing["error"]["msg"]
    assert world.hub.connections == 0


def _err(reply: dict[str, Any]) -> tuple[Any, int, int]:
    return reply["id"], reply["status"], reply["error"]["code"]


def test_authentication_failures(world: World, client: TestClient) -> None:
    now = world.clock()
    alice = world.alice
    with client.websocket_connect("/ws-api/v3") as ws:
        bad_sig = signed_subscribe(alice, now, 1)
        bad_sig["params"]["signature"] = "0" * 64
        assert _err(call(ws, bad_sig)) == (1, 400, -1022)
        tampered = signed_subscribe(alice, now, 2, recvWindow=10000)
        tampered["params"]["recvWindow"] = 20000  # changes the signed payload
        assert _err(call(ws, tampered)) == (2, 400, -1022)
        assert _err(call(ws, signed_subscribe(alice, now - 5001, "s")))[1:] == (400, -1021)
        assert _err(call(ws, signed_subscribe(alice, now + 1001, 3)))[1:] == (400, -1021)
        assert call(ws, signed_subscribe(alice, now - 9000, 4, recvWindow=10000))[
            "status"] == 200  # inside a wider recvWindow
        assert call(ws, signed_subscribe(alice, now + 1000, 5))["status"] == 200
        assert _err(call(ws, signed_subscribe(alice, now, 6, recvWindow=60001))) == (
            6, 400, -1131)
        unknown = {"id": 7, "method": "userDataStream.subscribe.signature",
                   "params": {"apiKey": "nobody", "timestamp": now}}
        unknown["params"]["signature"] = sign("x", unknown["params"])
        assert _err(call(ws, unknown)) == (7, 401, -2015)
        no_key = signed_subscribe(alice, now, 8)
        del no_key["params"]["apiKey"]
        assert _err(call(ws, no_key)) == (8, 401, -2014)
        no_ts = signed_subscribe(alice, now, 9)
        del no_ts["params"]["timestamp"]
        assert _err(call(ws, no_ts)) == (9, 400, -1102)
        no_sig = signed_subscribe(alice, now, 10)
        del no_sig["params"]["signature"]
        assert _err(call(ws, no_sig)) == (10, 400, -1102)
        msg = call(ws, bad_sig)["error"]["msg"]
        assert msg == "Signature for this request is not valid."


def test_a_key_without_read_permission_cannot_subscribe(world: World,
                                                        client: TestClient) -> None:
    trader = world.keys.create_key(world.alice.account, {"trade"})
    with client.websocket_connect("/ws-api/v3") as ws:
        assert _err(call(ws, signed_subscribe(trader, world.clock(), 1))) == (1, 401, -2015)


@pytest.mark.parametrize(("frame", "rid", "code"), [
    ('{"id":1,"method":"order.place","params":{}}', 1, -1020),
    ('{"id":"a","method":"ping","params":[1]}', "a", -1100),
    ("nope", None, -1100),
    ("[]", None, -1100),
    ('{"id":2,"method":"userDataStream.unsubscribe","params":{"subscriptionId":"x"}}', 2,
     -1102),
    ('{"id":5,"method":["ping"]}', 5, -1020),  # not a string: unsupported, no crash
    ('{"id":6,"method":{"a":1}}', 6, -1020),
])
def test_malformed_requests(client: TestClient, frame: str, rid: Any, code: int) -> None:
    with client.websocket_connect("/ws-api/v3") as ws:
        ws.send_text(frame)
        reply = ws.receive_json()
        assert (reply["id"], reply["status"], reply["error"]["code"]) == (rid, 400, code)
        assert call(ws, {"id": 9, "method": "ping"})["status"] == 200  # still usable


def test_unsubscribe_without_an_id_stops_every_subscription(world: World,
                                                            client: TestClient) -> None:
    with client.websocket_connect("/ws-api/v3") as ws:
        for n, key in enumerate((world.alice, world.bob)):
            assert call(ws, signed_subscribe(key, world.clock(), n))["result"] == {
                "subscriptionId": n}
        assert call(ws, {"id": 5, "method": "userDataStream.unsubscribe"})["result"] == {}
        assert call(ws, {"id": 6, "method": "session.subscriptions"})["result"] == []
        trade(world, client)
        assert call(ws, {"id": 7, "method": "ping"})["id"] == 7  # no event came first


def test_url_encoded_signatures_are_accepted_too(world: World, client: TestClient) -> None:
    """python-binance signs ``urlencode(sorted(params))``: a value with reserved characters
    is quoted there and raw in ccxt's form; both verify."""
    params: dict[str, Any] = {"apiKey": world.alice.key, "timestamp": world.clock(),
                              "note": "a b&c"}
    raw = sign(world.alice.secret, params)
    quoted = hmac_hex(world.alice.secret, urlencode(sorted(params.items())))
    assert raw != quoted
    with client.websocket_connect("/ws-api/v3") as ws:
        for n, sig in enumerate((raw, quoted)):
            req = {"id": n, "method": "userDataStream.subscribe.signature",
                   "params": {**params, "signature": sig}}
            assert call(ws, req)["status"] == 200


def hmac_hex(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def test_revoking_the_api_key_ends_its_subscription(world: World, client: TestClient) -> None:
    """The key is checked at subscribe time and then every second: once revoked (here,
    or by ``chainbook apikey revoke`` in another process), the subscription ends with
    eventStreamTerminated and no more of the account's events follow."""
    with client.websocket_connect("/ws-api/v3") as ws:
        assert call(ws, signed_subscribe(world.bob, world.clock()))["status"] == 200
        assert client.portal is not None
        assert client.portal.call(world.hub.end_revoked_users, world.clock()) == 0
        with KeyStore(world.keys.path) as other:  # another process's connection
            assert other.revoke_key(world.bob.key)
        assert client.portal.call(world.hub.end_revoked_users, world.clock()) == 1
        ended = ws.receive_json()
        assert ended == {"subscriptionId": 0,
                         "event": {"e": "eventStreamTerminated", "E": world.clock()}}
        trade(world, client)
        assert call(ws, {"id": 3, "method": "ping"})["id"] == 3  # no event before it
        assert call(ws, {"id": 4, "method": "session.subscriptions"})["result"] == []
