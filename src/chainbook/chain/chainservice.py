"""The chain inside ``chainbook serve``: deposits, withdrawals and settlement in one worker.

``attach_chain(comps)`` (the one call in ``app.py``) builds a ``ChainService`` for the
config's ``[chain]`` table, registers its loop listener (Trade events for the settler),
adds its routes to ``ctx.extra_routes`` and returns it; ``Components`` starts it after
the core and stops it before the core.  The worker thread connects the client (the
embedded EVM by default: Settlement and the TestTokens are deployed at every start, the
chain being new), then every ``step_ms`` runs the queued jobs (faucet), releases settled
trades to the settler, and steps the deposit watcher, the withdrawal processor and the
settler; an exception in any of these is logged, kept in ``last_error`` and the loop goes
on (the failed part is retried at the next period).  Trades leave the in-memory queue only
once the settler took them, and a batch the settler cut but could not record (its SQLite
store locked, the disk full) is kept and recorded first at the next attempt
(``ChainSettler._prepare``), so a failed write loses and repeats no trade.  Core commands go
through ``core.submit`` on the event loop (``corebridge.loop_submitter``).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chainbook.chain.fundstore import FundStore
from chainbook.chain.hdwallet import (
    DepositAddresses,
    HDWallet,
    new_operator_key,
    read_or_create_secret,
)
from chainbook.chain.settings import ChainConfig
from chainbook.chain.withdrawals import PayAsset
from chainbook.domain.events import Trade
from chainbook.service.applied import Applied

log = logging.getLogger(__name__)
NATIVE_DECIMALS = 18
TOKEN_SUPPLY_WHOLE = 10**12  # TestTokens minted to the operator on a dev chain
# One-line choice: without a ledger ([ledger] enabled = false) trades go to the settler
# at once; with one, only trades whose seq the ledger has applied (ctx.settled_seq).
FEED_WITHOUT_LEDGER = True


class ChainService:
    """Deposit addresses, the funds store and (once connected) the chain workers."""

    def __init__(self, cfg: ChainConfig, data_dir: Path, core: Any,
                 settled_seq: Callable[[], int] | None) -> None:
        self.cfg = cfg
        self.data_dir = Path(data_dir)
        self.core = core
        self.assets: dict[str, int] = dict(core.assets)
        self.confirmations = cfg.required_confirmations
        self.store = FundStore.in_data_dir(self.data_dir)
        self.addresses = DepositAddresses(
            HDWallet.load_or_create(self.data_dir / cfg.hd_seed_file), self.store)
        self.tokens = cfg.token_list(self.assets)
        self.pay: dict[str, PayAsset] = {
            a: PayAsset(a, t.address, t.decimals) for a, t in self.tokens.items()}
        if cfg.native_asset:
            self.pay[cfg.native_asset] = PayAsset(cfg.native_asset, None, NATIVE_DECIMALS)
        self.settled_seq = settled_seq
        self.client: Any = None
        self.watcher: Any = None
        self.processor: Any = None
        self.settler: Any = None
        self.last_error: str | None = None
        self._failing: dict[str, str] = {}  # part -> its failure last logged
        self._trades: collections.deque[tuple[int, Trade]] = collections.deque()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any],
                                            concurrent.futures.Future[Any]]] = \
            queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ready = threading.Event()

    # --- wiring ------------------------------------------------------------------------

    def on_batch(self, batch: list[Applied], live: bool) -> None:
        """Loop listener: keep Trade events (history and live) for the settler."""
        for a in batch:
            for ev in a.events:
                if isinstance(ev, Trade):
                    self._trades.append((a.seq, ev))

    async def start(self) -> None:
        """Start the worker thread (it connects to the chain itself)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="chainbook-chain", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop the worker (it finishes its current step), close the stores."""
        self._stop.set()
        thread = self._thread
        if thread is not None and self._loop is not None:
            await self._loop.run_in_executor(None, thread.join, 30.0)
        self.store.close()
        if self.settler is not None and (thread is None or not thread.is_alive()):
            self.settler.store.close()

    async def call(self, fn: Callable[[], Any], timeout_s: float = 30.0) -> Any:
        """Run ``fn()`` in the worker thread (the only one touching the chain)."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((fn, fut))
        return await asyncio.wait_for(asyncio.wrap_future(fut), timeout_s)

    # --- the worker --------------------------------------------------------------------

    def _run(self) -> None:
        period = self.cfg.step_ms / 1000.0
        while not self._stop.is_set():
            if self.client is None:
                try:
                    self._connect()
                    self.ready.set()
                except Exception as e:  # node down, bad key, chain id mismatch ...
                    self._failed("connect", e)
                    self._stop.wait(2.0)
                    continue
            for name, step in (("jobs", self._run_jobs), ("trades", self._release_trades),
                               ("deposits", self.watcher.step),
                               ("withdrawals", self.processor.step),
                               ("settler", self.settler.step)):
                if self._stop.is_set():
                    break
                try:
                    step()
                except Exception as e:  # retried at the next period
                    self._failed(name, e)
                else:
                    self._failing.pop(name, None)
            self._stop.wait(period)
        self._fail_jobs()

    def _failed(self, what: str, e: Exception) -> None:
        msg = f"{what}: {type(e).__name__}: {e}"
        if self._failing.get(what) != msg:  # the same failure every period is logged once
            log.error("chain worker: %s", msg, exc_info=e)
            self._failing[what] = msg
        self.last_error = msg

    def _run_jobs(self) -> None:
        while True:
            try:
                fn, fut = self._jobs.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as e:  # the caller gets it; the worker goes on
                fut.set_exception(e)
            else:
                fut.set_result(result)

    def _fail_jobs(self) -> None:
        while True:
            try:
                _, fut = self._jobs.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                fut.set_exception(RuntimeError("the chain worker stopped"))

    def _release_trades(self) -> None:
        """Hand the settled trades to the settler; on failure they go back to the front
        of the queue in order (``on_batch`` only appends, from the loop thread).  Feeding
        them again is harmless: the settler skips the trades it already took."""
        if not self._trades:
            return
        upto = None if self.settled_seq is None else self.settled_seq()
        out: list[tuple[int, Trade]] = []
        while self._trades and (upto is None or self._trades[0][0] <= upto):
            out.append(self._trades.popleft())
        if not out:
            return
        try:
            self.settler.add_trades(out)
        except BaseException:
            self._trades.extendleft(reversed(out))
            raise

    def _connect(self) -> None:
        # web3 and py-evm are imported here: a server without a chain never loads them
        from chainbook.chain.client import FundsClient
        from chainbook.chain.corebridge import loop_submitter
        from chainbook.chain.deposits import DepositWatcher, WatchedToken
        from chainbook.chain.settler import ChainSettler
        from chainbook.chain.store import ChainStore
        from chainbook.chain.withdrawals import WithdrawalProcessor

        cfg = self.cfg
        if self._loop is None:
            raise RuntimeError("not started")
        key = read_or_create_secret(self.data_dir / cfg.operator_key_file, new_operator_key)
        client = FundsClient(cfg.rpc_url, cfg.chain_id, key, self.confirmations,
                             block_time_s=cfg.block_time_ms / 1000.0)
        chain = client.chain_key()
        settlement = cfg.settlement or self._deployed(
            chain, "Settlement", lambda: client.deploy("Settlement", client.operator))
        client.use_settlement(settlement)
        for asset, t in self.tokens.items():
            def deploy_token(t: Any = t) -> str:
                return str(client.deploy_token(f"Test {t.asset}", t.asset, t.decimals,
                                               TOKEN_SUPPLY_WHOLE * 10**t.decimals))

            address = t.address or self._deployed(chain, f"token:{asset}", deploy_token)
            self.pay[asset] = PayAsset(asset, address.lower(), t.decimals)
        submit = loop_submitter(self.core, self._loop)
        watched = [WatchedToken(a, p.token, p.decimals) for a, p in self.pay.items()
                   if p.token is not None]
        self.watcher = DepositWatcher(client, self.store, self.addresses, watched,
                                      self.assets, submit, self.confirmations,
                                      native_asset=cfg.native_asset or None,
                                      start_block=cfg.start_block)
        self.processor = WithdrawalProcessor(client, self.store, self.pay, self.assets,
                                             submit, self.confirmations)
        self.settler = ChainSettler(client, ChainStore.in_data_dir(self.data_dir),
                                    self.confirmations, max_trades=cfg.batch_max_trades,
                                    max_age_ms=cfg.batch_max_age_ms, packed=cfg.packed)
        self.client = client
        log.warning("chain: %s, operator %s, Settlement %s, tokens %s", chain,
                    client.operator, settlement,
                    {a: p.token for a, p in self.pay.items() if p.token})

    def _deployed(self, chain: str, what: str, deploy: Callable[[], str]) -> str:
        """A contract deployed once per chain (recorded in the store's meta); the
        embedded chain is new at every start, so it deploys every time."""
        key = f"contract:{what}@{chain}"
        known = self.store.meta(key)
        if known is not None and not self.cfg.embedded:
            return known
        address = deploy()
        self.store.set_meta(key, address)
        return address

    # --- what the endpoints use --------------------------------------------------------

    def deposit_confirmations(self, row: Any) -> int:
        """How deep a deposit is (0 before the watcher runs)."""
        w = self.watcher
        if w is None:
            return self.confirmations if row.state == "CREDITED" else 0
        return self.confirmations if row.state == "CREDITED" else w.confirmations_of(row)

    def wait_ready(self, timeout_s: float) -> bool:
        """Block until the worker is connected (tests, CLI)."""
        return self.ready.wait(timeout_s)

    def faucet(self, address: str, asset: str, raw: int) -> str:
        """Pay ``raw`` token units (wei for native) from the operator; return the tx
        hash.  Runs in the worker (``call``)."""
        p = self.pay.get(asset)
        if p is None:
            raise ValueError(f"no token for {asset} on this chain")
        return "0x" + str(self.client.pay(p.token, address, raw).tx_hash.hex())


def attach_chain(comps: Any) -> ChainService | None:
    """Build the chain service for ``comps`` (app.Components), register its listener
    and routes; None when ``[chain] enabled = false``."""
    from chainbook.chain.admin import chain_admin_routes
    from chainbook.gateway.capital import capital_routes

    cfg: ChainConfig = getattr(comps.config, "chain", None) or ChainConfig()
    if not cfg.enabled:
        return None
    ctx = comps.ctx
    ledger = bool(getattr(comps.config, "ledger", False))
    gate = ctx.settled_seq if ledger or not FEED_WITHOUT_LEDGER else None
    svc = ChainService(cfg, comps.data_dir, comps.core, gate)
    comps.core.add_listener(svc.on_batch)
    ctx.extra_routes = [*ctx.extra_routes, *capital_routes(ctx, svc),
                        *chain_admin_routes(ctx, svc)]
    return svc
