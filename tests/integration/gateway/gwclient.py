"""Helpers for the gateway tests: a real ``chainbook serve`` subprocess and real clients.

``start_server`` starts a server on a free loopback port over a data dir and waits for
its ``serve.json``; ``stop_server`` stops it with SIGTERM (SIGKILL if it does not exit). The client
builders follow spec §1 (``/work/shared/specs/binance-compat.md``) exactly: ccxt and
ccxt.pro get every REST and WS URL rewritten to the server and the §1 options;
python-binance gets subclasses with ``API_URL``, ``WS_API_URL`` and ``STREAM_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import json
import re
import subprocess
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro
import httpx

with warnings.catch_warnings():  # python-binance 1.0.37 imports websockets' legacy API
    warnings.filterwarnings("ignore", "websockets.* is deprecated", DeprecationWarning)
    from binance.async_client import AsyncClient
    from binance.client import Client
    from binance.ws.streams import BinanceSocketManager

from chainbook.service.config import DEFAULT_TOML
from chainbook.service.spawn import spawn_serve, stop_process

SYMBOLS = ("BTCUSDT", "ETHUSDT", "ETHBTC")
FEE_BPS = 10  # maker and taker fee of the built-in symbols, charged in the quote asset
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

OPTIONS: dict[str, Any] = {  # spec §1, verbatim
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "adjustForTimeDifference": False,
    "fetchOpenOrders": {"warnWithoutSymbol": False},
}


@dataclass
class Account:
    name: str
    api_key: str
    api_secret: str


@dataclass
class Server:
    """One running ``chainbook serve`` process."""

    data: Path
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    log: Path
    accounts: dict[str, Account] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def log_tail(self, n: int = 4000) -> str:
        """The end of the server's stdout/stderr, for failure messages."""
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


GENEROUS_LIMITS = {"request_weight_per_minute": 10_000_000, "orders_per_10s": 1_000_000,
                   "orders_per_day": 100_000_000}


def config_text(**rate_limits: int) -> str:
    """The built-in default config with the ``[rate_limits]`` values replaced."""
    text = DEFAULT_TOML
    for key, value in rate_limits.items():
        text, n = re.subn(rf"(?m)^{key} = \d+", f"{key} = {value}", text)
        if n != 1:
            raise ValueError(f"rate_limits.{key} is not in the default config")
    return text


def start_server(data: Path, *extra: str, demo: bool = True,
                 rate_limits: dict[str, int] | None = None, server_toml: str = "") -> Server:
    """Start ``chainbook serve`` on a free port over ``data``; wait for serve.json.

    The server runs the built-in config with ``rate_limits`` (default: limits no test
    reaches, since every test client shares 127.0.0.1) and the ``key = value`` lines of
    ``server_toml`` in place of the default's."""
    data.mkdir(parents=True, exist_ok=True)
    config = data.parent / f"{data.name}.toml"
    text = config_text(**(rate_limits or GENEROUS_LIMITS))
    for line in filter(None, server_toml.splitlines()):  # replaces the default's key
        text, n = re.subn(rf"(?m)^{line.split('=')[0].strip()} = .*$", line, text, count=1)
        if n != 1:
            raise ValueError(f"{line!r}: no such key in the default config")
    config.write_text(text)
    log = data.parent / f"{data.name}-serve.log"
    args = [*(["--demo"] if demo else []), "--host", "127.0.0.1", "--port", "0",
            "--config", str(config), *extra]
    proc, meta = spawn_serve(args, data, log, timeout=START_TIMEOUT)
    srv = Server(data, proc, meta["host"], int(meta["port"]), log)
    if demo:
        for entry in json.loads((data / "demo-accounts.json").read_text()):
            srv.accounts[entry["name"]] = Account(entry["name"], entry["api_key"],
                                                  entry["api_secret"])
    return srv


def stop_server(srv: Server) -> int:
    """SIGTERM, wait, SIGKILL if it hangs; return the exit status (negative if killed)."""
    return stop_process(srv.proc, STOP_TIMEOUT)


# --- ccxt and ccxt.pro ---------------------------------------------------------------


def redirect(ex: Any, base: str, ws: str) -> Any:
    """Rewrite every REST and WS URL of a ccxt binance instance to our server (spec §1)."""
    api = ex.urls["api"]
    for k, u in list(api.items()):
        if isinstance(u, str):
            api[k] = base + urllib.parse.urlparse(u).path
    for k, u in list(api.get("ws", {}).items()):
        if isinstance(u, str):
            api["ws"][k] = ws + urllib.parse.urlparse(u).path
        elif isinstance(u, dict):
            for k2, u2 in list(u.items()):
                u[k2] = ws + urllib.parse.urlparse(u2).path
    return ex


