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

POSTING_KINDS = ("deposit", "withdrawal_hold", "withdrawal", "withdrawal_refund", "trade",
                 "fee", "reserve")
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

orders = Table(
    "orders", metadata,
    Column("order_id", BigInteger, primary_key=True, autoincrement=False),
    Column("account", BigInteger, ForeignKey("accounts.account"), nullable=False),
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

# (seq, idx) is deterministic: a rolled-back batch consumes nothing, so an interrupted
# and an uninterrupted ledger hold identical rows (no serial ids here)
postings = Table(
    "postings", metadata,
    Column("seq", BigInteger, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("trade_id", BigInteger),
    Column("account", BigInteger, nullable=False),
    Column("asset", String(16), nullable=False),
    Column("bucket", String(9), nullable=False),
    Column("kind", String(17), nullable=False),
    Column("amount", BigInteger, nullable=False),
    PrimaryKeyConstraint("seq", "idx", name="pk_postings"),
    CheckConstraint("amount <> 0", name="ck_postings_amount"),
    CheckConstraint(_in("bucket", (AVAILABLE, FROZEN)), name="ck_postings_bucket"),
    CheckConstraint(_in("kind", POSTING_KINDS), name="ck_postings_kind"),
    CheckConstraint("account >= -1", name="ck_postings_account"),
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
TABLES = (accounts, symbols, balances, orders, trades, deposits, withdrawals, postings,
          ledger_state)
