"""The sequencer: one core thread owns the durable engine; the event loop talks to it.

``submit`` puts a command on a queue and awaits a future.  The core thread takes what is
queued (up to ``max_batch`` commands), stamps each with the wall clock (ns, never going
backwards), applies it through ``DurableEngine.submit``, makes the batch durable with
one ``commit()`` (group commit: the ack point), calls the core listeners (hot ticks) and
hands the batch to the event loop, where every loop listener sees it in seq order before
the submitters' futures resolve.  docs/serve.md draws the picture.

With the "interval" fsync policy a commit may return before the batch is durable; the
batch then waits (the core thread keeps working) and is delivered once a later commit
covers it.  An engine or log failure fails the waiting futures with ``CoreUnavailable``
and every later ``submit`` too; reopening the data directory recovers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import msgspec

from chainbook.domain.commands import AddSymbol, Command, Deposit
from chainbook.domain.enums import SymbolStatus
from chainbook.domain.events import OrderRejected, SymbolAdded, SymbolStatusChanged
from chainbook.domain.instruments import SymbolSpec
from chainbook.journal.backend import FsyncPolicy, LogError
from chainbook.journal.recovery import DurableEngine, EngineFailure
from chainbook.service.applied import Applied, Listener
from chainbook.service.config import INT64_MAX

log = logging.getLogger(__name__)

CoreListener = Callable[[list[Applied]], None]
"""``fn(batch)``: called on the core thread right after each commit; must be cheap."""

_HISTORY_CHUNK = 4096
_SNAPSHOT_POLL = 0.05  # s: how often an idle core checks on a running snapshot writer


class CommandRefused(ValueError):
    """A command the log could not store (a text field that is not valid Unicode, such
    as a lone surrogate from a JSON ``\\ud800`` escape or a command-line argument, or an
    integer beyond 64 bits, such as an account id of 2**64 sent to an admin endpoint):
    refused before the core takes it, instead of failing the core at its commit."""


INT64_MIN = -INT64_MAX - 1  # INT64_MAX..MIN: what the log and the SQL ledger can store
_FIELDS: dict[type, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}


def _fields(kind: type) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The fields of struct type ``kind`` typed ``str``, ``int`` (each optionally
    ``| None``) and a nested struct (``AddSymbol.spec``), computed once per type."""
    got = _FIELDS.get(kind)
    if got is None:
        text, ints, nested = [], [], []
        for f in msgspec.structs.fields(kind):
            if f.type is str or str in get_args(f.type):
                text.append(f.name)
            elif f.type is int or int in get_args(f.type):
                ints.append(f.name)
            elif isinstance(f.type, type) and issubclass(f.type, msgspec.Struct):
                nested.append(f.name)
        got = _FIELDS[kind] = (tuple(text), tuple(ints), tuple(nested))
    return got


def _unstorable(cmd: Any) -> str | None:
    """The name of a field of ``cmd`` the log cannot store (text that is not valid
    UTF-8, an integer beyond 64 bits: one would fail the core at its commit), or None."""
    text, ints, nested = _fields(type(cmd))
    for name in text:
        value = getattr(cmd, name)
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                return name
    for name in ints:
        value = getattr(cmd, name)
        if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            return name
    for name in nested:
        value = getattr(cmd, name)
        if value is not None:
            bad = _unstorable(value)
            if bad is not None:
                return f"{name}.{bad}"
    return None


class CoreUnavailable(RuntimeError):
    """The core has stopped or failed.  ``unknown`` False: the command was not applied
    (refused before the core thread took it).  True: it failed while being applied and
    made durable (a log write or fsync failed, the engine broke), so it may be on disk
    and replayed at the next start: the caller cannot know, and must check before
    sending it again."""

    def __init__(self, message: str, unknown: bool = False) -> None:
        super().__init__(message)
        self.unknown = unknown


@dataclass(slots=True)
class _Item:
    cmds: list[Command]
    future: asyncio.Future[list[Applied]]


@dataclass(slots=True)
class _Done:
    """An item the core has handled: its applied commands, or why it failed."""

    item: _Item
    applied: list[Applied]
    error: BaseException | None = None


_STOP = object()


