"""The ``chainbook`` subcommands of the service: serve, account, apikey, fund, ticks.

``cli.py`` registers them next to the core commands (demo, run, recover, snapshot).
``serve`` runs uvicorn in this process; while it runs, ``<data>/serve.json`` says where
(``{"host", "port", "pid"}``) so ``fund`` can go through its admin endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

DEFAULT_DATA = "chainbook-data"
SERVE_FILE = "serve.json"
HUB_STATS_ENV = "CHAINBOOK_HUB_STATS"  # a file: serve writes the hub counters there on exit


class CliError(Exception):
    """A user error: printed as ``chainbook: error: ...`` with exit status 2."""


def add_service_commands(sub: Any) -> None:
    """Add serve, account, apikey, fund and ticks to the ``chainbook`` parser."""
    def parser(name: str, help: str) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = sub.add_parser(name, help=help)
        sp.add_argument("--data", default=DEFAULT_DATA, help="data directory")
        return sp

    sp = parser("serve", "run the exchange (REST + WebSocket)")
    sp.add_argument("--config", help="TOML config (default: the built-in one)")
    sp.add_argument("--host", help="address to bind (default 127.0.0.1)")
    sp.add_argument("--port", type=int, help="port (default 8765; 0 = any free port)")
    sp.add_argument("--demo", action="store_true", help="create funded demo accounts")
    sp.add_argument("--fsync", choices=("every", "interval", "off"))
    sp.add_argument("--multicast", metavar="GROUP:PORT", help="send hot ticks by UDP")
    sp.add_argument("--accept-data-loss", action="store_true",
                    help="start even though the command log lost acknowledged commands "
                         "(docs/journal.md, Recovery); dropped for good")
    sp.set_defaults(fn=cmd_serve)

    acc = sub.add_parser("account", help="accounts").add_subparsers(dest="op", required=True)
    sp = acc.add_parser("create")
    sp.add_argument("name")
    sp.add_argument("--data", default=DEFAULT_DATA)
    sp.set_defaults(fn=cmd_account_create)
    sp = acc.add_parser("list")
    sp.add_argument("--data", default=DEFAULT_DATA)
    sp.set_defaults(fn=cmd_account_list)

    key = sub.add_parser("apikey", help="API keys").add_subparsers(dest="op", required=True)
    sp = key.add_parser("create")
    sp.add_argument("--account", required=True, help="account name or id")
    sp.add_argument("--perms", default="read,trade,withdraw")
    sp.add_argument("--data", default=DEFAULT_DATA)
    sp.set_defaults(fn=cmd_apikey_create)
    sp = key.add_parser("list")
    sp.add_argument("--account", help="account name or id (default: all)")
    sp.add_argument("--data", default=DEFAULT_DATA)
    sp.set_defaults(fn=cmd_apikey_list)
    sp = key.add_parser("revoke")
    sp.add_argument("key")
    sp.add_argument("--data", default=DEFAULT_DATA)
    sp.set_defaults(fn=cmd_apikey_revoke)

    sp = parser("fund", "deposit funds to an account")
    sp.add_argument("--account", required=True, help="account name or id")
    sp.add_argument("--asset", required=True)
    sp.add_argument("--amount", required=True, help="decimal amount, e.g. 1.5")
    sp.add_argument("--external-id", help="idempotency id (default: a new one)")
    sp.add_argument("--config", help="TOML config (asset decimals when no server runs)")
    sp.set_defaults(fn=cmd_fund)

    sp = sub.add_parser("ticks", help="print multicast hot ticks")
    sp.add_argument("--group", default="239.255.42.1:31337", metavar="GROUP:PORT")
    sp.add_argument("--resend", default="127.0.0.1:31338", metavar="HOST:PORT",
                    help="the server's gap re-send address ([multicast] resend_port)")
    sp.set_defaults(fn=cmd_ticks)


# --- serve ---------------------------------------------------------------------------


def check_listen(host: str, port: int) -> None:
    """Fail at once (one line, exit 2) when ``host:port`` cannot be listened on (a port
    in use, a name that does not resolve), not after recovery, the chain and the ledger
    have started (uvicorn would then exit with its own code, 3).  A port taken between
    this check and uvicorn's bind still fails, later."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family, kind, proto, _, addr = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn
            probe.bind(addr)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the exchange until SIGTERM/SIGINT; exit 0 after a clean shutdown."""
    import uvicorn

    from chainbook.app import build_app
    from chainbook.gateway.fasthttp import GuardedProtocol, fast_protocol
    from chainbook.gateway.rest import direct_rest, fast_table
    from chainbook.gateway.ws import WS_MAX_SIZE
    from chainbook.gateway.wsdirect import expose_raw_send
    from chainbook.service.config import (
        ConfigError,
        load_config,
        multicast_group,
        parse_hostport,
    )
    from chainbook.service.gcstats import GC_STATS_ENV
    from chainbook.service.gcstats import install as install_gc_stats

    try:
        config = load_config(args.config)
        if args.multicast:
            group, config.multicast_port = parse_hostport(args.multicast)
            config.multicast_group = multicast_group(group, "--multicast")
            config.multicast = True
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if args.host is not None:
        config.host = args.host
    if args.port is not None:
        config.port = args.port
    if args.fsync is not None:
        config.fsync = args.fsync
    check_listen(config.host, config.port)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gc_file = os.environ.get(GC_STATS_ENV)
    gc_stats = install_gc_stats() if gc_file else None  # the benchmarks' GC pauses
    data = Path(args.data)
    app, comps = build_app(config, data, demo=args.demo, accept_loss=args.accept_data_loss)
    # httptools and uvloop named explicitly (both pinned): "auto" falls back silently, and
    # Server.serve() under asyncio.run never installs uvloop (docs/gateway-performance.md).
    # permessage-deflate off: it compresses every frame once per subscriber (Binance's
    # streams do not offer it either). expose_raw_send lets the hub write pre-built
    # frames straight to the sockets (gateway/wsdirect.py); direct_rest calls the REST
    # endpoints past Starlette's middleware and router (gateway/rest.py), and the
    # httptools protocol answers the REST endpoints without ASGI at all (gateway/fasthttp.py).
    # Request line + headers, and the wait for them and for a body, are bounded
    # (fasthttp.GuardedProtocol); a WebSocket frame is at most WS_MAX_SIZE (uvicorn's
    # default of 16 MiB let one connection hold that much while it sent a frame).
    # X-Forwarded-For is believed only from [server] trusted_proxies (uvicorn would trust
    # it from 127.0.0.1, letting a local client choose the address its rate limit uses).
    uv_config = uvicorn.Config(
        expose_raw_send(direct_rest(app, app.routes)), host=config.host, port=config.port,
        log_level="warning",
        http=(fast_protocol(fast_table(app.routes)) if config.http == "fast"
              else GuardedProtocol),
        loop="uvloop", ws="websockets-sansio",
        ws_per_message_deflate=False, ws_max_size=WS_MAX_SIZE,
        lifespan="on", timeout_graceful_shutdown=5,
        proxy_headers=bool(config.trusted_proxies),
        forwarded_allow_ips=",".join(config.trusted_proxies) or None)
    server = uvicorn.Server(uv_config)
    try:
        with asyncio.Runner(loop_factory=uv_config.get_loop_factory()) as runner:
            return runner.run(_serve(server, comps, data, config.host))
    finally:
        if gc_file and gc_stats is not None:
            _write_json(Path(gc_file), gc_stats.as_dict())


async def _serve(server: Any, comps: Any, data: Path, host: str) -> int:
    from chainbook.app import freeze_heap, freeze_when_chain_ready
    from chainbook.journal.backend import LogError

    stop_requested: list[int] = []

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        # records only (no locks, no I/O: it may run inside any code, ledger/cli.py);
        # installed before start-up, which can take long (recovery), so a SIGTERM or
        # SIGINT then still ends in an orderly stop.  uvicorn installs its own handlers
        # while it serves, and re-raises the signal into this one when it is done.
        stop_requested.append(signum)
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    try:  # before uvicorn, so a start-up failure is one clear line (the lifespan skips it)
        await comps.start()
    except (LogError, ValueError, OSError) as exc:
        await comps.stop()
        raise CliError(f"cannot start on {data}: {exc}") from None
    except BaseException:  # cancelled, interrupted: whatever started is stopped in order
        await comps.stop()
        raise
    if stop_requested:
        await comps.stop()
        return 0
    # the start-up heap out of every later collection (a full one over it stalled every
    # thread 75-145 ms): now, before uvicorn listens, and once the chain has connected
    freeze_heap(full=True)
    freezer = (asyncio.create_task(freeze_when_chain_ready(comps.chain), name="gc-freeze")
               if comps.chain is not None else None)
    info = data / SERVE_FILE
    announce = asyncio.create_task(_announce(server, info, data, host))
    try:
        await server.serve()  # returns after SIGTERM/SIGINT and the lifespan shutdown
    finally:
        announce.cancel()
        if freezer is not None:
            freezer.cancel()
        info.unlink(missing_ok=True)
        await comps.stop()  # already done by the lifespan unless shutdown was forced
        lifespan = getattr(server, "lifespan", None)
        if server.force_exit and lifespan is not None:
            # a second signal made uvicorn skip the lifespan shutdown: end the app's
            # lifespan task now (components stopped above), or the runner cancels it at
            # exit and Starlette prints a CancelledError traceback
            await lifespan.shutdown()
        stats_file = os.environ.get(HUB_STATS_ENV)
        if stats_file:  # for the benchmarks: the fan-out counters seen from the server
            _write_json(Path(stats_file), dataclasses.asdict(comps.hub.stats))
    return 0


async def _announce(server: Any, info: Path, data: Path, host: str) -> None:
    """Once uvicorn listens: write serve.json with the bound port, print the address."""
    while not server.started:
        await asyncio.sleep(0.02)
    port = next(s.getsockname()[1] for srv in server.servers for s in srv.sockets)
    _write_json(info, {"host": host, "port": port, "pid": os.getpid()})
    shown = f"[{host}]" if ":" in host else host
    print(f"chainbook serving on http://{shown}:{port} (data: {data})", flush=True)


def _write_json(path: Path, obj: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj) + "\n")
    os.replace(tmp, path)


def running_server(data: Path) -> dict[str, Any] | None:
    """The ``serve.json`` of a live ``chainbook serve`` on ``data``, or None."""
    try:
        info = json.loads((data / SERVE_FILE).read_text())
        pid, port = int(info["pid"]), int(info["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    info["port"] = port
    return dict(info)


# --- accounts and keys ---------------------------------------------------------------


def _keystore(args: argparse.Namespace) -> Any:
    from chainbook.app import KEYS_FILE
    from chainbook.service.keys import KeyStore

    return KeyStore(Path(args.data) / KEYS_FILE)


def _account(ks: Any, text: str) -> Any:
    acct = ks.account(text)
    if acct is None:
        raise CliError(f"no account {text!r} (chainbook account list)")
    return acct


def cmd_account_create(args: argparse.Namespace) -> int:
    """Create an account and print its id."""
    from chainbook.service.keys import KeyStoreError

    with _keystore(args) as ks:
        try:
            acct = ks.create_account(args.name)
        except KeyStoreError as exc:
            raise CliError(str(exc)) from None
    print(json.dumps({"account": acct, "name": args.name}))
    return 0


def cmd_account_list(args: argparse.Namespace) -> int:
    """Print every account, one JSON object a line."""
    with _keystore(args) as ks:
        for a in ks.accounts():
            print(json.dumps({"account": a.id, "name": a.name, "created": a.created_ms}))
    return 0


def cmd_apikey_create(args: argparse.Namespace) -> int:
    """Create an API key and print it with its secret (shown this once)."""
    from chainbook.service.keys import KeyStoreError, parse_perms

    with _keystore(args) as ks:
        acct = _account(ks, args.account)
        try:
            key = ks.create_key(acct.id, parse_perms(args.perms))
        except KeyStoreError as exc:
            raise CliError(str(exc)) from None
    print(json.dumps({"account": acct.id, "name": acct.name, "api_key": key.key,
                      "api_secret": key.secret, "perms": sorted(key.perms)}))
    return 0


def cmd_apikey_list(args: argparse.Namespace) -> int:
    """Print the active keys (without secrets), one JSON object a line."""
    with _keystore(args) as ks:
        acct = _account(ks, args.account).id if args.account else None
        for k in ks.keys(acct):
            print(json.dumps({"account": k.account, "api_key": k.key,
                              "perms": sorted(k.perms)}))
    return 0


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    """Revoke a key; it stops working at once, also on a running server."""
    with _keystore(args) as ks:
        if not ks.revoke_key(args.key):
            raise CliError("no such active key")
    print(json.dumps({"revoked": args.key}))
    return 0


# --- funding -------------------------------------------------------------------------


def cmd_fund(args: argparse.Namespace) -> int:
    """Deposit through the running server's admin endpoint, or into the data dir."""
    data = Path(args.data)
    with _keystore(args) as ks:
        acct = _account(ks, args.account)
    ext = args.external_id or f"cli:{uuid.uuid4()}"
    server = running_server(data)
    if server is not None:
        reply = _fund_via_server(data, server, acct.id, args.asset, args.amount, ext)
    else:
        reply = _fund_offline(data, args.config, acct.id, args.asset, args.amount, ext)
    print(json.dumps(reply))
    return 0


