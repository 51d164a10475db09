"""``python -m chainbook.bench <name> [options]``: run one benchmark."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

USAGE = """usage: python -m chainbook.bench NAME [options]   (NAME: see below)

  engine   chainbook's Engine.apply vs liquibook vs a plain book (one JSON line)
  memory   RSS of chainbook's engine holding N resting orders (one JSON line)
  journal  durable log, replay and snapshot figures
  rest     signed REST order entry against a live server (throughput, ack latency)
  fanout   trade-to-WebSocket fan-out latency to N subscribers
  ticks    trade-to-datagram latency of the UDP multicast tick stream
  ledger   trades/s applied into the SQL ledger (SQLite, PostgreSQL), settlement lag
  gas      gas per trade of settlement batches (1..1000 trades) vs one tx per trade

Pass --help after a benchmark name for its options."""

BENCHES = {
    "engine": "chainbook.bench.engine_bench",
    "memory": "chainbook.bench.memory_bench",
    "journal": "chainbook.bench.journal_bench",
    "rest": "chainbook.bench.rest_bench",
    "fanout": "chainbook.bench.fanout_bench",
    "ticks": "chainbook.bench.ticks_bench",
    "ledger": "chainbook.bench.ledger_bench",
    "gas": "chainbook.bench.gas_bench",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the named benchmark's ``main(argv)``; return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    module_name = BENCHES.get(name)
    if module_name is None:
        print(f"unknown benchmark {name!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        print(f"benchmark {name!r} is not available yet ({module_name} is missing)",
              file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
