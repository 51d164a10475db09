"""Commands: the immutable inputs of the core, in the order the command log gives them.

Each command is a frozen ``msgspec.Struct`` with an integer tag, so the log codec can
encode any of them compactly and decode back to the exact type.  ``seq`` and ``ts`` are
not fields: the log assigns them and passes them to ``Engine.apply(cmd, seq, ts)``.
Amounts are integers (ticks, lots, base units); ``None`` means "not given".
"""

from __future__ import annotations

import msgspec

from chainbook.domain.enums import OrderType, Side, Stp, SymbolStatus, TimeInForce
from chainbook.domain.instruments import SymbolSpec


class Command(msgspec.Struct, frozen=True, array_like=True, tag_field="k", gc=False):
    """Base of all commands."""


class PlaceOrder(Command, tag=1, frozen=True):
    """Place an order. LIMIT needs ``price``; MARKET needs exactly one of ``qty`` and
    ``quote_qty`` (Binance quoteOrderQty: the notional to trade, fees on top)."""

    account: int
    symbol: str
    side: Side
    type: OrderType
    qty: int | None = None  # lots
    price: int | None = None  # ticks
    tif: TimeInForce = TimeInForce.GTC
    client_id: str | None = None
    quote_qty: int | None = None  # quote units, MARKET only
    stp: Stp = Stp.DEFAULT


class CancelOrder(Command, tag=2, frozen=True):
    """Cancel one order by ``order_id`` or by ``client_id``; only the remainder goes.

    ``cancel_client_id`` is the cancel request's own id (Binance ``newClientOrderId`` on
    DELETE /api/v3/order), for the user-data stream; the engine does not read it.  Last,
    with a default: command logs written before it existed decode unchanged."""

    account: int
    symbol: str
    order_id: int | None = None
    client_id: str | None = None
    cancel_client_id: str | None = None


class CancelAll(Command, tag=3, frozen=True):
    """Cancel every open order of ``account`` on ``symbol``."""

    account: int
    symbol: str


class AmendOrder(Command, tag=4, frozen=True):
    """Change price and/or total quantity of an open order.

    ``new_qty`` is the new total order quantity (like Binance newQty, filled part
    included).  Reducing the quantity at the same price keeps time priority; any price
    change or quantity increase loses it (the order re-enters and may trade).
    """

    account: int
    symbol: str
    order_id: int | None = None
    client_id: str | None = None
    new_price: int | None = None
    new_qty: int | None = None


class Deposit(Command, tag=5, frozen=True):
    """Credit ``amount`` base units; idempotent by ``external_id`` (e.g. tx hash:log index)."""

    account: int
    asset: str
    amount: int
    external_id: str


class WithdrawHold(Command, tag=6, frozen=True):
    """Freeze ``amount`` for a withdrawal identified by ``external_id``."""

    account: int
    asset: str
    amount: int
    external_id: str


class WithdrawComplete(Command, tag=7, frozen=True):
    """The withdrawal ``external_id`` went out: remove its frozen funds for good."""

    external_id: str


class WithdrawRefund(Command, tag=8, frozen=True):
    """The withdrawal ``external_id`` failed: return its frozen funds to available."""

    external_id: str


class AddSymbol(Command, tag=9, frozen=True):
    """Admin: list a new symbol."""

    spec: SymbolSpec


class SetSymbolStatus(Command, tag=10, frozen=True):
    """Admin: halt, resume or put a symbol in cancel-only."""

    symbol: str
    status: SymbolStatus


class SetKillSwitch(Command, tag=11, frozen=True):
    """Kill switch: when ``active``, cancel all the account's orders and block new ones."""

    account: int
    active: bool


AnyCommand = (
    PlaceOrder | CancelOrder | CancelAll | AmendOrder | Deposit | WithdrawHold
    | WithdrawComplete | WithdrawRefund | AddSymbol | SetSymbolStatus | SetKillSwitch
)
