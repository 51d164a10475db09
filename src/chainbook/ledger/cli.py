"""``python -m chainbook.ledger {run,rebuild,reconcile} --data DIR [--db URL]``.

* ``run``: tail ``<data>/events`` into the ledger until SIGINT/SIGTERM (``--until-idle``:
  until caught up); exit 1 if it stopped while stalled;
* ``rebuild``: drop the ledger and apply the whole journal again;
* ``reconcile``: compare the ledger with a replay of the journal, print every difference,
  exit 0 if they agree, 1 if not.

The default database is the embedded ``sqlite:///<data>/ledger.sqlite``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from chainbook.ledger.db import default_url
from chainbook.ledger.reconcile import reconcile
from chainbook.ledger.service import LedgerService


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
            s.add_argument("--alert-after", type=int, default=5,
                           help="consecutive failures before the stall alert")
            s.add_argument("--until-idle", action="store_true",
                           help="exit once the journal is fully applied")
        if name == "reconcile":
            s.add_argument("--source", choices=("commands", "events"), default="commands",
                           help="replay the command log (default) or the event journal")
    return p


def _run(args: argparse.Namespace, url: str) -> int:
    svc = LedgerService(url, args.data, batch_size=args.batch,
                        max_delay=args.max_delay_ms / 1000, alert_after=args.alert_after)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    try:
        svc.run(stop, until_idle=args.until_idle)
    finally:
        svc.close()
    print(f"ledger at seq {svc.applied_seq}" + (" (STALLED)" if svc.stalled else ""))
    return 1 if svc.stalled else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ledger command; return its exit status."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    url = args.db or default_url(args.data)
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
