"""The composition root of ``chainbook serve``: build the parts, wire them, start and stop.

    core (CoreService) ──batches──► MarketData.on_batch ──► Hub (streams)
                                   AccountViews.on_batch ─► Hub (user data)
                       ──core thread──► TickSender.on_commit (multicast, optional)

Start-up (the app's lifespan): recover the core and replay its event journal into the
listeners, start the ledger (a supervised child process, or a thread: ``[ledger] mode``),
list the configured symbols the core does not have, set up the demo accounts if asked,
start the market-data timers.  Shutdown: stop taking commands, commit and close the core
(nothing acknowledged is lost), stop the timers, close the WebSocket sessions, let the
ledger catch up (a short grace) and stop it, close the tick sender.  docs/serve.md
describes the whole process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from chainbook.domain.units import amount_units
from chainbook.service.admin import admin_routes, new_token, write_token
from chainbook.service.applied import Applied, Listener
from chainbook.service.assetsfile import bind_decimals, check_decimals
from chainbook.service.config import Config
from chainbook.service.core import CoreService
from chainbook.service.keys import PERMS, KeyStore
from chainbook.service.ledgerproc import LedgerProcess

log = logging.getLogger(__name__)

DEMO_ACCOUNTS = ("demo1", "demo2")
DEMO_FUNDS = (("BTC", "10"), ("ETH", "100"), ("USDT", "1000000"))
DEMO_FILE = "demo-accounts.json"
KEYS_FILE = "gateway.sqlite"
CHAIN_FREEZE_POLL_S = 0.25  # how often start-up checks whether the chain has connected
GRANT_CHECK_S = 1.0  # how often ended listenKeys and revoked API keys cut user streams


def clock_ms() -> int:
    """Wall-clock milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