def _fund_via_server(data: Path, server: dict[str, Any], account: int, asset: str,
                     amount: str, ext: str) -> dict[str, Any]:
    reply: dict[str, Any] = admin_request(
        data, server, "/admin/v1/deposit",
        {"account": account, "asset": asset, "amount": amount, "external_id": ext},
        what="the deposit", timeout=30)
    return reply


def admin_request(data: Path, server: dict[str, Any], path: str,
                  body: dict[str, Any] | None, *, what: str = "the request",
                  timeout: float = 60) -> Any:
    """Call the running server's loopback admin endpoint ``path`` (POST with a JSON
    ``body``, GET without) with the token in ``<data>/admin-token``; its JSON reply, or a
    CliError saying why not."""
    from chainbook.service.admin import TOKEN_FILE, TOKEN_HEADER

    try:
        token = (data / TOKEN_FILE).read_text().strip()
    except OSError as exc:
        raise CliError(f"cannot read the admin token: {exc}") from None
    host = str(server.get("host", "127.0.0.1"))
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    req = urllib.request.Request(
        f"http://{shown}:{server['port']}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", TOKEN_HEADER: token})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            reply = json.loads(exc.read())
            msg = reply.get("msg") or (  # a refused withdrawal: its state, reason and id
                f"{reply.get('state', '')} {reply.get('reason', '')} (id {reply.get('id')})"
                if reply.get("reason") else exc.reason)
        except (ValueError, AttributeError):
            msg = exc.reason
        raise CliError(f"the server refused {what}: {msg}") from None
    except OSError as exc:
        raise CliError(f"cannot reach the server at {shown}:{server['port']}: {exc}") from None


