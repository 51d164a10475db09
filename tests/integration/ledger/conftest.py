"""Ledger databases for the tests: a SQLite file and a fresh PostgreSQL schema per test.

PostgreSQL tests skip with the reason when the server is unreachable, unless
CHAINBOOK_REQUIRE_SERVICES=1 (CI), where they fail.  Each PostgreSQL test gets its own
schema (``search_path`` in the URL) and drops it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from chainbook.bench.ledger_bench import write_session
from chainbook.ledger import schema as S

REQUIRE = bool(os.environ.get("CHAINBOOK_REQUIRE_SERVICES"))
PG_BASE = os.environ.get("CHAINBOOK_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_schema_url() -> Iterator[str]:
    """Create a schema, yield a URL that uses it, drop it."""
    schema = f"t_ledger_{uuid.uuid4().hex[:12]}"
    eng = sa.create_engine(PG_BASE)
    try:
        with eng.begin() as c:
            c.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sa.exc.OperationalError as exc:
        eng.dispose()
        msg = f"PostgreSQL unreachable at {PG_BASE}: {exc.orig}"
        if REQUIRE:
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with eng.begin() as c:
            c.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A ledger URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    else:
        yield from pg_schema_url()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for a ledger (dropped afterwards)."""
    yield from pg_schema_url()


@pytest.fixture
def second_db_url(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[str]:
    """Another ledger on the same backend as ``db_url``."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'ledger2.sqlite'}"
    else:
        yield from pg_schema_url()


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded mixed trading session written through DurableEngine (small segments)."""
    d = tmp_path_factory.mktemp("session") / "data"
    trades = write_session(d, 3000, seed=11, segment_bytes=64 << 10)
    assert trades > 300
    return d


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every ledger table's rows, sorted: equal dumps mean equal ledgers."""
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            out = {t.name: sorted(tuple(r) for r in c.execute(sa.select(t)))
                   for t in S.TABLES}
            # the view: key (seq, trade_id, idx), trade_id NULL for transfer legs
            out["postings"] = sorted((tuple(r) for r in c.execute(sa.select(S.postings))),
                                     key=lambda r: (r[0], -1 if r[2] is None else r[2], r[1]))
            return out
    finally:
        eng.dispose()


@pytest.fixture
def dump_ledger() -> Any:
    """``dump(url)``: every table's rows, sorted."""
    return dump
