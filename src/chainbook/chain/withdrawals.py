"""``WithdrawalProcessor``: request -> hold -> sign -> send -> N blocks -> complete/refund.

States (every one persisted in ``FundStore`` before the processor acts on it)::

    REQUESTED --WithdrawHold ok--> HELD --sign (explicit nonce), record--> SIGNED
        |  refused                   | would revert: FAILED     |  send
        v                            v                          v
     REJECTED                     FAILED --WithdrawRefund--> REFUNDED
                                     ^                          SENT --N blocks, ok--> CONFIRMED
                                     |  reverted N deep,          |                       |
                                     |  or provably dead <--------+   WithdrawComplete    v
                                     |  (its nonce taken, N deep, by another tx)    COMPLETED

Exactly once: the signed raw transaction is stored (SIGNED) before it is sent, so a
restart sends the very same transaction again (a node that has it says so); a second
transaction is never signed for a withdrawal.  One that no node knows any more is
rebroadcast from the stored bytes; it is refunded only when it is provably dead: its
nonce was used by another transaction now N blocks deep (the nonce can never be mined
again short of a reorg that deep), or its chain is gone (a new embedded chain).  A
reverted transaction is refunded only once its receipt is N blocks deep (a reorg could
still re-include it successfully before that).
Core commands are idempotent by the withdrawal id, so a crash between a core command
and the state change repeats the command harmlessly; a REQUESTED row is taken over by the
processor after a restart or ``REQUEST_GRACE_MS`` (a request handler that could not
record the hold's outcome), so no hold stays unrecorded.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from chainbook.chain.client import (
    CannotPay,
    ChainError,
    FundsClient,
    NonceUsed,
    SignedTx,
    WouldRevert,
)
from chainbook.chain.corebridge import OK, Submit, outcome
from chainbook.chain.fundstore import W_OPEN, FundStore, WithdrawalRow
from chainbook.domain.commands import Command, WithdrawComplete, WithdrawHold, WithdrawRefund
from chainbook.domain.enums import Reject

log = logging.getLogger(__name__)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_DONE = (OK, Reject.DUPLICATE_EXTERNAL_ID.name, Reject.WITHDRAWAL_NOT_PENDING.name)
# A REQUESTED row older than this whose request handler never recorded the hold (its
# store write failed, or it died) gets the (idempotent) hold from the processor.
REQUEST_GRACE_MS = 600_000  # far beyond a request's life: the two must not overlap


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class WithdrawalError(ValueError):
    """A request that cannot be accepted (bad address, asset or amount)."""


@dataclass(frozen=True, slots=True)
class PayAsset:
    """How an asset leaves: an ERC-20 ``token`` (None: native) with ``decimals``."""

    asset: str
    token: str | None
    decimals: int


def to_raw(units: int, asset_decimals: int, token_decimals: int) -> int:
    """Asset units -> token units; WithdrawalError if the token cannot carry them."""
    if token_decimals >= asset_decimals:
        return units * 10 ** (token_decimals - asset_decimals)
    f = 10 ** (asset_decimals - token_decimals)
    if units % f:
        raise WithdrawalError(f"amount has more decimals than the token's {token_decimals}")
    return units // f


def prepare_withdrawal(store: FundStore, pay: dict[str, PayAsset],
                       asset_decimals: dict[str, int], account: int, asset: str, units: int,
                       address: str, now_ms: int) -> WithdrawalRow:
    """Validate and record a request (REQUESTED); the caller then holds the funds
    (``hold_command(row)``) and reports the outcome with ``record_hold``."""
    p = pay.get(asset)
    if p is None:
        raise WithdrawalError(f"{asset} cannot be withdrawn on this chain")
    if not _ADDRESS.fullmatch(address):
        raise WithdrawalError("address: a 0x-prefixed 20-byte hex address")
    if units <= 0:
        raise WithdrawalError("amount must be positive")
    raw = to_raw(units, asset_decimals[asset], p.decimals)
    wid = uuid.uuid4().hex
    store.new_withdrawal(wid, account, asset, units, raw, address.lower(), now_ms)
    row = store.withdrawal(wid)
    if row is None:  # pragma: no cover - just inserted
        raise RuntimeError("withdrawal vanished")
    return row


def hold_command(row: WithdrawalRow) -> Command:
    """The core command freezing a request's funds (idempotent by the withdrawal id)."""
    return WithdrawHold(row.account, row.asset, row.units, row.id)