def _fund_offline(data: Path, config_path: str | None, account: int, asset: str,
                  amount: str, ext: str) -> dict[str, Any]:
    from chainbook.domain.commands import Deposit
    from chainbook.domain.events import OrderRejected
    from chainbook.domain.units import UnitError, amount_str, amount_units
    from chainbook.journal.backend import LogError
    from chainbook.journal.recovery import DurableEngine, JournalLocked
    from chainbook.service.assetsfile import check_decimals
    from chainbook.service.config import ConfigError, load_config

    try:
        cfg_assets = load_config(config_path).assets
        check_decimals(data, cfg_assets)  # balances are in the recorded units
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    decimals = cfg_assets.get(asset)
    if decimals is None:
        raise CliError(f"unknown asset {asset!r}")
    try:
        units = amount_units(amount, decimals)
    except UnitError as exc:
        raise CliError(f"amount: {exc}") from None
    try:
        de = DurableEngine(data, snapshot_mode="inline")
    except JournalLocked:
        raise CliError(f"{data} is in use by another process, but no live server is "
                       f"recorded in {data / SERVE_FILE}") from None
    except LogError as exc:  # a damaged log: what serve and recover say, in one line
        raise CliError(f"{data}: {exc}") from None
    with de:
        seq, events = de.submit(Deposit(account, asset, units, ext),
                                max(time.time_ns(), de.engine.last_ts))
        de.commit()
        rej = next((e for e in events if isinstance(e, OrderRejected)), None)
        free = de.engine.balances.available(account, asset)
        locked = de.engine.balances.frozen(account, asset)
    if rej is not None and rej.reason.name != "DUPLICATE_EXTERNAL_ID":
        raise CliError(f"deposit rejected: {rej.reason.name}")
    return {"seq": seq, "account": account, "asset": asset,
            "amount": amount_str(units, decimals), "externalId": ext,
            "duplicate": rej is not None,
            "balance": {"asset": asset, "free": amount_str(free, decimals),
                        "locked": amount_str(locked, decimals)}}


# --- ticks ---------------------------------------------------------------------------


def cmd_ticks(args: argparse.Namespace) -> int:
    """Listen to the multicast hot ticks and print them until interrupted."""
    from chainbook.service.config import ConfigError, parse_hostport

    try:
        group, port = parse_hostport(args.group)
        resend = parse_hostport(args.resend)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    from chainbook.marketdata.multicast import listen

    try:
        listen(group, port, resend)
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
    return 0
