"""The ledger's tables (SQLAlchemy Core), with the invariants written into the schema.

One schema for SQLite and PostgreSQL. Every amount is a BIGINT of base units: the core
keeps every balance and every per-asset total below 2^63 (docs/core.md), so each stored
value fits; sums across rows are computed in Python (exact integers) or by PostgreSQL
(``SUM(bigint)`` is NUMERIC there), never in a 64-bit SQL accumulator.

Accounts: users are >= 1, the fee account is ``0`` (a real account with balances) and
the external "world" is ``-1``: deposits and withdrawals post against it, so postings sum
to zero per asset. The world has no ``balances`` row (its position is minus everything
held on the exchange, which the non-negative CHECK would refuse).

docs/ledger.md describes each table and the states.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
)

FEE_ACCOUNT = 0
WORLD_ACCOUNT = -1

AVAILABLE = "available"
FROZEN = "frozen"

# settlement state of a trade (DESIGN.md section 2)
MATCHED = "MATCHED"
SETTLED = "SETTLED"
ANCHORED = "ANCHORED"
# settlement state of an order
NONE = "NONE"
SETTLING = "SETTLING"

TRANSFER_KINDS = ("deposit", "withdrawal_hold", "withdrawal", "withdrawal_refund",
                  "reserve")
POSTING_KINDS = (*TRANSFER_KINDS, "trade", "fee")
ORDER_STATUSES = ("NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "PARTIALLY_CANCELED",
                  "REJECTED", "EXPIRED")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


metadata = MetaData()

accounts = Table(
    "accounts", metadata,
    Column("account", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(8), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("kill_switch", Boolean, nullable=False, default=False),
    CheckConstraint(_in("kind", ("user", "fee", "world")), name="ck_accounts_kind"),
    CheckConstraint("(kind = 'fee') = (account = 0) AND (kind = 'world') = (account = -1)",
                    name="ck_accounts_reserved_ids"),
)

symbols = Table(
    "symbols", metadata,
    Column("symbol", String(32), primary_key=True),
    Column("base", String(16), nullable=False),
    Column("quote", String(16), nullable=False),
    Column("lot_units", BigInteger, nullable=False),
    Column("quote_per_tick_lot", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("added_seq", BigInteger, nullable=False),
    CheckConstraint("lot_units > 0 AND quote_per_tick_lot > 0", name="ck_symbols_scales"),
)

balances = Table(
    "balances", metadata,
    Column("account", BigInteger, ForeignKey("accounts.account"), nullable=False),
    Column("asset", String(16), nullable=False),
    Column("available", BigInteger, nullable=False),
    Column("frozen", BigInteger, nullable=False),
    Column("updated_seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("account", "asset", name="pk_balances"),
    CheckConstraint("available >= 0", name="ck_balances_available"),
    CheckConstraint("frozen >= 0", name="ck_balances_frozen"),
    CheckConstraint("account >= 0", name="ck_balances_not_world"),
)

# no foreign key on account: its per-row check was half the cost of inserting orders on
# PostgreSQL; the ledger's writer creates every account first and ``reconcile`` checks
# that each order's account exists (as for trades and transfers)
orders = Table(
    "orders", metadata,
    Column("order_id", BigInteger, primary_key=True, autoincrement=False),
    Column("account", BigInteger, nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("side", String(4), nullable=False),
    Column("type", String(12), nullable=False),
    Column("tif", String(3), nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("quote_qty", BigInteger, nullable=False),
    Column("client_id", String(64)),
    Column("status", String(20), nullable=False),
    Column("filled", BigInteger, nullable=False),
    Column("open_qty", BigInteger, nullable=False),
    Column("settlement", String(8), nullable=False),
    Column("created_seq", BigInteger, nullable=False),
    Column("updated_seq", BigInteger, nullable=False),
    Column("last_trade_seq", BigInteger),
    CheckConstraint(_in("side", ("BUY", "SELL")), name="ck_orders_side"),
    CheckConstraint(_in("status", ORDER_STATUSES), name="ck_orders_status"),
    CheckConstraint(_in("settlement", (NONE, SETTLING, SETTLED, ANCHORED)),
                    name="ck_orders_settlement"),
    CheckConstraint("filled >= 0 AND open_qty >= 0 AND price >= 0", name="ck_orders_qty"),
)

trades = Table(
    "trades", metadata,
    Column("trade_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("quote_amount", BigInteger, nullable=False),
    Column("base_amount", BigInteger, nullable=False),
    Column("taker_side", String(4), nullable=False),
    Column("maker_order_id", BigInteger, nullable=False),
    Column("taker_order_id", BigInteger, nullable=False),
    Column("maker_account", BigInteger, nullable=False),
    Column("taker_account", BigInteger, nullable=False),
    Column("maker_fee", BigInteger, nullable=False),
    Column("taker_fee", BigInteger, nullable=False),
    Column("settlement_state", String(8), nullable=False),
    CheckConstraint(_in("settlement_state", (MATCHED, SETTLED, ANCHORED)),
                    name="ck_trades_settlement"),
    CheckConstraint("qty > 0 AND price > 0 AND maker_fee >= 0 AND taker_fee >= 0",
                    name="ck_trades_amounts"),
)

deposits = Table(
    "deposits", metadata,
    Column("external_id", String(128), primary_key=True),
    Column("account", BigInteger, ForeignKey("accounts.account"), nullable=False),
    Column("asset", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("tx_hash", String(66)),
    Column("log_index", BigInteger),
    UniqueConstraint("tx_hash", "log_index", name="uq_deposits_chain_event"),
    CheckConstraint("amount > 0", name="ck_deposits_amount"),
    CheckConstraint("(tx_hash IS NULL) = (log_index IS NULL)", name="ck_deposits_chain_ref"),
)

withdrawals = Table(
    "withdrawals", metadata,
    Column("external_id", String(128), primary_key=True),
    Column("account", BigInteger, ForeignKey("accounts.account"), nullable=False),
    Column("asset", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("state", String(10), nullable=False),
    Column("held_seq", BigInteger, nullable=False),
    Column("closed_seq", BigInteger),
    CheckConstraint("amount > 0", name="ck_withdrawals_amount"),
    CheckConstraint(_in("state", ("HELD", "COMPLETED", "REFUNDED")), name="ck_withdrawals_state"),
    CheckConstraint("(state = 'HELD') = (closed_seq IS NULL)", name="ck_withdrawals_closed"),
)

# Every money movement but a trade's (order reserves, deposits, withdrawals) is a
# transfer: ``amount`` (> 0) of ``asset`` out of one bucket of one account into another,
# i.e. two postings that cancel out, stored as one row (the ``postings`` view shows both).
# (seq, idx) is deterministic: a rolled-back batch consumes nothing, so an interrupted
# and an uninterrupted ledger hold identical rows (no serial ids here)
transfers = Table(
    "transfers", metadata,
    Column("seq", BigInteger, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("kind", String(17), nullable=False),
    Column("asset", String(16), nullable=False),
    Column("src_account", BigInteger, nullable=False),
    Column("src_bucket", String(9), nullable=False),
    Column("dst_account", BigInteger, nullable=False),
    Column("dst_bucket", String(9), nullable=False),
    Column("amount", BigInteger, nullable=False),
    PrimaryKeyConstraint("seq", "idx", name="pk_transfers"),
    CheckConstraint("amount > 0", name="ck_transfers_amount"),
    CheckConstraint(_in("src_bucket", (AVAILABLE, FROZEN)) + " AND "
                    + _in("dst_bucket", (AVAILABLE, FROZEN)), name="ck_transfers_buckets"),
    CheckConstraint(_in("kind", TRANSFER_KINDS), name="ck_transfers_kind"),
    CheckConstraint("src_account >= -1 AND dst_account >= -1", name="ck_transfers_accounts"),
)

ledger_state = Table(
    "ledger_state", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_ts", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="ck_ledger_state_single_row"),
    CheckConstraint("last_seq >= 0", name="ck_ledger_state_seq"),
)

# tables in the order rows must be inserted (foreign keys point backwards)
TABLES = (accounts, symbols, balances, orders, trades, deposits, withdrawals, transfers,
          ledger_state)


def _trade_leg(idx: int, account: str, asset: str, bucket: str, kind: str, amount: str,
               nonzero: bool) -> str:
    where = f" WHERE {amount} <> 0" if nonzero else ""
    return (f"SELECT t.seq, {idx}, t.trade_id, {account}, s.{asset}, '{bucket}', '{kind}', "
            f"{amount} FROM trades AS t JOIN symbols AS s ON s.symbol = t.symbol{where}")


_BUYER = "CASE WHEN t.taker_side = 'BUY' THEN t.taker_account ELSE t.maker_account END"
_SELLER = "CASE WHEN t.taker_side = 'BUY' THEN t.maker_account ELSE t.taker_account END"
_BUYER_FEE = "CASE WHEN t.taker_side = 'BUY' THEN t.taker_fee ELSE t.maker_fee END"
_SELLER_FEE = "CASE WHEN t.taker_side = 'BUY' THEN t.maker_fee ELSE t.taker_fee END"

# Every posting, as one relation: the two legs of each transfer (idx 2i: out of the
# source, 2i + 1: into the destination), and the five legs of each trade computed from
# its row (a trade row holds every amount its legs move, so storing the legs as well
# would write each fact twice; docs/ledger.md, "Postings").  The trade legs are those of
# ``postings.trade_legs``, in the same order (idx 0-4), zero legs left out; a test
# compares the two on a seeded session.  Key: (seq, trade_id, idx), trade_id NULL for
# transfer legs.
POSTINGS_VIEW = "CREATE VIEW postings AS\n" + "\nUNION ALL\n".join((
    "SELECT seq, 2 * idx AS idx, CAST(NULL AS BIGINT) AS trade_id, src_account AS account, "
    "asset, src_bucket AS bucket, kind, -amount AS amount FROM transfers",
    "SELECT seq, 2 * idx + 1, CAST(NULL AS BIGINT), dst_account, asset, dst_bucket, kind, amount "
    "FROM transfers",
    _trade_leg(0, _BUYER, "quote", FROZEN, "trade", f"-(t.quote_amount + {_BUYER_FEE})",
               False),
    _trade_leg(1, _SELLER, "quote", AVAILABLE, "trade", f"t.quote_amount - {_SELLER_FEE}",
               True),
    _trade_leg(2, str(FEE_ACCOUNT), "quote", AVAILABLE, "fee", "t.maker_fee + t.taker_fee",
               True),
    _trade_leg(3, _SELLER, "base", FROZEN, "trade", "-t.base_amount", False),
    _trade_leg(4, _BUYER, "base", AVAILABLE, "trade", "t.base_amount", False),
))

# the view, for queries (not created by ``metadata``: migrate.py creates it from SQL)
views = MetaData()
postings = Table(
    "postings", views,
    Column("seq", BigInteger),
    Column("idx", BigInteger),
    Column("trade_id", BigInteger),
    Column("account", BigInteger),
    Column("asset", String(16)),
    Column("bucket", String(9)),
    Column("kind", String(17)),
    Column("amount", BigInteger),
)
