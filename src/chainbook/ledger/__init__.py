"""The settlement service: the event journal -> the SQL ledger (docs/ledger.md).

``postings`` and ``batch`` are pure (events -> rows); ``store`` is the only writer of the
database; ``source`` tails the journal read-only; ``service`` runs the loop; ``reconcile``
checks the ledger against a replay of the journal.
"""

from chainbook.ledger.states import order_settlement

__all__ = ["order_settlement"]