@dataclass
class Components:
    """The running parts of one exchange process (what ``build_app`` wired)."""

    config: Config
    data_dir: Path
    core: CoreService
    keys: KeyStore
    hub: Any
    market: Any
    views: Any
    limits: Any
    ctx: Any  # chainbook.gateway.context.GatewayContext
    admin_token: str
    demo: bool = False
    ticks: Any = None  # chainbook.marketdata.multicast.TickSender when enabled
    # when [ledger] enabled: service.ledgerproc.LedgerProcess (mode "process") or
    # ledger.service.LedgerService (mode "thread"); both have an int ``applied_seq``
    ledger: Any = None
    chain: Any = None  # chainbook.chain.chainservice.ChainService when [chain] enabled
    demo_file: Path | None = None
    _market_task: asyncio.Task[None] | None = field(default=None, repr=False)
    _grants_task: asyncio.Task[None] | None = field(default=None, repr=False)
    _started: bool = field(default=False, repr=False)
    _stopped: bool = field(default=False, repr=False)

    async def start(self) -> None:
        """Recover and replay the core, list symbols, set up the demo, start timers.
        Only the first call does anything."""
        if self._started:
            return
        self._started = True
        check_decimals(self.data_dir, self.config.assets)  # before anything reads a balance
        await self.core.start()  # takes the data directory's LOCK (or fails)
        bind_decimals(self.data_dir, self.config.assets)
        # only then the token: a second serve refused by the lock must not replace the
        # running server's token (the CLI would be refused by it)
        write_token(self.data_dir, self.admin_token)
        if self.config.ledger and self.config.ledger_mode == "process":
            core = self.core
            self.ledger = LedgerProcess(self.config.ledger_url, self.data_dir,
                                        durable_seq=lambda: core.durable_seq)
            self.ledger.start()  # tails the journal the core just recovered
        elif self.config.ledger:
            self.ledger = start_ledger(self.config.ledger_url, self.data_dir)
            self.core.add_listener(self.ledger.on_batch)
        added = await self.core.ensure_symbols(self.config.symbols)
        if added:
            log.info("listed %s", ", ".join(added))
        if self.demo:
            self.demo_file = await setup_demo(self.core, self.keys, self.data_dir)
            print(f"demo accounts: {self.demo_file}", flush=True)
        if self.chain is not None:
            await self.chain.start()
        self._market_task = asyncio.create_task(self.market.run(), name="market-timers")
        self._grants_task = asyncio.create_task(self._check_grants(), name="user-grants")

    async def _check_grants(self) -> None:
        """Every second: end the user-data streams whose listenKey or API key went away
        (``Hub.end_revoked_users``; a revoke from the CLI reaches the key cache within
        ``KeyStore.recheck_s``)."""
        while True:
            await asyncio.sleep(GRANT_CHECK_S)
            try:
                self.hub.end_revoked_users(clock_ms())
            except Exception:  # a bug here must not stop the checks
                log.exception("user-data grant check failed")

    async def stop(self) -> None:
        """Stop taking commands, commit and close the core, then the rest. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.chain is not None:  # it submits to the core: stop it first
                await self.chain.stop()
            await self.core.stop()
        finally:
            self.market.stop()
            if self._grants_task is not None:
                self._grants_task.cancel()
            task = self._market_task
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                    await asyncio.wait_for(task, 2.0)
            self.hub.close_all()
            if isinstance(self.ledger, LedgerProcess):
                await asyncio.to_thread(self.ledger.stop, self.core.durable_seq)
            elif self.ledger is not None:
                await asyncio.to_thread(stop_ledger, self.ledger, self.core.durable_seq)
            if self.ticks is not None:
                self.ticks.close()
            self.keys.close()


def build_app(config: Config, data_dir: str | os.PathLike[str], *,
              demo: bool = False, accept_loss: bool = False) -> tuple[Starlette, Components]:
    """Build the Starlette app and its components for ``data_dir`` (not started yet:
    the app's lifespan starts and stops them)."""
    # the gateway and market data are imported here so the service modules stand alone
    from chainbook.gateway import rest, ws
    from chainbook.gateway.context import GatewayContext
    from chainbook.gateway.hub import Hub
    from chainbook.gateway.ratelimit import RateLimiter
    from chainbook.gateway.views import AccountViews
    from chainbook.marketdata import MarketData

    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    core = CoreService(data, config.assets, fsync=config.fsync,
                       snapshot_every=config.snapshot_every, accept_loss=accept_loss)
    keys = KeyStore(data / KEYS_FILE)
    hub = Hub()
    market = MarketData(core, hub, clock_ms)

    def settled_seq() -> int:
        """The ledger's applied seq: trades at or below it are SETTLED."""
        led = comps.ledger
        return int(led.applied_seq) if led is not None else 0

    views = AccountViews(core, hub, settled_seq, clock_ms)
    rl = config.rate_limits
    limits = RateLimiter(clock_ms, weight_per_minute=rl["request_weight_per_minute"],
                         orders_per_10s=rl["orders_per_10s"],
                         orders_per_day=rl["orders_per_day"],
                         ws_connections_per_5m=rl["ws_connections_per_5m"])
    core.add_listener(market.on_batch)
    core.add_listener(views.on_batch)
    ticks = None
    if config.multicast:
        from chainbook.marketdata.multicast import TickSender

        ticks = TickSender(config.multicast_group, config.multicast_port,
                           config.multicast_resend_port)
        core.add_core_listener(ticks.on_commit)  # live batches, on the core thread
        core.add_listener(_history_only(ticks.replay))  # the book as of the restart
    token = new_token()
    # KeyStore's ApiKey is frozen: mypy reads ApiKeyInfo's plain attributes as writable
    ctx = GatewayContext(core=core, market=market, views=views, hub=hub, limits=limits,
                         keys=keys,
                         clock_ms=clock_ms, settled_seq=settled_seq, admin_token=token)
    comps = Components(config=config, data_dir=data, core=core, keys=keys, hub=hub,
                       market=market, views=views, limits=limits, ctx=ctx,
                       admin_token=token, demo=demo, ticks=ticks)
    from chainbook.chain.chainservice import attach_chain

    comps.chain = attach_chain(comps)  # deposits, withdrawals, settlement (docs/chain.md)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await comps.start()
        except BaseException:
            await comps.stop()
            raise
        try:
            yield
        finally:
            await comps.stop()

    # REST first (the hot path: Starlette tries routes in order); no two routes match the
    # same request, except the catch-all 404, which stays last
    routes = [*rest.build_rest_routes(ctx), *ws.build_ws_routes(ctx), *admin_routes(ctx),
              *ctx.extra_routes, *rest.fallback_routes()]
    app = Starlette(routes=routes, exception_handlers=rest.exception_handlers(),
                    lifespan=lifespan)
    app.state.components = comps
    return app, comps


def freeze_heap(full: bool) -> None:
    """Collect, then move every object alive now into the collector's permanent
    generation (``gc.freeze``): later collections, the full ones included, no longer
    traverse the start-up heap (code, web3, py-evm, SQLAlchemy: ~145,000 objects, a
    75-95 ms full collection that stalled every thread; docs/gateway-performance.md,
    Session 3).  ``full`` runs a full collection first (start-up, before serving); else
    only the young generations (a few ms), so older garbage, if any, stays for good.
    A process-wide policy: ``serve`` calls it, not ``Components`` (tests build many)."""
    if full:
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()


async def freeze_when_chain_ready(chain: Any) -> None:
    """``freeze_heap`` again once the chain worker has connected: web3 and py-evm,
    imported and set up in that thread, are half of the heap."""
    while not chain.ready.is_set():
        await asyncio.sleep(CHAIN_FREEZE_POLL_S)
    freeze_heap(full=False)


def _history_only(fn: Callable[[list[Applied]], None]) -> Listener:
    """A loop listener that passes the start-up history (live=False) to ``fn``."""

    def listener(batch: list[Applied], live: bool) -> None:
        if not live:
            fn(batch)

    return listener


def start_ledger(url: str, data_dir: Path) -> Any:
    """Open the SQL ledger (``url``, or SQLite in ``data_dir``) and start its thread: it
    tails the event journal, so it catches up with whatever it missed while stopped."""
    from chainbook.ledger.service import LedgerService

    ledger = LedgerService(url or None, data_dir)
    ledger.start_thread()
    return ledger


def stop_ledger(ledger: Any, durable_seq: int, timeout: float = 5.0) -> None:
    """Give the ledger ``timeout`` seconds to settle up to ``durable_seq``, then stop it
    (what it has not applied it reads from the journal at the next start)."""
    deadline = time.monotonic() + timeout
    while ledger.applied_seq < durable_seq and not ledger.stalled:
        if time.monotonic() >= deadline:
            log.warning("ledger stopped at seq %d of %d", ledger.applied_seq, durable_seq)
            break
        time.sleep(0.01)
    ledger.close()


async def setup_demo(core: CoreService, keys: KeyStore, data_dir: Path) -> Path:
    """Create the demo accounts and keys once, fund them idempotently, write the file."""
    entries = []
    for name in DEMO_ACCOUNTS:
        acct = keys.account_id(name)
        if acct is None:
            acct = keys.create_account(name)
        existing = [k for k in keys.keys(acct) if k.perms == PERMS]
        key = existing[0] if existing else keys.create_key(acct, PERMS)
        deposits = [(asset, amount_units(amount, core.assets[asset]))
                    for asset, amount in DEMO_FUNDS if asset in core.assets]
        for asset, units in deposits:
            await core.deposit(acct, asset, units, f"demo:{name}:{asset}")
        entries.append({"name": name, "account": acct, "api_key": key.key,
                        "api_secret": key.secret})
    path = data_dir / DEMO_FILE
    tmp = path.with_name(DEMO_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(entries, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path
