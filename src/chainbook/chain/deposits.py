"""``DepositWatcher``: follow the chain, credit deposits to known addresses after N blocks.

Each ``step()``: check the chain id; make sure the last processed block is still
canonical (else walk back to the fork, forget the orphaned blocks and their pending
deposits); read the next blocks one by one, checking each one's parent hash against the
previous block (a mismatch is a reorg: rewind); record, per block and in one SQLite
transaction, the block, its deposits (ERC-20 ``Transfer`` logs of the configured tokens
and native transfers to deposit addresses; other addresses are ignored) and the new
height; then credit every pending deposit whose block is ``confirmations`` deep (the
including block counts as one) with the core's idempotent ``Deposit`` command.

Exactly once: a transfer is one row, UNIQUE (chain, tx hash, log index) (native
transfers use log index -1); the core's ``Deposit`` is idempotent by
``external_id = 0x<tx hash>:<log index>``, so a crash between the credit and the row
update only makes the next step see DUPLICATE_EXTERNAL_ID, which counts as credited.
A restart rescans from the last height minus ``restart_margin``.  A CREDITED deposit
whose block leaves the chain (a reorg deeper than N) cannot be undone here: it raises an
alert (log error + ``stats.alerts``) for the operator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chainbook.chain.client import BlockInfo, FundsClient, TransferLog
from chainbook.chain.corebridge import OK, Submit, outcome
from chainbook.chain.fundstore import CREDITED, DUST, PENDING, REJECTED, DepositRow, FundStore
from chainbook.chain.hdwallet import DepositAddresses
from chainbook.domain.commands import Deposit
from chainbook.domain.enums import Reject

log = logging.getLogger(__name__)
NATIVE_LOG_INDEX = -1
NATIVE_DECIMALS = 18
MAX_UNITS = 2**63 - 1  # the core's bound on any amount (engine/funds.py MAX_AMOUNT)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class WatchedToken:
    asset: str
    address: str  # lower-case 0x hex
    decimals: int


def convert(raw: int, token_decimals: int, asset_decimals: int) -> tuple[int, int]:
    """Token units -> (asset units credited, dust in token units never credited).

    A token with more decimals than the asset is floored to the asset's precision; the
    remainder is recorded as dust (deterministic, never rounded up)."""
    if token_decimals <= asset_decimals:
        return raw * 10 ** (asset_decimals - token_decimals), 0
    f = 10 ** (token_decimals - asset_decimals)
    return raw // f, raw % f


@dataclass
class WatcherStats:
    blocks: int = 0
    seen: int = 0
    credited: int = 0
    reorgs: int = 0
    orphaned: int = 0  # pending deposits dropped by a reorg
    alerts: list[str] = field(default_factory=list)


class DepositWatcher:
    """See the module docstring.  Not thread-safe: one worker calls ``step``."""

    def __init__(self, client: FundsClient, store: FundStore, addresses: DepositAddresses,
                 tokens: Sequence[WatchedToken], asset_decimals: dict[str, int],
                 submit: Submit, confirmations: int | None = None, *,
                 native_asset: str | None = None, start_block: int | None = None,
                 restart_margin: int | None = None, keep_blocks: int = 128,
                 max_blocks_per_step: int = 200, reset_on_new_chain: bool | None = None,
                 clock_ms: Callable[[], int] = wall_ms) -> None:
        self.client = client
        self.store = store
        self.addresses = addresses
        self.tokens = {t.address.lower(): t for t in tokens}
        self.asset_decimals = asset_decimals
        self.submit = submit
        self.confirmations = client.confirmations if confirmations is None else confirmations
        if self.confirmations < 1:
            raise ValueError("confirmations must be at least 1")
        self.native_asset = native_asset or None
        if self.native_asset is not None and self.native_asset not in asset_decimals:
            raise ValueError(f"unknown native asset {native_asset!r}")
        for t in tokens:
            if t.asset not in asset_decimals:
                raise ValueError(f"token {t.address}: unknown asset {t.asset!r}")
        self.keep = max(keep_blocks, 64 + self.confirmations)
        self.max_blocks = max_blocks_per_step
        self.clock_ms = clock_ms
        self.stats = WatcherStats()
        client.check_chain_id()
        self.chain = client.chain_key()
        reset = client.embedded if reset_on_new_chain is None else reset_on_new_chain
        previous = store.meta("chain")
        if reset and previous is not None and previous != self.chain:
            # before the old chain's PENDING rows are dropped: those N deep were due (and
            # may already be credited, the process having died before it recorded so)
            self._credit_rows(previous, store.last_height())
        if store.bind_chain(self.chain, reset=reset) is not None:
            log.warning("deposit watcher: new chain %s; pending deposits of the old one "
                        "dropped", self.chain)
        # a fresh embedded chain gets a prefix: its transactions can repeat the hashes
        # of a previous embedded chain's (same key, same nonces)
        self.id_prefix = f"emb-{self.chain.rsplit('-', 1)[-1][:12]}:" if client.embedded \
            else ""
        last = store.last_height()
        margin = self.confirmations if restart_margin is None else restart_margin
        if last < 0:
            first = start_block if start_block is not None else (
                0 if client.embedded else client.head())
            store.restart_at(self.chain, first - 1)
        else:
            store.restart_at(self.chain, max(-1, last - margin))
        self.head = max(store.last_height(), 0)

    # --- the loop ----------------------------------------------------------------------

    def step(self) -> int:
        """Follow the chain and credit what is deep enough; return deposits credited."""
        self.client.check_chain_id()
        self.addresses.refresh()
        self.head = self.client.head()
        last = self.store.last_height()
        if last >= 0 and not self._tip_ok(last):
            last = self._reorg(last)
        end = min(self.head, last + self.max_blocks)
        if end > last:
            last = self._scan(last + 1, end)
        return self._credit(last)

    def confirmations_of(self, row: DepositRow) -> int:
        """How deep ``row``'s block is (capped at N)."""
        if row.chain != self.chain or row.orphaned:
            return 0
        return max(0, min(self.confirmations, self.store.last_height() - row.block_number
                          + 1))

    def _tip_ok(self, last: int) -> bool:
        stored = self.store.block_hash(last)
        return stored is None or self.client.block_hash(last) == stored

    def _reorg(self, last: int) -> int:
        """Walk back from ``last`` to the newest block still canonical; rewind to it."""
        lowest = self.store.lowest_block()
        fork = -1 if lowest is None else lowest - 1
        k = last - 1
        while lowest is not None and k >= lowest:
            if self.store.block_hash(k) == self.client.block_hash(k):
                fork = k
                break
            k -= 1
        if lowest is not None and fork < lowest:
            self._alert(f"reorg deeper than the {self.keep}-block window at {last}")
        dropped, credited = self.store.rewind(self.chain, fork)
        self.stats.reorgs += 1
        self.stats.orphaned += dropped
        log.warning("deposit watcher: reorg, blocks %d..%d left the chain; %d pending "
                    "deposit(s) dropped", fork + 1, last, dropped)
        for row in credited:
            self._alert(f"CREDITED deposit {row.external_id} ({row.units} {row.asset} to "
                        f"account {row.account}) orphaned by a reorg deeper than "
                        f"{self.confirmations} blocks")
        return fork

    def _scan(self, first: int, end: int) -> int:
        """Process blocks ``first..end``; return the last one recorded.

        The blocks are read first, then the logs of their range, then the newest block's
        hash again: the logs query names block numbers, so a reorg between it and the
        block reads could pair the new fork's blocks with the old fork's (lack of) logs
        and lose a deposit for good.  If the range changed, nothing is recorded and the
        next step reads it again."""
        blocks: list[BlockInfo] = []
        for n in range(first, end + 1):
            blk = self.client.block(n)
            if blk is None:
                break
            blocks.append(blk)
        if not blocks:
            return first - 1
        logs: dict[int, list[TransferLog]] = {}
        for lg in self.client.transfer_logs(first, blocks[-1].number, list(self.tokens)):
            logs.setdefault(lg.block_number, []).append(lg)
        if self.client.block_hash(blocks[-1].number) != blocks[-1].hash:
            return first - 1  # the chain moved during the reads: again next step
        prev = self.store.block_hash(first - 1)
        last = first - 1
        for blk in blocks:
            n = blk.number
            if prev is not None and blk.parent != prev:  # the chain changed under us
                return self._reorg(n - 1)
            found = logs.get(n, [])
            if any(lg.block_hash != blk.hash for lg in found):
                break  # logs from another fork: read again next step
            deposits = self._deposits(blk, found)
            self.stats.seen += self.store.record_block(self.chain, n, blk.hash, blk.parent,
                                                       deposits, self.keep)
            self.stats.blocks += 1
            prev, last = blk.hash, n
        return last

    def _deposits(self, blk: BlockInfo, logs: list[TransferLog]) -> list[dict[str, Any]]:
        out = []
        for lg in logs:
            account = self.addresses.account_of(lg.to)
            token = self.tokens.get(lg.token)
            if account is None or token is None or lg.value <= 0:
                continue
            out.append(self._row(lg.tx_hash, lg.log_index, account, token.asset, lg.to,
                                 lg.value, token.decimals))
        if self.native_asset is None:
            return out
        for tx in blk.txs:
            account = self.addresses.account_of(tx.to) if tx.to else None
            if account is None or tx.value <= 0 or tx.to is None:
                continue
            r = self.client.receipt(tx.tx_hash)
            if r is None or r.status != 1 or r.block_hash != blk.hash:
                continue
            out.append(self._row(tx.tx_hash, NATIVE_LOG_INDEX, account, self.native_asset,
                                 tx.to, tx.value, NATIVE_DECIMALS))
        return out

    def _row(self, tx_hash: bytes, index: int, account: int, asset: str, to: str, raw: int,
             token_decimals: int) -> dict[str, Any]:
        units, dust = convert(raw, token_decimals, self.asset_decimals[asset])
        state = PENDING if units > 0 else DUST
        if units > MAX_UNITS:  # more than the core (and the store) can hold: refused
            self._alert(f"deposit 0x{tx_hash.hex()}:{index} of {raw} raw {asset} to "
                        f"account {account} is beyond {MAX_UNITS} units: not credited")
            units, state = 0, REJECTED
        return {"tx_hash": tx_hash, "log_index": index, "account": account, "asset": asset,
                "address": to, "raw_amount": raw, "units": units, "dust": dust,
                "state": state,
                "external_id": f"{self.id_prefix}0x{tx_hash.hex()}:{index}",
                "seen_ms": self.clock_ms()}

    def _credit(self, last: int) -> int:
        return self._credit_rows(self.chain, last)

    def _credit_rows(self, chain: str, last: int) -> int:
        """Credit the PENDING deposits of ``chain`` at least N deep below ``last``; on
        the embedded chain, mine an empty block now and then while some are not yet
        (``ChainClient.heartbeat``: nothing else makes blocks on a quiet chain)."""
        n = 0
        for row in self.store.deposits_pending(chain):
            if last - row.block_number + 1 < self.confirmations:
                if chain == self.chain:
                    self.client.heartbeat()
                continue
            if self.store.block_hash(row.block_number) not in (None, row.block_hash):
                continue  # recorded on a block that is no longer the one at that height
            result = outcome(self.submit(Deposit(row.account, row.asset, row.units,
                                                 row.external_id)))
            if result in (OK, Reject.DUPLICATE_EXTERNAL_ID.name):
                self.store.deposit_done(row.id, CREDITED, self.clock_ms(),
                                        None if result == OK else "already credited")
                self.stats.credited += 1
                n += 1
            else:
                self._alert(f"deposit {row.external_id} refused by the core: {result}")
                self.store.deposit_done(row.id, REJECTED, self.clock_ms(), result)
        return n

    def _alert(self, msg: str) -> None:
        log.error("deposit watcher ALERT: %s", msg)
        self.stats.alerts.append(msg)