def record_hold(store: FundStore, wid: str, result: str, now_ms: int) -> str:
    """Record the hold's outcome; return the row's state (HELD or REJECTED).  If the row
    left REQUESTED meanwhile (the processor took over a request whose handler stalled
    past ``REQUEST_GRACE_MS``), the recorded state stands and is returned; a hold
    that succeeded against a row recorded REJECTED is logged as an alert (its funds
    stay frozen: the operator refunds it)."""
    ok = result in (OK, Reject.DUPLICATE_EXTERNAL_ID.name)
    state = "HELD" if ok else "REJECTED"
    if store.set_withdrawal(wid, state, now_ms, expect="REQUESTED",
                            note=None if ok else result):
        return state
    row = store.withdrawal(wid)
    now = row.state if row is not None else state
    if ok and now == "REJECTED":
        log.error("withdrawal processor ALERT: withdrawal %s was recorded REJECTED but a "
                  "later hold of it succeeded: its funds are frozen; refund it", wid)
    return "HELD" if now not in ("REQUESTED", "REJECTED") else now


@dataclass
class ProcessorStats:
    signed: int = 0
    sent: int = 0
    completed: int = 0
    refunded: int = 0
    alerts: list[str] = field(default_factory=list)


class WithdrawalProcessor:
    """See the module docstring.  ``step`` runs in one worker thread; ``prepare`` and
    ``held`` may run on another (the REST handler): they only touch REQUESTED rows."""

    def __init__(self, client: FundsClient, store: FundStore, pay: dict[str, PayAsset],
                 asset_decimals: dict[str, int], submit: Submit,
                 confirmations: int | None = None, *,
                 clock_ms: Callable[[], int] = wall_ms) -> None:
        self.client = client
        self.store = store
        self.pay = pay
        self.asset_decimals = asset_decimals
        self.submit = submit
        self.confirmations = client.confirmations if confirmations is None else confirmations
        self.clock_ms = clock_ms
        self.stats = ProcessorStats()
        self.chain = client.chain_key()
        self.started_ms = clock_ms()
        self._unsent = False
        self._bury_dead_chain()

    # --- requests ----------------------------------------------------------------------

    def prepare(self, account: int, asset: str, units: int, address: str) -> WithdrawalRow:
        """See ``prepare_withdrawal``."""
        return prepare_withdrawal(self.store, self.pay, self.asset_decimals, account, asset,
                                  units, address, self.clock_ms())

    @staticmethod
    def hold_command(row: WithdrawalRow) -> Command:
        return hold_command(row)

    def held(self, wid: str, result: str) -> str:
        """See ``record_hold``."""
        return record_hold(self.store, wid, result, self.clock_ms())

    def request(self, account: int, asset: str, units: int, address: str) -> WithdrawalRow:
        """prepare + hold through ``submit`` (synchronous callers: tests, tools)."""
        row = self.prepare(account, asset, units, address)
        self.held(row.id, outcome(self.submit(self.hold_command(row))))
        got = self.store.withdrawal(row.id)
        return got if got is not None else row

    # --- the loop ----------------------------------------------------------------------

    def step(self) -> int:
        """Move every open withdrawal on; return how many are still open."""
        rows = self.store.withdrawals(states=W_OPEN)
        # a transaction signed but not sent holds its nonce: sign nothing new until it
        # is out, or the next one would take the same nonce
        self._unsent = any(r.state == "SIGNED" for r in rows)
        if not rows:  # nothing to move: no chain reads (on the embedded EVM they hold
            return 0  # the server's GIL, docs/gateway-performance.md, Session 7)
        self.client.check_chain_id()
        if any(r.state == "SENT" for r in rows):
            self.client.heartbeat()  # embedded chain: blocks while payouts await them
        head = self.client.head()
        failed: Exception | None = None
        for row in rows:
            try:
                self._advance(row, head)
            except NonceUsed as e:
                self._nonce_taken(row, head, e)
            except Exception as e:  # noqa: BLE001 - one row must not stop the others
                log.error("withdrawal %s (%s): %s: %s", row.id, row.state,
                          type(e).__name__, e)
                failed = failed or e
                if self._signed_unsent(row.id):  # it holds a nonce: sign nothing behind it
                    self._unsent = True
        if failed is not None:
            raise failed  # reported by the worker (last_error); the rest moved on
        return len(self.store.withdrawals(states=W_OPEN))

    def _signed_unsent(self, wid: str) -> bool:
        """Is withdrawal ``wid`` SIGNED in the store (or unreadable: assume so)?"""
        try:
            cur = self.store.withdrawal(wid)
        except Exception:  # noqa: BLE001 - cannot tell: be safe
            return True
        return cur is not None and cur.state == "SIGNED"

    def _advance(self, row: WithdrawalRow, head: int) -> None:
        st = row.state
        if st == "REQUESTED":
            if row.apply_ms < self.started_ms or \
                    self.clock_ms() - row.apply_ms > REQUEST_GRACE_MS:
                # a request interrupted by a restart, or whose handler failed to record
                # the hold's outcome: apply it (again: idempotent by the id) and record it
                self.held(row.id, outcome(self.submit(self.hold_command(row))))
        elif st == "HELD" and not self._unsent:
            self._sign(row)
        elif st == "SIGNED":
            self._send(row)
        elif st == "SENT":
            self._track(row, head)
        elif st == "CONFIRMED":
            self._finish(row, WithdrawComplete(row.id), "COMPLETED")
        elif st == "FAILED":
            self._finish(row, WithdrawRefund(row.id), "REFUNDED")

    def _sign(self, row: WithdrawalRow) -> None:
        pay = self.pay[row.asset]
        try:
            tx = self.client.sign_transfer(pay.token, row.address, row.raw_amount,
                                           self.client.nonce())
        except (WouldRevert, CannotPay) as e:
            self._fail(row, f"would revert, nothing sent: {e}")
            return
        self.store.set_withdrawal(row.id, "SIGNED", self.clock_ms(), expect="HELD",
                                  chain=self.chain, tx_hash=tx.tx_hash, nonce=tx.nonce,
                                  raw_tx=tx.raw)
        self.stats.signed += 1
        row = self.store.withdrawal(row.id) or row
        self._send(row)

    def _signed(self, row: WithdrawalRow) -> SignedTx:
        if row.tx_hash is None or row.nonce is None or row.raw_tx is None:
            raise RuntimeError(f"withdrawal {row.id}: {row.state} without a transaction")
        return SignedTx(row.tx_hash, row.nonce, row.raw_tx)

    def _send(self, row: WithdrawalRow) -> None:
        tx = self._signed(row)
        try:
            self.client.send(tx)
        except NonceUsed:
            if self.client.receipt(tx.tx_hash) is None:
                raise
        except ChainError as e:  # node down or refusing: try again next step
            if isinstance(e, CannotPay) and row.state == "SIGNED" and row.sends == 0:
                # never broadcast: no node holds it, its nonce stays free for the next
                self._fail(row, f"nothing sent: {e}")
                return
            log.warning("withdrawal %s: send failed (%s); retrying", row.id, e)
            self._unsent = True
            return
        self.store.set_withdrawal(row.id, "SENT", self.clock_ms(), sends=row.sends + 1)
        self.stats.sent += 1

    def _track(self, row: WithdrawalRow, head: int) -> None:
        tx = self._signed(row)
        r = self.client.receipt(tx.tx_hash)
        if r is not None and self.client.block_hash(r.block_number) == r.block_hash:
            if row.included_hash != r.block_hash:
                self.store.set_withdrawal(row.id, "SENT", self.clock_ms(),
                                          included_block=r.block_number,
                                          included_hash=r.block_hash)
            if head - r.block_number + 1 < self.confirmations:
                return
            if r.status == 1:
                self.store.set_withdrawal(row.id, "CONFIRMED", self.clock_ms(), expect="SENT")
                self._finish(row, WithdrawComplete(row.id), "COMPLETED")
            else:
                self._fail(row, f"transaction 0x{tx.tx_hash.hex()} reverted")
            return
        if r is None and self.client.tx_known(tx.tx_hash):
            return  # pending in the mempool
        log.warning("withdrawal %s: transaction 0x%s dropped or orphaned; rebroadcasting",
                    row.id, tx.tx_hash.hex())
        self.store.set_withdrawal(row.id, "SENT", self.clock_ms(), included_block=None,
                                  included_hash=None)
        self._send(row)  # NonceUsed (provably dead) goes up to step()

    def _fail(self, row: WithdrawalRow, why: str) -> None:
        log.error("withdrawal %s failed: %s; refunding", row.id, why)
        self.store.set_withdrawal(row.id, "FAILED", self.clock_ms(), note=why)
        self._finish(row, WithdrawRefund(row.id), "REFUNDED")

    def _nonce_taken(self, row: WithdrawalRow, head: int, error: NonceUsed) -> None:
        """Another transaction took this one's nonce: it is dead once that transaction
        is N blocks deep (a reorg could drop it before, and this one could then be
        mined); until then the withdrawal stays as it is and is sent again next step."""
        deep = head - self.confirmations + 1
        if row.nonce is not None and deep >= 0 and self.client.mined_nonce(deep) > row.nonce:
            self._fail(row, f"dropped: nonce {row.nonce} taken by another transaction "
                            f"{self.confirmations} blocks deep: {error}")
            return
        log.warning("withdrawal %s: nonce %s taken by a transaction less than %d blocks "
                    "deep; waiting", row.id, row.nonce, self.confirmations)
        self._unsent = True  # sign nothing new behind it meanwhile

    def _finish(self, row: WithdrawalRow, cmd: Command, state: str) -> None:
        result = outcome(self.submit(cmd))
        if result not in _DONE:
            msg = f"withdrawal {row.id}: the core refused {type(cmd).__name__}: {result}"
            log.error("withdrawal processor ALERT: %s", msg)
            self.stats.alerts.append(msg)
            return
        self.store.set_withdrawal(row.id, state, self.clock_ms())
        if state == "COMPLETED":
            self.stats.completed += 1
        else:
            self.stats.refunded += 1

    def _bury_dead_chain(self) -> None:
        """Transactions signed for a chain that is gone (a new embedded chain) can never
        be mined: refund them.  Confirmed ones were paid on that chain: complete them;
        so are those whose payment the deposit watcher credited (sent to one of our
        deposit addresses): refunding those too would create the amount twice."""
        for row in self.store.withdrawals(states=("SIGNED", "SENT")):
            if row.chain is not None and row.chain != self.chain:
                if not self.client.embedded:
                    raise ValueError(f"withdrawal {row.id} was sent on chain {row.chain}, "
                                     f"this node is {self.chain}")
                if row.tx_hash is not None and self.store.credited_from(row.chain,
                                                                        row.tx_hash):
                    self.store.set_withdrawal(
                        row.id, "CONFIRMED", self.clock_ms(),
                        note=f"paid on chain {row.chain} (gone), credited there as a "
                             "deposit")
                    continue
                self.store.set_withdrawal(row.id, "FAILED", self.clock_ms(),
                                          note=f"chain {row.chain} is gone")
