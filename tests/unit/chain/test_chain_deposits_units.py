"""Amount conversion of deposits and withdrawals, and the funds store's guards."""

from __future__ import annotations

import sqlite3

import pytest

from chainbook.chain.deposits import convert
from chainbook.chain.fundstore import CREDITED, PENDING, FundStore
from chainbook.chain.withdrawals import PayAsset, WithdrawalError, prepare_withdrawal, to_raw


def test_token_units_convert_to_asset_units_with_dust_recorded() -> None:
    assert convert(5_000_000, 6, 8) == (500_000_000, 0)  # USDT 6 -> 8 decimals
    assert convert(15 * 10**9, 18, 8) == (1, 5 * 10**9)  # wei -> 8 decimals, dust kept
    assert convert(10**9, 18, 8) == (0, 10**9)
    assert convert(123, 8, 8) == (123, 0)


def test_withdrawal_amounts_must_fit_the_token() -> None:
    assert to_raw(3 * 10**8, 8, 6) == 3 * 10**6
    assert to_raw(1, 8, 18) == 10**10
    with pytest.raises(WithdrawalError):
        to_raw(1, 8, 6)


def _dep(tx: bytes, index: int) -> dict[str, object]:
    return {"tx_hash": tx, "log_index": index, "account": 1, "asset": "USDT",
            "address": "0xaa", "raw_amount": 10**30, "units": 5, "dust": 0,
            "state": PENDING, "external_id": f"0x{tx.hex()}:{index}", "seen_ms": 1}


def test_a_transfer_is_recorded_once_and_a_reorg_drops_only_pending_rows(tmp_path) -> None:
    s = FundStore(tmp_path / "f.sqlite")
    assert s.bind_chain("c1", reset=False) is None
    assert s.record_block("c1", 5, b"h5", b"h4", [_dep(b"t1", 0), _dep(b"t1", 1)], 64) == 2
    assert s.record_block("c1", 5, b"h5", b"h4", [_dep(b"t1", 0)], 64) == 0  # rescan
    assert s.deposits()[0].raw_amount == 10**30  # beyond 64 bits: kept exactly
    with pytest.raises(sqlite3.IntegrityError):
        with s.tx() as db:
            db.execute("INSERT INTO deposits SELECT NULL, chain, tx_hash, log_index, account,"
                       " asset, address, raw_amount, units, dust, block_number, block_hash,"
                       " state, external_id, seen_ms, credited_ms, orphaned, note "
                       "FROM deposits LIMIT 1")
    first = s.deposits_pending("c1")[0]
    s.deposit_done(first.id, CREDITED, 2)
    dropped, credited = s.rewind("c1", 4)
    assert dropped == 1 and [r.id for r in credited] == [first.id]
    assert s.last_height() == 4 and [r.orphaned for r in s.deposits()] == [1]
    s.record_block("c1", 5, b"h5", b"h4", [{**_dep(b"t2", 0), "state": "DUST"}], 64)
    with pytest.raises(ValueError):
        s.bind_chain("c2", reset=False)
    assert s.bind_chain("c2", reset=True) == "c1" and s.last_height() == -1
    # a reorg on the new chain leaves the gone chain's rows (history) alone
    s.record_block("c2", 3, b"g3", b"g2", [_dep(b"t9", 0)], 64)
    assert s.rewind("c2", 1) == (1, [])
    assert sorted((r.chain, r.state) for r in s.deposits()) == [("c1", "CREDITED"),
                                                               ("c1", "DUST")]


def test_a_withdrawal_request_is_validated_then_recorded(tmp_path) -> None:
    s = FundStore(tmp_path / "f.sqlite")
    pay = {"USDT": PayAsset("USDT", "0x" + "11" * 20, 6)}
    dest = "0x" + "AB" * 20
    row = prepare_withdrawal(s, pay, {"USDT": 8}, 4, "USDT", 2 * 10**8, dest, 10)
    assert (row.state, row.raw_amount, row.address) == ("REQUESTED", 2 * 10**6, dest.lower())
    for asset, units, addr in (("BTC", 1, dest), ("USDT", 0, dest), ("USDT", 1, dest),
                               ("USDT", 10**8, "0xabc")):
        with pytest.raises(WithdrawalError):
            prepare_withdrawal(s, pay, {"USDT": 8, "BTC": 8}, 4, asset, units, addr, 10)
    assert not s.set_withdrawal(row.id, "SENT", 11, expect="HELD")
    assert s.set_withdrawal(row.id, "HELD", 11, expect="REQUESTED")
    with pytest.raises(ValueError):
        s.set_withdrawal(row.id, "LOST", 12)
