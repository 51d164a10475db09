"""``ChainSettler``: settled trades -> batches -> Settlement contract, reorg-safe.

Flow per batch, every step persisted in the store before the settler acts on it:
PREPARED (batch, trades and root recorded) -> SUBMITTED (signed transaction recorded,
then sent) -> CONFIRMED once the contract's state at the head shows the batch stored at
least ``confirmations`` blocks deep (the including block counts as one) -> its trades
ANCHORED.  The contract's state is the truth: a batch already on-chain with the same
root is adopted, never sent again; a transaction whose receipt disappears or whose
block is no longer canonical is detected and the same signed transaction rebroadcast
(or re-signed with a fresh nonce if its nonce was taken); the contract's batch-id check
(``BatchExists``) is the last defence against a double batch.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from chainbook.chain.batches import DEFAULT_MAX_AGE_MS, DEFAULT_MAX_TRADES, Batch, Batcher
from chainbook.chain.client import ChainClient, NonceUsed, SignedTx, WouldRevert
from chainbook.chain.merkle import TradeLeaf
from chainbook.chain.proofs import (
    TradeProof,
    TreeCache,
    Verification,
    build_proof,
    verify_trade,
)
from chainbook.chain.store import PREPARED, SUBMITTED, BatchRow, ChainStore
from chainbook.domain.events import Trade

__all__ = ["ChainSettler", "TradeProof", "Verification", "verify_trade"]

log = logging.getLogger(__name__)
MAX_REVERTS = 3  # a batch whose transaction reverts this often needs an operator


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class SettlerStats:
    prepared: int = 0
    sent: int = 0  # transactions broadcast (first sends and rebroadcasts)
    resigned: int = 0  # transactions signed again with a fresh nonce
    adopted: int = 0
    reorgs: int = 0
    confirmed: int = 0
    alerts: list[str] = field(default_factory=list)


class ChainSettler:
    """The only sender of settlement transactions (docs/chain.md, "Batch states")."""

    def __init__(self, client: ChainClient, store: ChainStore, confirmations: int | None = None,
                 *, max_trades: int = DEFAULT_MAX_TRADES, max_age_ms: int = DEFAULT_MAX_AGE_MS,
                 max_in_flight: int = 4, packed: bool = True,
                 clock_ms: Callable[[], int] = wall_ms, reset_on_new_chain: bool | None = None
                 ) -> None:
        if client.settlement is None:
            raise ValueError("the client has no Settlement contract")
        self.client = client
        self.store = store
        self._trees = TreeCache()  # the proof endpoint's trees, by batch
        self.confirmations = client.confirmations if confirmations is None else confirmations
        if self.confirmations < 1:
            raise ValueError("confirmations must be at least 1")
        self.max_in_flight = max_in_flight
        self.packed = packed
        self.clock_ms = clock_ms
        self.stats = SettlerStats()
        reset = client.embedded if reset_on_new_chain is None else reset_on_new_chain
        if store.bind(client.chain_key(), client.settlement.address, reset=reset):
            log.warning("chain settler: new chain, earlier batches discarded; re-feed trades")
        self.batcher = Batcher(store.next_batch_id(), store.last_trade_id(),
                               max_trades=max_trades, max_age_ms=max_age_ms)
        self._feed = threading.Lock()  # batcher + PREPARED writes: short, never does RPC
        self._unrecorded: collections.deque[tuple[Batch, int]] = collections.deque()
        self._step = threading.Lock()  # chain I/O: add_trades never waits for it

    # --- input -------------------------------------------------------------------------

    @property
    def last_batched_trade_id(self) -> int:
        """Trades up to this id are in batches; feeding them again is harmless."""
        return self.batcher.last_trade_id

    def add_trades(self, trades: Iterable[tuple[int, Trade]]) -> int:
        """Take settled trades ``(seq, Trade)`` in journal order; return batches prepared."""
        now = self.clock_ms()
        n = 0
        with self._feed:
            for seq, trade in trades:
                for batch in self.batcher.add(TradeLeaf.from_trade(seq, trade), now):
                    self._prepare(batch, now)
                    n += 1
        return n

    def flush(self) -> int:
        """Cut the pending trades into a batch now; return batches prepared (0 or 1)."""
        with self._feed:
            batch = self.batcher.flush()
            if batch is None:
                return 0
            self._prepare(batch, self.clock_ms())
            return 1

    @property
    def unrecorded(self) -> int:
        """Batches cut but not yet recorded in the store (a write failed)."""
        return len(self._unrecorded)

    def _prepare(self, batch: Batch, now: int) -> None:  # under self._feed
        """Record ``batch`` PREPARED.  The batcher has already moved past its trades and
        id, so a batch whose write fails (``database is locked`` after the busy timeout, a
        full disk) waits in memory and is recorded first, in order, at the next cut or
        step: feeding the same trades again skips them and must not lose them."""
        self._unrecorded.append((batch, now))
        self._record()

    def _record(self) -> None:  # under self._feed
        while self._unrecorded:
            batch, now = self._unrecorded[0]
            self.store.prepare(batch, now)
            self._unrecorded.popleft()
            self.stats.prepared += 1

    # --- the loop ----------------------------------------------------------------------

    def step(self) -> int:
        """Cut aged trades, move every open batch on; return batches still open.

        Call it periodically (e.g. every 100 ms from a worker thread); it never sleeps."""
        with self._feed:
            self._record()
            aged = self.batcher.poll(self.clock_ms())
            if aged is not None:
                self._prepare(aged, self.clock_ms())
        with self._step:
            open_rows = self.store.batches((PREPARED, SUBMITTED))
            if not open_rows:  # nothing to move: no chain reads (see withdrawals.step)
                return 0
            self.client.heartbeat()  # embedded chain: blocks while batches await them
            self.client.check_chain_id()  # a node switched to another chain stops us here
            head = self.client.head()
            in_flight = sum(1 for r in open_rows if r.state == SUBMITTED)
            for row in open_rows:
                if row.state == PREPARED and in_flight >= self.max_in_flight:
                    break
                if self._advance(row, head) and row.state == PREPARED:
                    in_flight += 1
            return len(self.store.batches((PREPARED, SUBMITTED)))

    def run_until_idle(self, timeout_s: float = 30.0, interval_s: float = 0.01) -> None:
        """Flush and step until every batch is CONFIRMED (tests, CLI); raise on timeout."""
        self.flush()
        deadline = time.monotonic() + timeout_s
        while self.step():
            if time.monotonic() > deadline:
                raise TimeoutError("chain settler: batches still open")
            time.sleep(interval_s)

    def _advance(self, row: BatchRow, head: int) -> bool:
        """Move one batch on; return True if a transaction was sent for it."""
        onchain = self.client.batch_on_chain(row.batch_id)
        if onchain.present:
            if onchain.root != row.root or onchain.count != row.count:
                self._alert(row.batch_id, f"on-chain root 0x{onchain.root.hex()} differs")
                return False
            if row.state == PREPARED:
                self.store.adopted(row.batch_id, "already on-chain before sending")
                self.stats.adopted += 1
            self._track_inclusion(row, onchain.block_number)
            if head - onchain.block_number + 1 >= self.confirmations:
                self.store.confirmed(row.batch_id, self.clock_ms())
                self.stats.confirmed += 1
            return False
        if row.included_block is not None:  # seen on-chain before, gone now: reorged out
            self._reorged(row)
        if row.state == PREPARED or row.tx_hash is None or row.raw_tx is None \
                or row.nonce is None:
            return self._submit(row, self.client.nonce())
        return self._recover(row, SignedTx(row.tx_hash, row.nonce, row.raw_tx))

    def _track_inclusion(self, row: BatchRow, block: int) -> None:
        canonical = self.client.block_hash(block)
        if row.included_block == block and row.included_hash == canonical:
            return
        reorg = row.included_hash is not None and row.included_hash != canonical
        if reorg:
            log.warning("batch %d: block changed under it (reorg); re-counting", row.batch_id)
            self.stats.reorgs += 1
        self.store.included(row.batch_id, block, canonical, reorg=reorg)

    def _reorged(self, row: BatchRow) -> None:
        log.warning("batch %d: its block %s left the chain; resubmitting", row.batch_id,
                    row.included_block)
        self.stats.reorgs += 1
        self.store.included(row.batch_id, None, None, reorg=True)

    def _recover(self, row: BatchRow, tx: SignedTx) -> bool:
        """SUBMITTED but not on-chain: wait if pending, rebroadcast if dropped."""
        receipt = self.client.receipt(tx.tx_hash)
        if receipt is not None and self.client.block_hash(receipt.block_number) \
                == receipt.block_hash:
            if receipt.status == 1:
                return False  # mined after we read the contract: next step sees it
            if row.submissions >= MAX_REVERTS:
                self._alert(row.batch_id, f"reverted {row.submissions} times")
                return False
            return self._submit(row, self.client.nonce())
        if receipt is None and self.client.tx_known(tx.tx_hash):
            return False  # pending in the mempool
        try:  # dropped or orphaned: the same signed transaction again
            log.warning("batch %d: transaction 0x%s dropped; rebroadcasting", row.batch_id,
                        tx.tx_hash.hex())
            self.client.send(tx)
            self.stats.sent += 1
            return True
        except NonceUsed:
            self.stats.resigned += 1
            return self._submit(row, self.client.nonce())

    def _submit(self, row: BatchRow, nonce: int) -> bool:
        packed = b""
        if self.packed:
            packed = b"".join(self.store.batch_packed(row.batch_id))
        try:
            tx = self.client.sign_submit(row.batch_id, row.root, row.count, packed, nonce)
        except WouldRevert as e:  # e.g. NotOperator: a configuration error
            self._alert(row.batch_id, str(e))
            return False
        self.store.submitted(row.batch_id, tx.tx_hash, tx.nonce, tx.raw, self.clock_ms())
        self.client.send(tx)
        self.stats.sent += 1
        return True

    def _alert(self, batch_id: int, why: str) -> None:
        msg = f"batch {batch_id}: {why}; marked FAILED, operator action needed"
        log.error("chain settler: %s", msg)
        self.stats.alerts.append(msg)
        self.store.failed(batch_id, why)

    # --- proofs ------------------------------------------------------------------------

    def proof(self, trade_id: int) -> TradeProof | None:
        """The Merkle proof of a batched trade (None if not in a batch yet)."""
        return build_proof(self.store, trade_id, self._trees)

    def trade_state(self, trade_id: int) -> str:
        """PENDING (not batched yet), PREPARED (batched, not anchored) or ANCHORED."""
        row = self.store.trade(trade_id)
        return "PENDING" if row is None else row.state

