"""``python -m chainbook.ledger {run,rebuild,reconcile} --data DIR [--db URL]``.

* ``run``: tail ``<data>/events`` into the ledger until SIGINT/SIGTERM (``--until-idle``:
  until caught up; ``--parent PID``: also once process PID, its parent, is gone, as
  ``chainbook serve`` runs it); exit 1 if it stopped while stalled;
* ``rebuild``: drop the ledger and apply the whole journal again;
* ``reconcile``: compare the ledger with a replay of the journal, print every difference,
  exit 0 if they agree, 1 if not.

The default database is the embedded ``sqlite:///<data>/ledger.sqlite``.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from chainbook.ledger.db import default_url
from chainbook.ledger.pipeline import tune_process
from chainbook.ledger.reconcile import reconcile
from chainbook.ledger.service import LedgerService

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 0.5  # the os.getppid() fallback where prctl is not available
SIGNAL_POLL_S = 0.1  # how soon the main thread acts on a recorded signal
FORCE_AFTER_S = 1.0  # a signal this long after the stop began exits without waiting


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chainbook ledger", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, text in (("run", "tail the event journal into the ledger"),
                       ("rebuild", "drop the ledger and rebuild it from the journal"),
                       ("reconcile", "compare the ledger with a replay of the journal")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--data", required=True, help="the exchange's data directory")
        s.add_argument("--db", help="ledger URL (default sqlite:///<data>/ledger.sqlite)")
        if name == "run":
            s.add_argument("--batch", type=int, default=5000, help="commands per transaction")
            s.add_argument("--max-delay-ms", type=float, default=2.0,
                           help="apply a partial batch once its oldest entry waited this long")
            s.add_argument("--poll-ms", type=float, default=2.0,
                           help="how often an idle ledger looks for new journal entries")
            s.add_argument("--alert-after", type=int, default=5,
                           help="consecutive failures before the stall alert")
            s.add_argument("--until-idle", action="store_true",
                           help="exit once the journal is fully applied")
            s.add_argument("--parent", type=int, metavar="PID",
                           help="stop (as on SIGTERM) when process PID, the parent, dies")
        if name == "reconcile":
            s.add_argument("--source", choices=("commands", "events"), default="commands",
                           help="replay the command log (default) or the event journal")
    return p


def exit_with_parent(parent: int, gone: threading.Event) -> str:
    """Arrange to stop once process ``parent`` is no longer this process's parent (it
    died: the child was re-parented).  On Linux the kernel sends SIGTERM at that moment
    (``prctl(PR_SET_PDEATHSIG)``; handled like any SIGTERM); elsewhere, or if prctl
    fails, a daemon thread compares ``os.getppid()`` every PARENT_POLL_S and sets
    ``gone``.  ``gone`` is also set at once if the parent is already gone.  Return the
    method used ("prctl" or "poll")."""
    method = "poll"
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0:
                method = "prctl"
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # gone before prctl took effect: no signal will come
        gone.set()
        return method
    if method == "poll":
        def _watch() -> None:
            while not gone.wait(PARENT_POLL_S):
                if os.getppid() != parent:
                    gone.set()

        threading.Thread(target=_watch, daemon=True, name="parent-watch").start()
    return method


def _run(args: argparse.Namespace, url: str) -> int:
    """Run the service on a worker thread; the main thread only waits for a stop signal.

    The signal handler records the signal and nothing else: a handler runs between two
    bytecodes of the main thread, possibly inside ``Event.set()`` of an earlier signal,
    so taking a lock there (``Event.set``) can deadlock the process — a second SIGTERM
    during the first did exactly that.  The main thread notices within SIGNAL_POLL_S."""
    received: list[int] = []

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)  # no locks here, see above

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    parent_gone = threading.Event()
    if args.parent is not None:
        exit_with_parent(args.parent, parent_gone)
    svc = LedgerService(url, args.data, batch_size=args.batch,
                        max_delay=args.max_delay_ms / 1000, alert_after=args.alert_after,
                        poll_interval=args.poll_ms / 1000)
    failed: list[BaseException] = []

    def _work() -> None:
        try:
            svc.run(until_idle=args.until_idle)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the main thread
            failed.append(exc)

    worker = threading.Thread(target=_work, name="ledger")
    try:
        worker.start()
        while worker.is_alive() and not received and not parent_gone.is_set():
            worker.join(SIGNAL_POLL_S)
        svc.stop()  # the worker commits the batches in flight and returns
        # a database that hangs would keep us here: a signal that comes FORCE_AFTER_S or
        # more after the stop began exits at once (the open transaction is rolled back,
        # the next run resumes at the stored seq); a burst of signals is one request
        seen, began = len(received), time.monotonic()
        while worker.is_alive():
            worker.join(SIGNAL_POLL_S)
            if len(received) > seen:
                if time.monotonic() - began >= FORCE_AFTER_S:
                    logging.error("ledger: signalled again while stopping, exiting now")
                    os._exit(1)
                seen = len(received)
    finally:
        svc.close()
    if failed:
        raise failed[0]
    print(f"ledger at seq {svc.applied_seq}" + (" (STALLED)" if svc.stalled else ""))
    return 1 if svc.stalled else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ledger command; return its exit status."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    url = args.db or default_url(args.data)
    if args.cmd in ("run", "rebuild"):
        tune_process()
    if args.cmd == "run":
        return _run(args, url)
    if args.cmd == "rebuild":
        svc = LedgerService(url, args.data)
        try:
            seq = svc.rebuild()
        finally:
            svc.close()
        print(f"ledger rebuilt up to seq {seq}")
        return 0
    rep = reconcile(url, args.data, source=args.source)
    for line in rep.differences:
        print(line)
    verdict = "agree" if rep.ok else f"DIFFER ({len(rep.differences)} differences)"
    print(f"reconcile at seq {rep.seq} against the {rep.source} log: {rep.balances} "
          f"balances, {rep.postings} postings: {verdict}")
    return 0 if rep.ok else 1
