"""Settlement states as the API reports them (DESIGN.md section 2, docs/ledger.md).

A trade is MATCHED once the core made it (it is in the journal), SETTLED once the ledger
applied its command (``seq <= applied_seq``), ANCHORED once its batch is confirmed on a
chain.  An order is NONE without trades, SETTLING while one of its trades is not yet
settled, SETTLED after: since trades settle in seq order, that is "its last trade's seq
is at or below the ledger's applied seq".
"""

from __future__ import annotations

from chainbook.ledger.schema import MATCHED, NONE, SETTLED, SETTLING


def trade_settlement(trade_seq: int, applied_seq: int) -> str:
    """MATCHED or SETTLED for a trade made by command ``trade_seq``."""
    return SETTLED if trade_seq <= applied_seq else MATCHED


def order_settlement(last_trade_seq: int | None, applied_seq: int) -> str:
    """NONE, SETTLING or SETTLED for an order whose last trade came at ``last_trade_seq``."""
    if last_trade_seq is None or last_trade_seq <= 0:
        return NONE
    return SETTLED if last_trade_seq <= applied_seq else SETTLING