class CoreService:
    """The only way into the core (``gateway.context.Core``). See the module docstring."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        assets: dict[str, int],
        *,
        fsync: str = "every",
        fsync_interval_ms: float = 5.0,
        snapshot_every: int = 100_000,
        snapshot_mode: str = "fork",
        max_batch: int = 4096,
        clock_ns: Callable[[], int] = time.time_ns,
        accept_loss: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.assets = dict(assets)
        self.specs: dict[str, SymbolSpec] = {}
        self.status: dict[str, SymbolStatus] = {}
        self.halt_until: dict[str, int] = {}
        self._fsync = FsyncPolicy(fsync)
        self._interval = fsync_interval_ms / 1000.0
        self._snapshot_every = snapshot_every
        self._snapshot_mode = snapshot_mode
        self._max_batch = max_batch
        self._accept_loss = accept_loss  # DurableEngine(accept_loss): serve --accept-data-loss
        self._clock = clock_ns
        self._listeners: list[Listener] = []
        self._core_listeners: list[CoreListener] = []
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._de: DurableEngine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._accepting = False
        self._stopped = False
        self._failure: BaseException | None = None
        self._waiting: list[_Done] = []  # handled, not yet durable (interval policy)
        self._last_ts = 0
        self._last_seq = 0
        self._durable = 0
        self._since_snapshot = 0
        self.recovery: Any = None  # the DurableEngine's RecoveryReport after start()

    # --- wiring ----------------------------------------------------------------------

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(batch, live)`` on the event loop for every committed batch."""
        self._listeners.append(fn)

    def add_core_listener(self, fn: CoreListener) -> None:
        """Call ``fn(batch)`` on the core thread right after each commit."""
        self._core_listeners.append(fn)

    @property
    def durable_seq(self) -> int:
        """The highest durable seq (the ack point)."""
        return self._durable

    @property
    def last_seq(self) -> int:
        """The seq of the last command applied (durable or not)."""
        return self._last_seq

    @property
    def failed(self) -> bool:
        """True once an engine or log failure stopped the core."""
        return self._failure is not None

    @property
    def accepting(self) -> bool:
        """True while ``submit`` takes commands."""
        return self._accepting

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Open (recover) the data directory, replay the event journal to the listeners
        with live=False, then start the core thread."""
        if self._loop is not None:
            raise RuntimeError("CoreService.start() called twice")
        self._loop = loop = asyncio.get_running_loop()
        self._de = de = await loop.run_in_executor(None, self._open)
        try:
            await self._replay_history(de)
        except BaseException:
            de.close()
            self._stopped = True
            raise
        self._last_ts = de.engine.last_ts
        self._last_seq = self._durable = de.last_seq
        self._thread = threading.Thread(target=self._run, name="chainbook-core", daemon=True)
        self._thread.start()
        self._accepting = True

    def _open(self) -> DurableEngine:
        de = DurableEngine(self.data_dir, fsync=self._fsync,
                           fsync_interval_ms=self._interval * 1000.0,
                           snapshot_mode=self._snapshot_mode, accept_loss=self._accept_loss)
        r = self.recovery = de.report
        log.info("recovered %s: seq %d, snapshot at %d, replayed %d commands in %.3f s",
                 self.data_dir, r.last_seq, r.snapshot_seq, r.replayed, r.seconds)
        for m in r.messages:
            log.warning("recovery: %s", m)
        for path, why in r.skipped_snapshots:
            log.warning("recovery: snapshot %s not used: %s", path, why)
        return de

    async def _replay_history(self, de: DurableEngine) -> None:
        if de.events is None:
            return
        chunk: list[Applied] = []
        for seq, ts, events in de.events.read(1):
            chunk.append(Applied(seq, ts, None, events))
            if len(chunk) >= _HISTORY_CHUNK:
                self._dispatch(chunk, False)
                chunk = []
                await asyncio.sleep(0)
        if chunk:
            self._dispatch(chunk, False)

    async def stop(self) -> None:
        """Stop accepting (CoreUnavailable), finish and commit what is queued, close the
        directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._accepting = False
        thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            await asyncio.get_running_loop().run_in_executor(None, thread.join)
            await asyncio.sleep(0)  # let the last deliveries run
        elif self._de is not None:
            self._de.close()

    # --- submitting ------------------------------------------------------------------

    async def submit(self, cmd: Command) -> Applied:
        """Apply ``cmd``; return once it is durable and every listener saw it."""
        return (await self.submit_many([cmd]))[0]

    async def submit_many(self, cmds: Iterable[Command]) -> list[Applied]:
        """Apply ``cmds`` back to back (contiguous seqs, one commit)."""
        if not self._accepting or self._loop is None:
            raise CoreUnavailable(self._why_unavailable())
        items = list(cmds)
        if not items:
            return []
        for cmd in items:
            bad = _unstorable(cmd)
            if bad is not None:
                raise CommandRefused(f"{type(cmd).__name__}.{bad} cannot be stored (text "
                                     "that is not valid Unicode, or an integer beyond 64 "
                                     "bits)")
        fut: asyncio.Future[list[Applied]] = self._loop.create_future()
        self._queue.put(_Item(items, fut))
        return await fut

    def _why_unavailable(self) -> str:
        if self._failure is not None:
            return f"the core failed: {self._failure}"
        return "the core is not running" if not self._stopped else "the core has stopped"

    async def deposit(self, account: int, asset: str, amount_units: int,
                      external_id: str) -> Applied:
        """Credit ``amount_units`` of ``asset``; idempotent by ``external_id``."""
        if asset not in self.assets:
            raise ValueError(f"unknown asset {asset!r}")
        return await self.submit(Deposit(account, asset, amount_units, external_id))

    async def ensure_symbols(self, specs: Iterable[SymbolSpec]) -> list[str]:
        """List each spec the core does not have yet; return the names added."""
        added = []
        for spec in specs:
            have = self.specs.get(spec.name)
            if have is not None:
                if have != spec:
                    log.warning("symbol %s: the configured spec differs from the listed "
                                "one; the listed spec stays in force", spec.name)
                continue
            res = await self.submit(AddSymbol(spec))
            rej = [e for e in res.events if isinstance(e, OrderRejected)]
            if rej:
                raise ValueError(f"symbol {spec.name}: the core refused it "
                                 f"({rej[0].reason.name})")
            added.append(spec.name)
        return added

    # --- the core thread -------------------------------------------------------------

    def _run(self) -> None:
        q, cap = self._queue, self._max_batch
        stop = False
        while not stop:
            if self._waiting:
                timeout: float | None = self._interval
            else:  # idle: wake up to reap a finished snapshot writer and report it
                de = self._de
                timeout = (_SNAPSHOT_POLL if de is not None and self._failure is None
                           and de.snapshot_pending else None)
            try:
                first = q.get(timeout=timeout)
            except queue.Empty:
                first = None
            items: list[_Item] = []
            n = 0
            while first is not None:
                if first is _STOP:
                    stop = True
                    break
                items.append(first)
                n += len(first.cmds)
                if n >= cap:
                    break
                try:
                    first = q.get_nowait()
                except queue.Empty:
                    first = None
            if not items and not stop and not self._waiting:
                self._maybe_snapshot()  # an idle wake-up: only check on the writer
                continue
            self._process(items, final=stop)
        de = self._de
        if de is not None:
            try:
                de.close()
            except Exception:  # noqa: BLE001 - closing must not kill the thread silently
                log.exception("closing the data directory failed")

    def _unavailable(self, unknown: bool = False) -> CoreUnavailable:
        return CoreUnavailable(self._why_unavailable(), unknown)

    def _process(self, items: list[_Item], final: bool) -> None:
        de = self._de
        if de is None:  # pragma: no cover - the thread starts after the open
            return
        clock, submit = self._clock, de.submit
        for item in items:
            if self._failure is not None:
                self._waiting.append(_Done(item, [], self._unavailable()))
                continue
            out: list[Applied] = []
            try:
                for cmd in item.cmds:
                    ts = clock()
                    if ts < self._last_ts:
                        ts = self._last_ts
                    self._last_ts = ts
                    seq, events = submit(cmd, ts)
                    out.append(Applied(seq, ts, cmd, events))
            except EngineFailure as exc:
                log.error("the engine failed; the core stops taking commands: %s", exc)
                self._failure = exc
                # the failing command was taken back out of the log (not applied); the
                # item's earlier ones were applied and may yet be committed: unknown
                self._waiting.append(_Done(item, out, self._unavailable(unknown=bool(out))))
                continue
            self._last_seq = out[-1].seq
            self._waiting.append(_Done(item, out))
            self._since_snapshot += len(out)
        try:
            durable = de.sync() if final else de.commit()
        except (LogError, EngineFailure) as exc:
            log.error("commit failed; the core stops taking commands: %s", exc)
            self._failure = self._failure or exc
            # the command log may have committed before the failure (the event journal's
            # write failed after it): those commands are durable, so they are answered as
            # done (a restart rewrites their events from the command log); the rest fail
            durable = de.commands.durable_seq
            if durable > self._durable:
                self._durable = durable
                self._release(durable)
            err = self._unavailable(unknown=True)  # written, perhaps durable: unknown
            # an item refused before it was applied keeps its own (known) error
            self._hand_over([_Done(d.item, [], d.error or err) for d in self._waiting],
                            deliver=False)
            self._waiting = []
            return
        self._durable = durable
        self._release(durable)
        self._maybe_snapshot()

    def _release(self, durable: int) -> None:
        """Hand over the waiting items whose commands are all durable, in order."""
        waiting = self._waiting
        k = 0
        while k < len(waiting):
            applied = waiting[k].applied
            if applied and applied[-1].seq > durable:
                break
            k += 1
        if k:
            ready, self._waiting = waiting[:k], waiting[k:]
            self._hand_over(ready)

    def _hand_over(self, done: list[_Done], deliver: bool = True) -> None:
        if not done:
            return
        batch = [a for d in done for a in d.applied] if deliver else []
        if batch:
            for fn in self._core_listeners:
                try:
                    fn(batch)
                except Exception:  # noqa: BLE001 - a listener must not stop the core
                    log.exception("core listener %r raised", fn)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver, batch, done)

    def _maybe_snapshot(self) -> None:
        de = self._de
        if de is None:
            return
        try:
            # reap a finished writer at once (no zombie, no open pipe) and log/count its
            # outcome: a failed snapshot must not go unnoticed until the next attempt
            de.poll_snapshot()
        except OSError as exc:
            log.error("checking on the snapshot writer failed: %s", exc)
        if not self._snapshot_every or self._since_snapshot < self._snapshot_every:
            return
        if self._failure is not None:
            return
        try:
            job = de.snapshot()
        except (OSError, RuntimeError) as exc:
            log.error("snapshot failed (the log still has everything): %s", exc)
            self._since_snapshot = 0
            return
        if job is not None:
            self._since_snapshot = 0
        # a writer still busy with the previous snapshot: try again after the next batch

    # --- the event loop side ---------------------------------------------------------

    def _deliver(self, batch: list[Applied], done: list[_Done]) -> None:
        if batch:
            self._dispatch(batch, True)
        for d in done:
            fut = d.item.future
            if fut.done():
                continue  # the submitter went away
            if d.error is not None:
                fut.set_exception(d.error)
            else:
                fut.set_result(d.applied)

    def _dispatch(self, batch: list[Applied], live: bool) -> None:
        """Keep specs/status, then call every loop listener with ``batch``."""
        for a in batch:
            for ev in a.events:
                t = type(ev)
                if t is SymbolAdded:
                    self.specs[ev.spec.name] = ev.spec  # type: ignore[attr-defined]
                    self.status.setdefault(ev.spec.name,  # type: ignore[attr-defined]
                                           SymbolStatus.TRADING)
                elif t is SymbolStatusChanged:
                    self.status[ev.symbol] = ev.status  # type: ignore[attr-defined]
                    self.halt_until[ev.symbol] = ev.until_ts  # type: ignore[attr-defined]
        for fn in self._listeners:
            try:
                fn(batch, live)
            except Exception:  # noqa: BLE001 - one bad listener must not starve the rest
                log.exception("listener %r raised on seq %d..%d", fn, batch[0].seq,
                              batch[-1].seq)
