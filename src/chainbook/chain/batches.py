"""Cutting settled trades into settlement batches by size and age (pure).

Trades arrive in journal order (seq, then trade id); trade ids only grow, so a trade
whose id is not above the last one taken was already batched (a replay after a restart)
and is skipped.  Batch ids are consecutive from the first id given, so the same trades
cut at the same points give the same batches.  The clock is an argument (``now_ms``):
nothing here reads time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chainbook.chain.merkle import MerkleTree, TradeLeaf

DEFAULT_MAX_TRADES = 1000
DEFAULT_MAX_AGE_MS = 1000


@dataclass(frozen=True, slots=True)
class Batch:
    """One settlement batch: its id, trades in leaf order, leaf hashes and Merkle root."""

    batch_id: int
    trades: tuple[TradeLeaf, ...]
    leaves: tuple[bytes, ...] = field(repr=False)
    root: bytes

    @classmethod
    def build(cls, batch_id: int, trades: tuple[TradeLeaf, ...]) -> Batch:
        """Hash the trades and build the tree (raises LeafError on a bad trade)."""
        if batch_id <= 0 or batch_id >= 1 << 64:
            raise ValueError(f"batch id {batch_id} out of range 1..2**64-1")
        leaves = tuple(t.leaf() for t in trades)
        return cls(batch_id, trades, leaves, MerkleTree(leaves).root)

    @property
    def count(self) -> int:
        return len(self.trades)

    @property
    def last_trade_id(self) -> int:
        return self.trades[-1].trade_id

    def packed(self) -> bytes:
        """The trades' packed forms back to back (the optional ``packedTrades``)."""
        return b"".join(t.pack() for t in self.trades)


class Batcher:
    """Collects trades and cuts a batch at ``max_trades`` or when the oldest pending
    trade is ``max_age_ms`` old (checked by ``add`` and ``poll``)."""

    def __init__(self, next_batch_id: int = 1, last_trade_id: int = 0,
                 max_trades: int = DEFAULT_MAX_TRADES,
                 max_age_ms: int = DEFAULT_MAX_AGE_MS) -> None:
        if max_trades <= 0 or max_trades >= 1 << 32:
            raise ValueError("max_trades must be in 1..2**32-1")
        if max_age_ms < 0:
            raise ValueError("max_age_ms must not be negative")
        self.next_batch_id = next_batch_id
        self.last_trade_id = last_trade_id
        self.max_trades = max_trades
        self.max_age_ms = max_age_ms
        self._pending: list[TradeLeaf] = []
        self._first_ms = 0

    @property
    def pending(self) -> int:
        """Trades taken but not yet in a batch."""
        return len(self._pending)

    def add(self, trade: TradeLeaf, now_ms: int) -> list[Batch]:
        """Take ``trade`` (skipped if already taken); return the batches it completes."""
        out: list[Batch] = []
        if trade.trade_id <= self.last_trade_id:
            return out
        trade.pack()  # validate now, so a bad trade fails where it enters
        aged = self.poll(now_ms)
        if aged is not None:
            out.append(aged)
        if not self._pending:
            self._first_ms = now_ms
        self._pending.append(trade)
        self.last_trade_id = trade.trade_id
        if len(self._pending) >= self.max_trades:
            out.append(self._cut())
        return out

    def poll(self, now_ms: int) -> Batch | None:
        """Cut the pending trades if the oldest is at least ``max_age_ms`` old."""
        if self._pending and now_ms - self._first_ms >= self.max_age_ms:
            return self._cut()
        return None

    def flush(self) -> Batch | None:
        """Cut whatever is pending, whatever its age."""
        return self._cut() if self._pending else None

    def _cut(self) -> Batch:
        batch = Batch.build(self.next_batch_id, tuple(self._pending))
        self.next_batch_id += 1
        self._pending = []
        return batch
