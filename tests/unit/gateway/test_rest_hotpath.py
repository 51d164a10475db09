"""The order path's shortcuts give the same bytes as the general code they bypass.

Integer formatting against ``domain.units``, the plain-text parameter decoding against
the percent-decoding one, the pooled client order ids against ``secrets.token_urlsafe``'s
shape, user-data payloads built only for watched accounts, the route order, and the
direct REST dispatch against Starlette's (the same requests to twin gateways).
"""

from __future__ import annotations

import random
import re
import secrets
from pathlib import Path
from typing import Any

import msgspec
import pytest
from restfixtures import Gateway, Recorder, Signer, TestClient

from chainbook.domain import units
from chainbook.domain.instruments import SymbolSpec
from chainbook.gateway import auth, errors, numfmt, private, userdata
from chainbook.gateway.hub import Hub
from chainbook.gateway.rest import build_rest_routes, direct_rest
from chainbook.gateway.views import AccountViews
from chainbook.service.config import load_config

ODD_STEPS = ("1", "10", "0.5", "0.25", "1E+1", "2E+2", "0.010", "0.000000001",
             "0.0000000000001", "123.456", "0")


def _specs() -> list[SymbolSpec]:
    specs = list(load_config(None).symbols)
    for i, step in enumerate(ODD_STEPS):
        specs.append(SymbolSpec(f"X{i}", "B", "Q", 1, 1, tick_size=step, lot_size=step,
                                base_decimals=i % 19, quote_decimals=(3 * i) % 19))
    return specs


def _values() -> list[int]:
    rng = random.Random(7)
    edge = [0, 1, 9, 10, 99, 100, 10**8 - 1, 10**8, 10**18, 10**27, 10**28 - 1, 10**28,
            10**28 + 1, 10**40, -1, -10**9]
    return edge + [rng.randrange(0, 10**k) for k in range(1, 30) for _ in range(20)]


@pytest.mark.parametrize("spec", _specs(), ids=lambda s: f"{s.tick_size}/{s.lot_size}")
def test_integer_formatting_is_byte_identical_to_decimal(spec: SymbolSpec) -> None:
    for v in _values():
        assert numfmt.price_str(spec, v) == units.price_str(spec, v), v
        assert numfmt.qty_str(spec, v) == units.qty_str(spec, v), v
        assert numfmt.quote_str(spec, v) == units.quote_str(spec, v), v


def test_amount_str_matches_for_every_decimals() -> None:
    for decimals in range(0, 31):
        for v in _values():
            assert numfmt.amount_str(v, decimals) == units.amount_str(v, decimals), (v, decimals)


def test_plain_parameters_decode_like_percent_decoding() -> None:
    query = b"symbol=BTCUSDT&side=BUY&price=30000.01&newClientOrderId=a-b_c.d~e"
    body = b"quantity=0.001&timestamp=1&recvWindow=5000"
    plain = auth.parse_params(query, body)
    assert plain == {k.decode(): auth._decode(v) for k, v in
                     auth._pairs(query) + auth._pairs(body)}
    assert auth.parse_params("x=é".encode(), b"") == {"x": "é"}
    # one '%' or '+' anywhere switches every component to percent-decoding
    assert auth.parse_params(b"a=1", b"b=x+y&c=%41") == {"a": "1", "b": "x y", "c": "A"}
    with pytest.raises(errors.ApiError) as e:
        auth.parse_params(b"a=\xff", b"")
    assert e.value.code == -1100  # raw invalid UTF-8 on the plain path (test_rest_auth: %ff)


def test_generated_client_ids_look_like_token_urlsafe_and_do_not_repeat() -> None:
    n = private.ID_BATCH * 3 + 5  # across several os.urandom blocks
    ids = [private.new_client_id() for _ in range(n)]
    assert len(set(ids)) == n
    assert all(re.fullmatch(r"cb-[A-Za-z0-9_-]{22}", i) for i in ids)


