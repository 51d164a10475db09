"""Operator endpoints of the chain (loopback only, ``<data>/admin-token``), for the CLI.

    POST /admin/v1/chain/faucet    {"address" | "account", "asset", "amount"}
        pay test funds from the operator (the embedded chain, or ``[chain] faucet =
        true``); the amount is in the asset's units ("1.5"), sent as token units
    POST /admin/v1/chain/withdraw  {"account", "asset", "amount", "address"}
        the same as ``/sapi/v1/capital/withdraw/apply`` for an account (no API key)
    GET  /admin/v1/chain/status    operator, contracts, head, worker counters
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chainbook.chain.corebridge import outcome
from chainbook.chain.withdrawals import (
    WithdrawalError,
    hold_command,
    prepare_withdrawal,
    record_hold,
)
from chainbook.domain.units import UnitError, amount_units
from chainbook.service.admin import TOKEN_HEADER
from chainbook.service.core import CoreUnavailable

log = logging.getLogger(__name__)


def _error(status: int, msg: str, code: int | None = None) -> JSONResponse:
    if code is None:
        code = -1102 if status == 400 else -1002
    return JSONResponse({"code": code, "msg": msg}, status_code=status)


async def _body(request: Request, token: str) -> dict[str, Any] | JSONResponse:
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return _error(403, "The admin API only answers loopback clients.")
    given = request.headers.get(TOKEN_HEADER, "")
    if not token or not secrets.compare_digest(given.encode(), token.encode()):
        return _error(401, "You are not authorized to execute this request.")
    if request.method == "GET":
        return {}
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return _error(400, "The body must be a JSON object.")
    return body


def chain_admin_routes(ctx: Any, svc: Any) -> list[Route]:
    """The routes above for a ``ChainService``."""

    async def faucet(request: Request) -> JSONResponse:
        body = await _body(request, ctx.admin_token)
        if isinstance(body, JSONResponse):
            return body
        if svc.client is None:
            return JSONResponse({"code": -1001, "msg": "The chain is not connected yet."},
                                status_code=503)
        if not svc.cfg.faucet_enabled:
            return _error(400, "The faucet is off ([chain] faucet = true turns it on).")
        asset = str(body.get("asset", "")).upper()
        p = svc.pay.get(asset)
        if p is None:
            return _error(400, f"No token for asset {asset!r} on this chain.")
        address = body.get("address")
        if address is None and isinstance(body.get("account"), int):
            address = await asyncio.to_thread(svc.addresses.address, body["account"])
        if not isinstance(address, str):
            return _error(400, "Give 'address' or 'account'.")
        try:
            raw = amount_units(str(body.get("amount", "")), p.decimals)
            tx = await svc.call(lambda: svc.faucet(address, asset, raw))
        except (UnitError, ValueError) as e:
            return _error(400, str(e))
        except Exception as e:
            return JSONResponse({"code": -1001, "msg": f"faucet failed: {e}"},
                                status_code=503)
        return JSONResponse({"txId": tx, "address": address, "asset": asset,
                             "raw": str(raw)})

    async def withdraw(request: Request) -> JSONResponse:
        body = await _body(request, ctx.admin_token)
        if isinstance(body, JSONResponse):
            return body
        account, asset = body.get("account"), str(body.get("asset", "")).upper()
        # account 0 too: the fee account, whose revenue only the operator withdraws
        if isinstance(account, bool) or not isinstance(account, int) or account < 0:
            return _error(400, "'account' must be an account id (integer >= 0; 0: fees).")
        if asset not in svc.assets:
            return _error(400, f"Unknown asset {asset!r}.")
        try:
            units = amount_units(str(body.get("amount", "")), svc.assets[asset])
            row = await asyncio.to_thread(
                prepare_withdrawal, svc.store, svc.pay, svc.assets, account, asset, units,
                str(body.get("address", "")), ctx.clock_ms())
        except (UnitError, WithdrawalError) as e:
            return _error(400, str(e))
        try:
            result = outcome(list((await ctx.core.submit(hold_command(row))).events))
        except CoreUnavailable:  # recorded: the next start applies its hold
            return _error(503, f"Execution status unknown: withdrawal {row.id} is recorded "
                               "and its hold is applied at the next start; check its "
                               "state.", -1006)
        try:
            state = await asyncio.to_thread(record_hold, svc.store, row.id, result,
                                            ctx.clock_ms())
        except Exception:  # noqa: BLE001 - held in the core, outcome not recorded yet
            log.exception("withdrawal %s: recording the hold failed", row.id)
            return _error(503, f"Execution status unknown: withdrawal {row.id} is held; "
                               "the processor records it shortly; check its state.",
                          -1006)
        return JSONResponse({"id": row.id, "state": state,
                             "reason": None if state == "HELD" else result},
                            status_code=200 if state == "HELD" else 400)

    async def status(request: Request) -> JSONResponse:
        body = await _body(request, ctx.admin_token)
        if isinstance(body, JSONResponse):
            return body
        c = svc.client
        height = await asyncio.to_thread(svc.store.last_height)
        return JSONResponse({
            "connected": c is not None, "lastError": svc.last_error,
            "chain": None if svc.watcher is None else svc.watcher.chain,
            "operator": None if c is None else str(c.operator),
            "settlement": None if c is None else str(c.settlement.address),
            "tokens": {a: p.token for a, p in svc.pay.items()},
            "confirmations": svc.confirmations,
            "depositHeight": height})

    return [Route("/admin/v1/chain/faucet", faucet, methods=["POST"]),
            Route("/admin/v1/chain/withdraw", withdraw, methods=["POST"]),
            Route("/admin/v1/chain/status", status, methods=["GET"])]
