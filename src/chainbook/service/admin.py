"""Operator endpoints: loopback-only, guarded by the token in ``<data>/admin-token``.

``POST /admin/v1/deposit`` with a JSON body ``{"account": 1, "asset": "BTC",
"amount": "1.5", "external_id": "optional"}`` credits an account (what ``chainbook fund``
uses while the server runs).  Without ``external_id`` each call is a new deposit
(``admin:<uuid4>``); with one, repeating the call is harmless (``"duplicate": true``).
Errors use the Binance shape ``{"code": ..., "msg": ...}``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import uuid
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chainbook.domain.commands import Deposit
from chainbook.domain.enums import Reject
from chainbook.domain.events import OrderRejected
from chainbook.domain.units import UnitError, amount_str, amount_units
from chainbook.gateway.context import GatewayContext
from chainbook.service.core import CommandRefused, CoreUnavailable

TOKEN_HEADER = "X-CHAINBOOK-ADMIN"
TOKEN_FILE = "admin-token"


def new_token() -> str:
    """A fresh random admin token."""
    return secrets.token_urlsafe(32)


def write_token(data_dir: str | os.PathLike[str], token: str) -> Path:
    """Write ``token`` to ``<data>/admin-token`` readable by the owner only (0600)."""
    path = Path(data_dir) / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(TOKEN_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, token.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def _error(status: int, code: int, msg: str) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg}, status_code=status)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _allowed(request: Request, token: str) -> JSONResponse | None:
    """None if the caller may use the admin API, else the error to send."""
    client = request.client
    if not _is_loopback(client.host if client else None):
        return _error(403, -1002, "The admin API only answers loopback clients.")
    given = request.headers.get(TOKEN_HEADER, "")
    if not token or not secrets.compare_digest(given.encode(), token.encode()):
        return _error(401, -1002, "You are not authorized to execute this request.")
    return None


async def _json_body(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        return _error(400, -1102, "The body must be a JSON object.")
    if not isinstance(body, dict):
        return _error(400, -1102, "The body must be a JSON object.")
    return body


def admin_routes(ctx: GatewayContext) -> list[Route]:
    """The operator routes (``/admin/v1/...``)."""

    async def deposit(request: Request) -> JSONResponse:
        denied = _allowed(request, ctx.admin_token)
        if denied is not None:
            return denied
        body = await _json_body(request)
        if isinstance(body, JSONResponse):
            return body
        for name in ("account", "asset", "amount"):
            if name not in body:
                return _error(400, -1102, f"Mandatory parameter '{name}' was not sent, "
                                          "was empty/null, or malformed.")
        account, asset, amount = body["account"], body["asset"], body["amount"]
        if isinstance(account, bool) or not isinstance(account, int) or account < 1:
            return _error(400, -1100, "Illegal characters found in parameter 'account'; "
                                      "an account id (integer >= 1) is expected.")
        decimals = ctx.core.assets.get(asset) if isinstance(asset, str) else None
        if decimals is None:
            return _error(400, -1100, f"Unknown asset {asset!r}; known: "
                                      f"{', '.join(sorted(ctx.core.assets))}.")
        try:
            units = amount_units(amount, decimals)
        except UnitError as exc:
            return _error(400, -1100, f"Illegal value for parameter 'amount': {exc}.")
        ext = body.get("external_id") or f"admin:{uuid.uuid4()}"
        if not isinstance(ext, str) or len(ext) > 128:
            return _error(400, -1100, "external_id must be a string of at most 128 chars.")
        try:
            res = await ctx.core.submit(Deposit(account, asset, units, ext))
        except CommandRefused as exc:  # e.g. a lone surrogate in external_id
            return _error(400, -1100, f"Illegal characters found in a parameter: {exc}.")
        except CoreUnavailable as exc:
            if exc.unknown:  # retrying with the same external_id is safe: idempotent
                return _error(503, -1006, "Execution status unknown; the deposit may have "
                                          "been applied. Retry with the same external_id.")
            return _error(503, -1001, "Internal error; unable to process your request. "
                                      "Please try again.")
        rej = next((e for e in res.events if isinstance(e, OrderRejected)), None)
        if rej is not None and rej.reason != Reject.DUPLICATE_EXTERNAL_ID:
            return _error(400, -1013, f"Deposit rejected: {rej.reason.name}.")
        free, locked = _balance(ctx, account, asset)
        return JSONResponse({
            "seq": res.seq, "account": account, "asset": asset,
            "amount": amount_str(units, decimals), "externalId": ext,
            "duplicate": rej is not None,
            "balance": {"asset": asset, "free": amount_str(free, decimals),
                        "locked": amount_str(locked, decimals)},
        })

    return [Route("/admin/v1/deposit", deposit, methods=["POST"])]


def _balance(ctx: GatewayContext, account: int, asset: str) -> tuple[int, int]:
    """(available, frozen) from the account views (they saw the deposit already)."""
    state = ctx.views.account(account)
    cell = state.balances.get(asset)
    return (cell[0], cell[1]) if cell else (0, 0)
