"""``python -m chainbook.bench.apply_loop N``: apply N exchange-core commands (seed 1) to
a fresh engine, untimed.  A fixed workload for instruction counting, e.g.
``scripts/callgrind-engine.sh``, whose counts do not depend on what else the machine runs
(docs/benchmarks.md, "Core compiled with mypyc")."""

from __future__ import annotations

import sys

from chainbook.bench import mix
from chainbook.bench.engine_bench import ChainbookRunner, chainbook_command


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 20_000
    stream = mix.generate("exchange-core", n, 1)
    runner = ChainbookRunner(stream)
    for f, a in runner.items([chainbook_command(c) for c in stream.commands]):
        f(*a)
    lots, notional, resting = runner.outcome()
    print(f"commands {n} traded_lots {lots} notional {notional} resting {resting}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
