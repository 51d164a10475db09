#!/usr/bin/env bash
# Install chainbook into .venv and run the exchange on its embedded defaults (no services
# needed): `chainbook serve --demo` on http://127.0.0.1:8765, data in ./chainbook-data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/chainbook serve --demo "$@"
