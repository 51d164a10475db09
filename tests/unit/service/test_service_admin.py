"""The admin deposit endpoint: loopback + token only, idempotent, replies with the balance."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from starlette.applications import Starlette

from chainbook.gateway.context import GatewayContext
from chainbook.gateway.views import AccountViews
from chainbook.service.admin import TOKEN_HEADER, admin_routes, new_token, write_token
from chainbook.service.config import default_config
from chainbook.service.core import CoreService

URL = "/admin/v1/deposit"


Client = Callable[[tuple[str, int]], httpx.AsyncClient]


def run(tmp: Path, body: Callable[[Client, str], Awaitable[None]]) -> None:
    """Start a real core, serve the admin routes in process, run ``body(client, token)``."""

    async def main() -> None:
        app, core, token = make_app(tmp)
        await core.start()
        try:
            await body(lambda peer: httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=peer),
                base_url="http://test"), token)
        finally:
            await core.stop()

    asyncio.run(main())


def make_app(tmp: Path) -> tuple[Starlette, CoreService, str]:
    core = CoreService(tmp / "data", default_config().assets, snapshot_mode="inline")
    views = AccountViews(core, None)
    core.add_listener(views.on_batch)
    token = new_token()
    ctx = GatewayContext(core=core, keys=None, market=None, views=views,  # type: ignore[arg-type]
                         hub=None, limits=None, clock_ms=lambda: 0, admin_token=token)
    return Starlette(routes=admin_routes(ctx)), core, token


def test_deposit_credits_and_is_idempotent_by_external_id(tmp_path: Path) -> None:
    run(tmp_path, _credit)


async def _credit(client: Client, token: str) -> None:
    async with client(("127.0.0.1", 5555)) as c:
        h = {TOKEN_HEADER: token}
        r = await c.post(URL, json={"account": 3, "asset": "BTC", "amount": "1.5",
                                    "external_id": "tx-1"}, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["duplicate"] is False and body["externalId"] == "tx-1"
        assert body["balance"] == {"asset": "BTC", "free": "1.50000000", "locked": "0.00000000"}
        r = await c.post(URL, json={"account": 3, "asset": "BTC", "amount": "1.5",
                                    "external_id": "tx-1"}, headers=h)
        again = r.json()
        assert again["duplicate"] is True and again["balance"]["free"] == "1.50000000"
        r = await c.post(URL, json={"account": 3, "asset": "BTC", "amount": "0.25"}, headers=h)
        fresh = r.json()
        assert fresh["externalId"].startswith("admin:") and fresh["duplicate"] is False
        assert fresh["balance"]["free"] == "1.75000000"


def test_deposit_refuses_bad_callers_and_bad_bodies(tmp_path: Path) -> None:
    run(tmp_path, _refuse)


async def _refuse(client: Client, token: str) -> None:
    good = {"account": 1, "asset": "USDT", "amount": "10"}
    async with client(("10.1.2.3", 5555)) as remote:
        r = await remote.post(URL, json=good, headers={TOKEN_HEADER: token})
        assert r.status_code == 403 and r.json()["code"] == -1002
    async with client(("::1", 5555)) as c:
        r = await c.post(URL, json=good, headers={TOKEN_HEADER: token + "x"})
        assert r.status_code == 401 and r.json()["code"] == -1002
        assert (await c.post(URL, json=good)).status_code == 401
        h = {TOKEN_HEADER: token}
        cases = [
            ({"account": 1, "asset": "USDT"}, "'amount'"),
            ({**good, "asset": "DOGE"}, "Unknown asset"),
            ({**good, "amount": "0.000000001"}, "not a multiple"),
            ({**good, "amount": "-1"}, "not a decimal"),
            ({**good, "account": "1"}, "'account'"),
            ({**good, "account": 0}, "'account'"),
        ]
        for body, msg in cases:
            r = await c.post(URL, json=body, headers=h)
            assert r.status_code == 400 and msg in r.json()["msg"], (body, r.text)
        r = await c.post(URL, content=b"not json", headers=h)
        assert r.status_code == 400 and r.json()["code"] == -1102
        assert (await c.get(URL, headers=h)).status_code == 405
        # a lone surrogate (valid JSON, not storable text) is refused; the core goes on
        r = await c.post(URL, content=b'{"account": 1, "asset": "USDT", "amount": "10", '
                                      b'"external_id": "tx-\\ud800"}', headers=h)
        assert r.status_code == 400 and r.json()["code"] == -1100, r.text
        # an account id the log and the ledger cannot store (2**64 stopped the core at
        # its commit; 2**63 + 1 stalled the SQL ledger for good): refused, core goes on
        for huge in (2**64, 2**63 + 1):
            r = await c.post(URL, json={**good, "account": huge, "external_id": f"h{huge}"},
                             headers=h)
            assert r.status_code == 400 and r.json()["code"] == -1100, r.text
        r = await c.post(URL, json={**good, "external_id": "tx-ok"}, headers=h)
        assert r.status_code == 200 and r.json()["balance"]["free"] == "10.00000000", r.text


def test_token_file_is_private(tmp_path: Path) -> None:
    path = write_token(tmp_path / "d", "secret-token")
    assert path.read_text() == "secret-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_token(tmp_path / "d", "other")
    assert path.read_text() == "other"
