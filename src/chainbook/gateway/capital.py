"""Binance capital endpoints (deposits, withdrawals) and the trade-proof endpoint.

    GET  /sapi/v1/capital/deposit/address   coin, network?      -> {coin, address, tag, url}
    GET  /sapi/v1/capital/deposit/hisrec    coin?, status?, startTime?, endTime?, offset?,
                                            limit?              -> [deposit]
    POST /sapi/v1/capital/withdraw/apply    coin, address, amount, network? -> {id}
    GET  /sapi/v1/capital/withdraw/history  coin?, status?, idList?, startTime?, endTime?,
                                            offset?, limit?     -> [withdrawal]
    GET  /api/v1/chain/proof                tradeId             -> the trade's Merkle proof

All capital calls are SIGNED (withdraw/apply needs the ``withdraw`` permission).  Deposit
status: 0 pending, 1 credited, 7 not credited (dust or refused).  Withdrawal status
(Binance codes): 4 processing (held, signed, sent, confirming), 6 completed, 5 failure
(refunded), 3 rejected (the hold was refused).  Fees are 0.  The proof endpoint needs no
key: anyone may verify a trade.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from chainbook.domain.enums import Reject
from chainbook.domain.units import UnitError, amount_str, amount_units
from chainbook.gateway import errors
from chainbook.gateway.context import GatewayContext
from chainbook.gateway.endpoint import NONE, SIGNED, Call, endpoint, error_response

log = logging.getLogger(__name__)
SAPI = "/sapi/v1/capital"
_W_STATUS = {"REQUESTED": 4, "HELD": 4, "SIGNED": 4, "SENT": 4, "CONFIRMED": 4,
             "COMPLETED": 6, "FAILED": 4, "REFUNDED": 5, "REJECTED": 3}
_D_STATUS = {"PENDING": 0, "CREDITED": 1, "DUST": 7, "REJECTED": 7}
LIST_MAX = 1000
MAX_INT = 2**63 - 1


def _no_coin(coin: str) -> errors.ApiError:
    return errors.ApiError(400, -4019, f"Current asset {coin} is not open for deposit "
                                       "or withdrawal on this chain.")


def _int(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    v = params.get(name)
    if v is None or v == "":
        return default
    if not (v.isascii() and v.isdigit()) or len(v) > 19:  # int() reads any Unicode digit
        raise errors.illegal_chars(name, "^[0-9]{1,19}$")
    value = int(v)
    if value > MAX_INT:  # 19 digits reach past what SQLite (and Binance) take
        raise errors.ApiError(400, -1100, f"Illegal characters found in parameter "
                                          f"'{name}'; legal range is '0..{MAX_INT}'.")
    return value


def _page(rows: list[Any], params: dict[str, str], when: Callable[[Any], int]) -> list[Any]:
    start, end = _int(params, "startTime"), _int(params, "endTime")
    rows = [r for r in rows if (start is None or when(r) >= start)
            and (end is None or when(r) <= end)]
    offset = _int(params, "offset", 0) or 0
    limit = min(_int(params, "limit", LIST_MAX) or LIST_MAX, LIST_MAX)
    return rows[offset:offset + limit]


def _apply_time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def capital_routes(ctx: GatewayContext, svc: Any) -> list[BaseRoute]:
    """The routes above for a ``chain.chainservice.ChainService``."""
    network = svc.cfg.network

    def coin_of(params: dict[str, str], required: bool) -> str | None:
        coin = params.get("coin")
        if not coin:
            if required:
                raise errors.mandatory("coin")
            return None
        coin = coin.upper()
        if coin not in svc.pay:
            raise _no_coin(coin)
        net = params.get("network")
        if net and net.upper() != network.upper():
            raise errors.ApiError(400, -4019, f"Network {net} is not supported; use "
                                              f"{network}.")
        return coin

    async def deposit_address(ctx: GatewayContext, call: Call) -> Any:
        coin = coin_of(call.params, True)
        address = await asyncio.to_thread(svc.addresses.address, call.account)
        return {"coin": coin, "address": address, "tag": "", "url": ""}

    async def deposit_history(ctx: GatewayContext, call: Call) -> Any:
        coin = coin_of(call.params, False)
        status = _int(call.params, "status")
        out = []
        for r in await asyncio.to_thread(svc.store.deposits, call.account):
            st = _D_STATUS.get(r.state, 7)
            if (coin is not None and r.asset != coin) or (status is not None
                                                          and st != status):
                continue
            out.append((r, st))
        page = _page(out, call.params, lambda x: int(x[0].seen_ms))
        return [{"id": str(r.id), "amount": amount_str(r.units, svc.assets[r.asset]),
                 "coin": r.asset, "network": network, "status": st,
                 "address": r.address, "addressTag": "", "txId": "0x" + r.tx_hash.hex(),
                 "insertTime": r.seen_ms, "transferType": 0,
                 "confirmTimes": f"{svc.deposit_confirmations(r)}/{svc.confirmations}",
                 "unlockConfirm": svc.confirmations, "walletType": 0}
                for r, st in page]

    async def withdraw_apply(ctx: GatewayContext, call: Call) -> Any:
        from chainbook.chain.corebridge import outcome
        from chainbook.chain.withdrawals import (
            WithdrawalError,
            hold_command,
            prepare_withdrawal,
            record_hold,
        )

        coin = coin_of(call.params, True)
        if coin is None:
            raise errors.mandatory("coin")
        for name in ("address", "amount"):
            if not call.params.get(name):
                raise errors.mandatory(name)
        try:
            units = amount_units(call.params["amount"], svc.assets[coin])
            row = await asyncio.to_thread(
                prepare_withdrawal, svc.store, svc.pay, svc.assets, call.account, coin, units,
                call.params["address"], ctx.clock_ms())
        except (UnitError, WithdrawalError) as e:
            raise errors.ApiError(400, -1130, f"Invalid withdrawal: {e}.") from None
        try:
            applied = await ctx.core.submit(hold_command(row))
        except Exception:
            # the request is recorded (REQUESTED) and the next start applies its hold, so
            # it may well be paid: "status unknown" (check the withdrawal history), never
            # "try again", which would make a second withdrawal
            raise errors.status_unknown() from None
        result = outcome(list(applied.events))
        try:
            held = await asyncio.to_thread(record_hold, svc.store, row.id, result,
                                           ctx.clock_ms())
        except Exception:
            # the core holds the funds but the store did not take the outcome: the
            # processor records it after REQUEST_GRACE_MS and pays (or the start does):
            # "status unknown", never a generic error that invites a second request
            log.exception("withdrawal %s: recording the hold failed", row.id)
            raise errors.status_unknown() from None
        if held != "HELD":
            if result == Reject.INSUFFICIENT_BALANCE.name:
                raise errors.ApiError(400, -4026, "User has insufficient balance.")
            raise errors.ApiError(400, -4026, f"Withdrawal refused: {result}.")
        return {"id": row.id}

    async def withdraw_history(ctx: GatewayContext, call: Call) -> Any:
        coin = coin_of(call.params, False)
        status = _int(call.params, "status")
        ids = set(filter(None, call.params.get("idList", "").split(",")))
        out = []
        for r in reversed(await asyncio.to_thread(svc.store.withdrawals, call.account)):
            st = _W_STATUS[r.state]
            if (coin is not None and r.asset != coin) or (status is not None
                                                          and st != status) \
                    or (ids and r.id not in ids):
                continue
            out.append((r, st))
        page = _page(out, call.params, lambda x: int(x[0].apply_ms))
        return [{"id": r.id, "amount": amount_str(r.units, svc.assets[r.asset]),
                 "transactionFee": "0", "coin": r.asset, "status": st,
                 "address": r.address, "txId": "0x" + r.tx_hash.hex() if r.tx_hash else "",
                 "applyTime": _apply_time(r.apply_ms), "network": network,
                 "transferType": 0, "info": r.note or "", "walletType": 0,
                 "completeTime": _apply_time(r.updated_ms) if st in (5, 6) else None}
                for r, st in page]

    async def proof(ctx: GatewayContext, call: Call) -> Any:
        trade_id = _int(call.params, "tradeId")
        if trade_id is None:
            raise errors.mandatory("tradeId")
        if svc.settler is None:
            raise errors.ApiError(503, -1001, "The chain is not connected yet.")
        settler = svc.settler
        # off the event loop: the store's lock is shared with the chain worker, and a
        # batch's first proof builds its tree (cached after that, chain/proofs.py)
        p, state = await asyncio.to_thread(
            lambda: (settler.proof(trade_id), settler.trade_state(trade_id)))
        if p is None:
            raise errors.ApiError(404, -2013, f"Trade {trade_id} is in no batch yet.")
        return {**p.to_json(), "state": state}

    table = (("GET", f"{SAPI}/deposit/address", deposit_address, 10, SIGNED, "read"),
             ("GET", f"{SAPI}/deposit/hisrec", deposit_history, 1, SIGNED, "read"),
             ("POST", f"{SAPI}/withdraw/apply", withdraw_apply, 900, SIGNED, "withdraw"),
             ("GET", f"{SAPI}/withdraw/history", withdraw_history, 18, SIGNED, "read"),
             ("GET", "/api/v1/chain/proof", proof, 10, NONE, "read"))
    routes: list[BaseRoute] = []
    for method, path, fn, weight, security, perm in table:
        run = endpoint(ctx, fn, weight=weight, security=security, perm=perm)
        routes.append(Route(path, _only(method, run), methods=[
            "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    return routes


def _only(method: str, run: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def dispatch(request: Request) -> Response:
        got = "GET" if request.method == "HEAD" else request.method
        if got != method:
            exc = errors.method_not_allowed(request.method, request.scope.get("path", ""))
            exc.headers["Allow"] = method
            return error_response(exc)
        response: Response = await run(request)
        return response

    return dispatch
