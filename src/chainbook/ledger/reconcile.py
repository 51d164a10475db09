"""Reconciliation: the ledger against an independent replay of the journal.

The expected balances come from replaying the COMMAND log (the truth) through a fresh
``Engine`` up to the ledger's ``last_seq``, not from the event journal the ledger itself
consumed: a bug in the event path or in the ledger's own arithmetic cannot then hide
behind itself.  The command log is opened read-only (``SegmentLog(readonly=True)``):
no lock is taken, so this runs next to a live server (``recovery.recover`` would lock the
directory and cut torn tails).  ``source="events"`` replays the event journal's
``BalanceChanged`` values instead (for a deployment whose command log is elsewhere).

Checks, each difference printed on its own line:

1. every (account, asset) balance of the ledger equals the replay's (absent = 0/0);
2. the postings of every command sum to zero per asset;
3. the postings summed from zero per (account, asset, bucket) equal the balances table
   (so a hand-edited balance row shows up even if the replay agreed with it);
4. every account an order, a trade or a transfer names is in ``accounts`` (what a
   foreign key would check on each insert; the hot tables have none, docs/ledger.md).

The postings are the ``postings`` view: transfer legs and trade legs computed from the
trade rows (schema.POSTINGS_VIEW), so checks 2 and 3 read what an auditor's SQL reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, func, select

from chainbook.domain.events import BalanceChanged
from chainbook.engine.engine import Engine
from chainbook.journal.codec import RecordType
from chainbook.journal.segment_log import SegmentLog
from chainbook.ledger import schema as S
from chainbook.ledger.db import make_engine

Balances = dict[tuple[int, str], tuple[int, int]]


@dataclass
class Report:
    """What reconciliation compared and every difference it found."""

    seq: int = 0
    source: str = "commands"
    balances: int = 0
    postings: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def from_commands(data_dir: str | os.PathLike[str], upto: int) -> Balances:
    """Balances after replaying commands ``1..upto`` of the command log through a fresh
    Engine. Raises ValueError if the log ends before ``upto``."""
    log = SegmentLog(Path(data_dir) / "commands", RecordType.COMMAND, readonly=True)
    eng = Engine()
    apply = eng.apply
    for seq, ts, cmd in log.read(1):
        if seq > upto:
            break
        apply(cmd, seq, ts)
    if eng.last_seq < upto:
        raise ValueError(f"the command log ends at seq {eng.last_seq}, the ledger is at "
                         f"{upto}")
    return {(a, asset): (cell[0], cell[1]) for a, assets in eng.balances.acct.items()
            for asset, cell in assets.items()}


def from_events(data_dir: str | os.PathLike[str], upto: int) -> Balances:
    """Balances as the last ``BalanceChanged`` of each (account, asset) up to ``upto``."""
    log = SegmentLog(Path(data_dir) / "events", RecordType.EVENTS, readonly=True)
    out: Balances = {}
    last = 0
    for seq, _ts, events in log.read(1):
        if seq > upto:
            break
        last = seq
        for ev in events:
            if isinstance(ev, BalanceChanged):
                out[(ev.account, ev.asset)] = (ev.available, ev.frozen)
    if last < upto:
        raise ValueError(f"the event journal ends at seq {last}, the ledger is at {upto}")
    return out


def _ledger(conn: Connection) -> tuple[int, Balances]:
    seq = int(conn.execute(select(S.ledger_state.c.last_seq)).scalar_one())
    rows = conn.execute(select(S.balances.c.account, S.balances.c.asset,
                               S.balances.c.available, S.balances.c.frozen))
    return seq, {(int(a), s): (int(av), int(fr)) for a, s, av, fr in rows}


def _postings_checks(conn: Connection, have: Balances) -> Iterator[str]:
    p = S.postings
    unbalanced = conn.execute(
        select(p.c.seq, p.c.asset, func.sum(p.c.amount)).group_by(p.c.seq, p.c.asset)
        .having(func.sum(p.c.amount) != 0).order_by(p.c.seq, p.c.asset))
    for seq, asset, total in unbalanced:
        yield f"postings of seq {seq} sum to {int(total)} {asset}, not 0"
    summed: dict[tuple[int, str], list[int]] = {}
    if conn.dialect.name == "postgresql":  # SUM(bigint) is an exact NUMERIC there
        totals = conn.execute(select(p.c.account, p.c.asset, p.c.bucket, func.sum(p.c.amount))
                              .group_by(p.c.account, p.c.asset, p.c.bucket))
    else:  # SQLite's integer SUM raises once the running sum of a bucket's flow passes
        # 2^63 (releases listed before reserves can), though the balance is small: add
        # the legs up in Python, exactly
        totals = conn.execute(select(p.c.account, p.c.asset, p.c.bucket, p.c.amount))
    for acct, asset, bucket, total in totals:
        if int(acct) == S.WORLD_ACCOUNT:
            continue
        cell = summed.setdefault((int(acct), asset), [0, 0])
        cell[0 if bucket == S.AVAILABLE else 1] += int(total)
    for key in sorted(set(summed) | set(have)):
        got = tuple(summed.get(key, (0, 0)))
        want = have.get(key, (0, 0))
        if got != want:
            yield (f"account {key[0]} {key[1]}: balances row available={want[0]} "
                   f"frozen={want[1]}, its postings sum to available={got[0]} frozen={got[1]}")


_ACCOUNT_REFS = (("orders", "account"), ("trades", "maker_account"),
                 ("trades", "taker_account"), ("transfers", "src_account"),
                 ("transfers", "dst_account"))


def _account_checks(conn: Connection) -> Iterator[str]:
    for table, column in _ACCOUNT_REFS:
        # NOT EXISTS: an anti-join on the key (NOT IN re-scans accounts per row on
        # PostgreSQL once they no longer fit in work_mem)
        rows = conn.exec_driver_sql(
            f"SELECT DISTINCT x.{column} FROM {table} AS x WHERE NOT EXISTS (SELECT 1 "
            f"FROM accounts AS a WHERE a.account = x.{column}) ORDER BY x.{column}")
        for (acct,) in rows:
            yield f"{table}.{column} names account {acct}, which is not in accounts"


def reconcile(db_url: str, data_dir: str | os.PathLike[str], *,
              source: str = "commands") -> Report:
    """Compare the ledger at ``db_url`` with a replay of ``data_dir``'s journal."""
    if source not in ("commands", "events"):
        raise ValueError("source is 'commands' or 'events'")
    engine = make_engine(db_url, statement_timeout_ms=0)  # reads a whole ledger
    rep = Report(source=source)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":  # one snapshot for every query
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                rep.seq, have = _ledger(conn)
                rep.balances = len(have)
                rep.postings = int(conn.execute(select(func.count()).select_from(S.postings))
                                   .scalar_one())
                rep.differences.extend(_postings_checks(conn, have))
                rep.differences.extend(_account_checks(conn))
    finally:
        engine.dispose()
    try:
        want = (from_commands if source == "commands" else from_events)(data_dir, rep.seq)
    except ValueError as exc:
        rep.differences.append(str(exc))
        return rep
    for key in sorted(set(want) | set(have)):
        w, h = want.get(key, (0, 0)), have.get(key, (0, 0))
        if w != h:
            rep.differences.append(
                f"account {key[0]} {key[1]}: ledger available={h[0]} frozen={h[1]}, "
                f"journal replay available={w[0]} frozen={w[1]}")
    return rep
