#!/usr/bin/env bash
# Make sure the local services the integration tests use are running (PostgreSQL on
# 127.0.0.1:5432, database "test"); start them with the machine's own commands if not.
set -euo pipefail
if command -v pg_isready >/dev/null 2>&1; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "services: PostgreSQL is down, starting it" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -h 127.0.0.1 -p 5432
else
  echo "services: pg_isready not found; PostgreSQL tests will fail under CI" >&2
fi