def test_user_data_is_built_only_for_watched_accounts(gw: Gateway, alice: Signer, bob: Signer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for who in (alice, bob):
        r = who.ccxt("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY",
                                               "type": "LIMIT", "timeInForce": "GTC",
                                               "quantity": "0.01", "price": "20000"})
        assert r.status_code == 200, r.text
    built: list[int] = []
    real = userdata.execution_report

    def counting(core: Any, view: Any, *args: Any, **kw: Any) -> Any:
        built.append(view.account)
        return real(core, view, *args, **kw)

    monkeypatch.setattr(userdata, "execution_report", counting)
    hub = Hub()
    conn = hub.open()
    hub.subscribe_user(conn, gw.alice.account, wrapped=False)
    assert hub.wants_user(gw.alice.account) and not hub.wants_user(gw.bob.account)
    views = AccountViews(gw.core, hub, clock_ms=gw.clock)
    views.on_batch(gw.core.log, live=True)
    assert built and set(built) == {gw.alice.account}  # bob's reports were never built
    # alice gets the very frames the views publish when every account is built
    everyone = Recorder()
    AccountViews(gw.core, everyone, clock_ms=gw.clock).on_batch(gw.core.log, live=True)
    expected = [msgspec.json.encode(p).decode() for p in everyone.events(gw.alice.account)]
    assert any('"executionReport"' in f for f in expected)
    assert list(conn._queue) == expected
    hub.unsubscribe_user(conn, None)
    assert not hub.wants_user(gw.alice.account)


def test_order_route_is_tried_first_and_the_catch_all_last(gw: Gateway) -> None:
    assert getattr(build_rest_routes(gw.ctx)[0], "path", None) == "/api/v3/order"
    assert getattr(gw.app.routes[-1], "path", None) == "/{path:path}"


def _twin(tmp: Path) -> Gateway:
    """A gateway whose API keys are the same in every twin (keys from a seeded RNG)."""
    rng = random.Random(11)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(secrets, "choice", rng.choice)
        return Gateway(tmp)


def _scenario(client: TestClient, gw: Gateway) -> list[tuple[int, dict[str, str], bytes]]:
    alice, bob = Signer(client, gw.alice, gw.clock), Signer(client, gw.bob, gw.clock)
    limit = {"symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01"}
    sent = [
        client.get("/api/v3/ping"), client.head("/api/v3/ping"), client.get("/api/v3/time"),
        client.get("/api/v3/depth?symbol=BTCUSDT&limit=5"), client.get("/api/v3/exchangeInfo"),
        alice.ccxt("POST", "/api/v3/order", {**limit, "side": "SELL", "price": "30000",
                                             "newClientOrderId": "s1"}),
        alice.pb("POST", "/api/v3/order", {**limit, "side": "SELL", "price": "30001.5",
                                           "newClientOrderId": "s2", "newOrderRespType": "FULL"}),
        bob.ccxt("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                           "quantity": "0.015", "newOrderRespType": "FULL"}),
        alice.ccxt("GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "s2"}),
        alice.pb("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}),
        alice.ccxt("GET", "/api/v3/account"),
        alice.ccxt("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"}),
        alice.ccxt("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "s2",
                                               "newClientOrderId": "c2"}),
        alice.pb("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "s2",
                                             "newClientOrderId": "c3"}),
        alice.ccxt("POST", "/api/v3/order", {**limit, "side": "SELL", "price": "3e4"}),
        alice.ccxt("POST", "/api/v3/order", {**limit, "side": "SELL", "price": "30000",
                                             "newClientOrderId": "with space"}),
        client.post("/api/v3/order", content=b"symbol=BTCUSDT&signature=00",
                    headers={"X-MBX-APIKEY": gw.alice.key}),
        client.request("PATCH", "/api/v3/order"), client.request("TRACE", "/api/v3/order"),
        client.get("/api/v3/nothing"), client.get("/api/v3/order/"), client.get("/nowhere"),
    ]
    # generated client order ids are random (same length): compare everything else
    generated = re.compile(rb'"cb-[A-Za-z0-9_-]{22}"')
    return [(r.status_code, dict(r.headers), generated.sub(b'"cb-"', r.content)) for r in sent]


def test_direct_rest_answers_byte_for_byte_like_starlette(tmp_path: Path) -> None:
    plain, direct = _twin(tmp_path / "a"), _twin(tmp_path / "b")
    assert plain.alice.secret == direct.alice.secret
    try:
        with TestClient(plain.app) as c:
            expected = _scenario(c, plain)
        with TestClient(direct_rest(direct.app, direct.app.routes)) as c:
            got = _scenario(c, direct)
    finally:
        plain.keys.close()
        direct.keys.close()
    assert [s for s, _, _ in expected][:8] == [200] * 8  # the scenario really traded
    assert got == expected
