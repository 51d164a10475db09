"""Signed requests: raw-byte HMAC for both clients' parameter orders, keys, timestamps."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from restfixtures import Gateway, Signer

from chainbook.gateway import auth, errors
from chainbook.gateway.auth import sign

ACCOUNT = "/api/v3/account"


def test_signed_payload_is_query_then_body_without_the_signature() -> None:
    payload, sig = auth.signed_payload(b"symbol=BTCUSDT&timestamp=1", b"b=2&signature=ab")
    assert payload == b"symbol=BTCUSDT&timestamp=1b=2" and sig == "ab"
    payload, sig = auth.signed_payload(b"a=1&signature=cd", b"")
    assert payload == b"a=1" and sig == "cd"
    with pytest.raises(errors.ApiError) as e:
        auth.signed_payload(b"signature=a", b"signature=b")
    assert e.value.code == -1101


def test_parse_params_merges_and_rejects_duplicates() -> None:
    assert auth.parse_params(b"a=1&b=x+y", b"c=%41") == {"a": "1", "b": "x y", "c": "A"}
    with pytest.raises(errors.ApiError) as e:
        auth.parse_params(b"a=1", b"a=2")
    assert e.value.code == -1101
    with pytest.raises(errors.ApiError) as e:
        auth.parse_params(b"a=%ff", b"")
    assert e.value.code == -1100


@pytest.mark.parametrize("style", ["ccxt", "pb"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_both_client_styles_authenticate(gw: Gateway, alice: Signer, style: str,
                                         method: str) -> None:
    send = getattr(alice, style)
    if method == "GET":
        r = send("GET", ACCOUNT)
        assert r.status_code == 200, r.text
    elif method == "POST":
        r = send("POST", "/api/v3/order/test", {"symbol": "BTCUSDT", "side": "BUY",
                                                "type": "MARKET", "quantity": "0.1"})
        assert r.status_code == 200 and r.json() == {}
    else:
        r = send("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
        assert r.json() == {"code": -2011, "msg": "Unknown order sent."}


def test_signature_in_the_query_covers_a_body_too(gw: Gateway, client, alice: Signer) -> None:
    query = urlencode({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET"})
    body = urlencode({"quantity": "0.1", "timestamp": gw.clock()})
    sig = sign(gw.alice.secret, (query + body).encode())
    r = client.post(f"/api/v3/order/test?{query}&signature={sig}", content=body.encode(),
                    headers={"X-MBX-APIKEY": gw.alice.key,
                             "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text


def test_bad_signature_is_1022(gw: Gateway, client) -> None:
    query = urlencode({"timestamp": gw.clock()})
    sig = sign(gw.bob.secret, query.encode())  # signed with someone else's secret
    r = client.get(f"{ACCOUNT}?{query}&signature={sig}", headers={"X-MBX-APIKEY": gw.alice.key})
    assert r.status_code == 400
    assert r.json() == {"code": -1022, "msg": "Signature for this request is not valid."}


def test_reordered_parameters_do_not_verify(gw: Gateway, client) -> None:
    """The signature is over the bytes sent: re-ordering the pairs breaks it."""
    signed = urlencode({"timestamp": gw.clock(), "recvWindow": 5000})
    sig = sign(gw.alice.secret, signed.encode())
    sent = urlencode({"recvWindow": 5000, "timestamp": gw.clock()})
    r = client.get(f"{ACCOUNT}?{sent}&signature={sig}", headers={"X-MBX-APIKEY": gw.alice.key})
    assert r.json()["code"] == -1022


def test_key_errors(gw: Gateway, client, alice: Signer) -> None:
    missing = client.get(f"{ACCOUNT}?timestamp={gw.clock()}&signature={'0' * 64}")
    assert missing.status_code == 401
    assert missing.json() == {"code": -2014, "msg": "API-key format invalid."}
    unknown = alice.ccxt("GET", ACCOUNT, key="A" * 64)
    assert unknown.status_code == 401
    assert unknown.json() == {"code": -2015,
                              "msg": "Invalid API-key, IP, or permissions for action."}
    malformed = alice.ccxt("GET", ACCOUNT, key="bad key!")
    assert malformed.json()["code"] == -2014


def test_missing_permission_is_2015(gw: Gateway, client) -> None:
    reader = Signer(client, gw.reader, gw.clock)
    assert reader.ccxt("GET", ACCOUNT).status_code == 200
    r = reader.ccxt("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY",
                                              "type": "MARKET", "quantity": "0.1"})
    assert r.status_code == 401 and r.json()["code"] == -2015
    assert gw.core.engine.next_order_id == 1


def test_missing_timestamp_or_signature_is_1102(gw: Gateway, client) -> None:
    h = {"X-MBX-APIKEY": gw.alice.key}
    no_sig = client.get(f"{ACCOUNT}?timestamp={gw.clock()}", headers=h)
    assert no_sig.json()["code"] == -1102 and "'signature'" in no_sig.json()["msg"]
    sig = sign(gw.alice.secret, b"recvWindow=5000")
    no_ts = client.get(f"{ACCOUNT}?recvWindow=5000&signature={sig}", headers=h)
    assert no_ts.json()["code"] == -1102 and "'timestamp'" in no_ts.json()["msg"]


@pytest.mark.parametrize("offset, window, code", [
    (-4_000, None, None), (-6_000, None, -1021), (-59_000, 60_000, None),
    (1_000, None, None), (1_001, None, -1021), (0, 60_001, -1131),
])
def test_recv_window(gw: Gateway, client, offset: int, window: int | None,
                     code: int | None) -> None:
    items: dict[str, int] = {"timestamp": gw.clock() + offset}
    if window is not None:
        items["recvWindow"] = window
    text = urlencode(items)
    r = client.get(f"{ACCOUNT}?{text}&signature={sign(gw.alice.secret, text.encode())}",
                   headers={"X-MBX-APIKEY": gw.alice.key})
    if code is None:
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 400 and r.json()["code"] == code
    if code == -1021:
        assert r.json()["msg"] == "Timestamp for this request is outside of the recvWindow."


def test_listen_key_endpoints(gw: Gateway, alice: Signer, bob: Signer) -> None:
    first = alice.key_only("POST", "/api/v3/userDataStream").json()["listenKey"]
    assert len(first) == 64 and first.isalnum()
    assert alice.key_only("POST", "/api/v3/userDataStream").json()["listenKey"] == first
    assert gw.views.listen_keys.account_for(first) == gw.alice.account
    assert alice.key_only("PUT", "/api/v3/userDataStream", {"listenKey": first}).json() == {}
    other = bob.key_only("PUT", "/api/v3/userDataStream", {"listenKey": first})
    assert other.json() == {"code": -1125, "msg": "This listenKey does not exist."}
    gw.clock.advance(60 * 60 * 1000)
    assert gw.views.listen_keys.account_for(first) is None
    second = alice.key_only("POST", "/api/v3/userDataStream").json()["listenKey"]
    assert second != first
    assert alice.key_only("DELETE", "/api/v3/userDataStream", {"listenKey": second}).json() == {}
    assert gw.views.listen_keys.account_for(second) is None
    no_key = alice.client.post("/api/v3/userDataStream")
    assert no_key.status_code == 401 and no_key.json()["code"] == -2014


def test_a_fragment_without_key_or_equals_is_refused() -> None:
    assert auth.parse_params(b"a=1&&b=&", b"") == {"a": "1", "b": ""}  # empty values ok
    for query, body in ((b"a=1&5", b""), (b"a=1", b"5&b=2"), (b"a=1&=x", b""),
                        (b"", b"=x")):
        with pytest.raises(errors.ApiError) as e:
            auth.parse_params(query, body)
        assert e.value.code == -1100, (query, body)


def test_moving_the_query_body_split_cannot_change_a_signed_order(gw: Gateway, client
                                                                  ) -> None:
    """The signature covers query + body as one string: an attacker on the path moves
    the split into ``quantity=0.0015``; the query then says 0.001 and the body starts with
    a bare ``5``, which is refused rather than ignored."""
    signed_text = urlencode({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                             "timeInForce": "GTC", "price": "10000", "quantity": "0.0015",
                             "timestamp": gw.clock()})
    sig = sign(gw.alice.secret, signed_text.encode())
    cut = signed_text.index("quantity=0.001") + len("quantity=0.001")
    query, body = signed_text[:cut], signed_text[cut:]
    assert query.endswith("quantity=0.001") and body.startswith("5&")
    r = client.post(f"/api/v3/order?{query}", content=f"{body}&signature={sig}".encode(),
                    headers={"X-MBX-APIKEY": gw.alice.key,
                             "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["code"] == -1100
    assert client.get("/api/v3/depth", params={"symbol": "BTCUSDT"}).json()["bids"] == []
