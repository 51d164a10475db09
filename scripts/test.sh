#!/usr/bin/env bash
# Install chainbook with its test and benchmark extras into .venv, the pinned contract
# toolchain (npm), and run every check.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,bench]'
bash scripts/build-contracts.sh --check   # npm ci (solc, anvil) + artifact check
.venv/bin/ruff check src tests
.venv/bin/mypy --strict src/chainbook/domain src/chainbook/book src/chainbook/accounts src/chainbook/engine
.venv/bin/python -m pytest -q "$@"
