"""The ``postings`` view (trade legs computed from trade rows, transfers as two legs), the
migration from the version-1 schema that stored every leg, and the account checks that
replace the foreign key on ``orders.account``; SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa

from chainbook.domain.events import Trade
from chainbook.journal.segment_log import SegmentLog
from chainbook.ledger import schema as S
from chainbook.ledger.batch import LedgerState, build_batch
from chainbook.ledger.migrate import current_version, migrate
from chainbook.ledger.postings import command_postings, trade_legs, transfer_legs
from chainbook.ledger.reconcile import reconcile
from chainbook.ledger.service import LedgerService
from chainbook.ledger.store import LedgerStore


def _apply(url: str, data) -> None:
    svc = LedgerService(url, data, batch_size=500)
    svc.run_once()
    svc.close()


def test_the_view_holds_exactly_the_legs_the_events_imply(dump_ledger, db_url, session_dir):
    _apply(db_url, session_dir)
    view = dump_ledger(db_url)["postings"]
    want_transfer_legs: list[tuple] = []
    want_trade_legs: Counter[tuple] = Counter()
    state = LedgerState()
    for seq, ts, events in SegmentLog(session_dir / "events", 2, readonly=True).read(1):
        rows, _ = command_postings(seq, events, state)
        for r in rows:
            for k, leg in enumerate(transfer_legs(r[2:])):
                want_transfer_legs.append((seq, 2 * r[1] + k, *leg))
        for ev in events:
            if isinstance(ev, Trade):
                for leg in trade_legs(ev, state.symbols[ev.symbol]):
                    want_trade_legs[(seq, *leg)] += 1
        build_batch([(seq, ts, events)], state)
    got_transfer_legs = [r for r in view if r[2] is None]
    assert got_transfer_legs == sorted(want_transfer_legs, key=lambda r: (r[0], r[1]))
    got_trade_legs = Counter((r[0], *r[2:]) for r in view if r[2] is not None)
    assert got_trade_legs == want_trade_legs
    assert sum(want_trade_legs.values()) > 1500 and len(want_transfer_legs) > 1000
    # the trade legs keep the positions of trade_legs: 0-4, a zero fee leg left out
    idx = {(r[2], r[1]) for r in view if r[2] is not None}
    assert {i for _t, i in idx} == {0, 1, 2, 3, 4}


def _copy_rows(src: str, dst: str) -> None:
    """The version-1 content of ledger ``src`` (at the latest version) into ``dst`` (at
    version 1): every table as is, the view's legs into the old ``postings`` table,
    numbered per seq as version 1 did (explicit legs first, here the trade legs, then the
    pairs that are now transfers)."""
    a, b = sa.create_engine(src), sa.create_engine(dst)
    try:
        with a.connect() as ca, b.begin() as cb:
            for t in S.TABLES:
                if t is S.transfers:
                    continue
                rows = [dict(r._mapping) for r in ca.execute(sa.select(t))]
                if t is S.ledger_state:
                    cb.execute(sa.update(t).values(**{k: v for k, v in rows[0].items()
                                                      if k != "id"}))
                elif t is S.accounts:
                    cb.execute(sa.insert(t), [r for r in rows if r["account"] > 0])
                elif rows:
                    cb.execute(sa.insert(t), rows)
            legs = ca.execute(sa.select(S.postings)).all()
            per_seq: dict[int, list[tuple]] = {}
            for r in sorted(legs, key=lambda r: (r[0], r[2] is None, r[2] or 0, r[1])):
                per_seq.setdefault(r[0], []).append(r)
            old = sa.table("postings", *(sa.column(c) for c in (
                "seq", "idx", "trade_id", "account", "asset", "bucket", "kind", "amount")))
            cb.execute(sa.insert(old), [
                {"seq": seq, "idx": i, "trade_id": r[2], "account": r[3], "asset": r[4],
                 "bucket": r[5], "kind": r[6], "amount": r[7]}
                for seq, rs in per_seq.items() for i, r in enumerate(rs)])
    finally:
        a.dispose()
        b.dispose()


def test_a_version_1_ledger_migrates_to_the_same_ledger(dump_ledger, db_url, second_db_url,
                                                        session_dir):
    _apply(db_url, session_dir)
    old = sa.create_engine(second_db_url)
    try:
        assert migrate(old, upto=1) == [1]
        with old.connect() as c:
            assert sa.inspect(c).get_foreign_keys("orders")  # version 1 had it
            assert "postings" not in sa.inspect(c).get_view_names()
        _copy_rows(db_url, second_db_url)
        assert migrate(old) == [2]
        assert migrate(old) == []
        with old.connect() as c:
            assert not sa.inspect(c).get_foreign_keys("orders")
            assert "postings" in sa.inspect(c).get_view_names()
    finally:
        old.dispose()
    assert dump_ledger(second_db_url) == dump_ledger(db_url)
    assert reconcile(second_db_url, session_dir).ok
    # and the migrated ledger goes on applying where it stopped
    svc = LedgerService(second_db_url, session_dir)
    assert svc.applied_seq == SegmentLog(session_dir / "events", 2, readonly=True).last_seq
    svc.close()


def test_reconcile_reports_an_order_of_an_unknown_account(db_url, session_dir):
    _apply(db_url, session_dir)
    eng = sa.create_engine(db_url)
    try:
        with eng.begin() as c:
            row = dict(c.execute(sa.select(S.orders).limit(1)).one()._mapping)
            c.execute(sa.insert(S.orders).values({**row, "order_id": 10**12,
                                                  "account": 424242}))
    finally:
        eng.dispose()
    rep = reconcile(db_url, session_dir)
    assert not rep.ok
    assert rep.differences == ["orders.account names account 424242, which is not in "
                               "accounts"]


def test_reconcile_sums_a_bucket_whose_flow_passes_2_63(db_url, tmp_path):
    """Reserve and release 2^62 three times: the balance is small, but the view lists
    the releases before the reserves, and SQLite's integer SUM would overflow."""
    LedgerStore(db_url).close()
    big = 1 << 62
    moves = [("deposit", -1, "available", 1, "available")]
    moves += [("reserve", 1, "available", 1, "frozen"),
              ("reserve", 1, "frozen", 1, "available")] * 3
    eng = sa.create_engine(db_url)
    try:
        with eng.begin() as c:
            c.execute(sa.insert(S.accounts).values(account=1, kind="user", first_seq=1,
                                                   kill_switch=False))
            c.execute(sa.insert(S.balances).values(account=1, asset="USDT", available=big,
                                                   frozen=0, updated_seq=7))
            c.execute(sa.insert(S.transfers), [
                {"seq": seq, "idx": 0, "kind": k, "asset": "USDT", "src_account": sa_,
                 "src_bucket": sb, "dst_account": da, "dst_bucket": db, "amount": big}
                for seq, (k, sa_, sb, da, db) in enumerate(moves, 1)])
            c.execute(sa.update(S.ledger_state).values(last_seq=len(moves), last_ts=1))
    finally:
        eng.dispose()
    (tmp_path / "empty").mkdir()
    rep = reconcile(db_url, tmp_path / "empty")
    # the only difference: there is no journal to replay; the postings agree with balances
    assert len(rep.differences) == 1 and "log ends at seq 0" in rep.differences[0]


def test_migration_2_refuses_postings_that_do_not_pair_up(db_url):
    eng = sa.create_engine(db_url)
    try:
        assert migrate(eng, upto=1) == [1]
        old = sa.table("postings", *(sa.column(c) for c in (
            "seq", "idx", "trade_id", "account", "asset", "bucket", "kind", "amount")))
        with eng.begin() as c:
            c.execute(sa.insert(old), [
                {"seq": 7, "idx": 0, "trade_id": None, "account": 1, "asset": "USDT",
                 "bucket": "available", "kind": "reserve", "amount": -5},
                {"seq": 7, "idx": 1, "trade_id": None, "account": 1, "asset": "USDT",
                 "bucket": "frozen", "kind": "reserve", "amount": 3}])
        with pytest.raises(RuntimeError, match="not 0 pairs"):
            migrate(eng)
        with eng.connect() as c:  # rolled back: still version 1, its rows intact
            assert current_version(c) == 1
            assert c.execute(sa.select(sa.func.count()).select_from(old)).scalar_one() == 2
    finally:
        eng.dispose()
