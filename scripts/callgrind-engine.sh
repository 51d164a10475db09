#!/usr/bin/env bash
# Count the instructions spent inside Engine.apply (compiled core) for N exchange-core
# commands: a machine-load-independent figure to compare two versions of the core.
#   bash scripts/callgrind-engine.sh [N]      (needs valgrind; default N = 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
OUT=$(mktemp /tmp/callgrind.engine.XXXXXX)
valgrind --tool=callgrind --callgrind-out-file="$OUT" --collect-atstart=no \
  --toggle-collect='CPyPy_engine___Engine___apply' \
  .venv/bin/python -m chainbook.bench.apply_loop "$N" 2>&1 | grep -E "Collected|commands"
echo "per command: $(grep -E '^summary:' "$OUT" | awk -v n="$N" '{printf "%.0f", $2 / n}') instructions ($OUT)"
