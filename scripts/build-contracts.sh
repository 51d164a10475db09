#!/usr/bin/env bash
# Install the pinned compiler and node (npm ci in contracts/) and compile the contracts
# into src/chainbook/chain/artifacts.  With --check: compile into a temporary directory
# and fail if the result differs from the committed artifacts (CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
ART=src/chainbook/chain/artifacts
mode=${1:-build}
case "$mode" in
  build|--check) ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
(cd contracts && npm ci --no-audit --no-fund --loglevel=error)
if [ "$mode" = build ]; then
  node contracts/build.js --out "$ART"
  echo "contracts: artifacts written to $ART"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node contracts/build.js --out "$tmp"
if diff -r "$ART" "$tmp" >/dev/null; then
  echo "contracts: committed artifacts match the sources"
else
  echo "contracts: committed artifacts differ from a fresh compile:" >&2
  diff -r "$ART" "$tmp" | head -20 >&2 || true
  echo "run 'bash scripts/build-contracts.sh' and commit $ART" >&2
  exit 1
fi