def _ccxt_config(srv: Server, name: str | None, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"options": copy.deepcopy(OPTIONS),
                              # the server's own limits are under test, not ccxt's throttle
                              "enableRateLimit": False}
    if name is not None:
        acct = srv.accounts[name]
        config.update(apiKey=acct.api_key, secret=acct.api_secret)
    config.update(overrides)
    return config


def ccxt_client(srv: Server, name: str | None = "demo1", **overrides: Any) -> ccxt.binance:
    """A sync ccxt binance client for account ``name`` (None: public only)."""
    return redirect(ccxt.binance(_ccxt_config(srv, name, **overrides)), srv.base, srv.ws)


def pro_client(srv: Server, name: str | None = "demo1", **overrides: Any) -> Any:
    """A ccxt.pro binance client (create it inside the running event loop; close it)."""
    return redirect(ccxt.pro.binance(_ccxt_config(srv, name, **overrides)), srv.base, srv.ws)


# --- python-binance --------------------------------------------------------------------


@contextlib.contextmanager
def own_event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """Set a fresh current event loop and close it afterwards.

    python-binance's sync ``Client`` takes (or creates) the thread's current loop for its
    WebSocket API object and never closes it; this keeps that loop from leaking."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def pb_client(srv: Server, name: str = "demo1") -> Client:
    """A python-binance ``Client`` subclass pointed at the server (spec §1).

    Use it inside ``own_event_loop()`` (the test module does, with a fixture)."""
    cls = type("LocalClient", (Client,), {"API_URL": srv.base + "/api",
                                          "WS_API_URL": srv.ws + "/ws-api/v3"})
    acct = srv.accounts[name]
    return cls(acct.api_key, acct.api_secret)


async def pb_async_client(srv: Server, name: str = "demo1") -> AsyncClient:
    """A python-binance ``AsyncClient`` subclass pointed at the server (close_connection!)."""
    cls = type("LocalAsyncClient", (AsyncClient,), {"API_URL": srv.base + "/api",
                                                    "WS_API_URL": srv.ws + "/ws-api/v3"})
    acct = srv.accounts[name]
    return await cls.create(acct.api_key, acct.api_secret)


def pb_socket_manager(srv: Server, client: AsyncClient) -> BinanceSocketManager:
    """A ``BinanceSocketManager`` subclass whose streams go to the server (spec §1)."""
    cls = type("LocalBSM", (BinanceSocketManager,), {"STREAM_URL": srv.ws + "/"})
    return cls(client)


# --- raw signed requests -----------------------------------------------------------------


def sign(secret: str, payload: str) -> str:
    """hex HMAC-SHA256 of ``payload`` (spec §2)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_request(http: httpx.Client, srv: Server, name: str, method: str, path: str,
                   params: dict[str, Any], *, ts_ms: int | None = None) -> httpx.Response:
    """Send a signed request as ``name`` with ``params`` in the query string."""
    acct = srv.accounts[name]
    query = urllib.parse.urlencode(
        {**params, "timestamp": ts_ms if ts_ms is not None else int(time.time() * 1000)})
    query += "&signature=" + sign(acct.api_secret, query)
    return http.request(method, f"{srv.base}{path}?{query}",
                        headers={"X-MBX-APIKEY": acct.api_key})


# --- money and housekeeping -------------------------------------------------------------

Q8 = Decimal("0.00000001")


def D(x: Any) -> Decimal:
    """An exact Decimal from a ccxt float or a decimal string."""
    return Decimal(str(x))


def fee(price: Decimal, qty: Decimal) -> Decimal:
    """The quote fee on one trade: notional * 10 bps, rounded down to 8 decimals."""
    return (price * qty * FEE_BPS / Decimal(10_000)).quantize(Q8, rounding=ROUND_DOWN)


def totals(ex: ccxt.binance) -> dict[str, tuple[Decimal, Decimal]]:
    """(free, locked) per asset from the raw account balances."""
    info = ex.fetch_balance()["info"]
    return {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in info["balances"]}


def cancel_everything(srv: Server) -> None:
    """Cancel every open order of both demo accounts on every symbol."""
    for name in srv.accounts:
        ex = ccxt_client(srv, name)
        ex.load_markets()
        for order in ex.fetch_open_orders():
            try:
                ex.cancel_order(order["id"], order["symbol"])
            except ccxt.OrderNotFound:
                pass
        assert ex.fetch_open_orders() == [], f"{name} still has open orders"
