"""``ChainClient``: the one module that talks web3 (deploy, sign, send, receipts, blocks).

It works against any JSON-RPC node (``rpc_url``) or the embedded chain (``"embedded"``,
chain.evm).  Every transaction is signed locally with the operator key and an explicit
nonce, as an EIP-1559 transaction carrying the configured chain id; the client refuses to
start if the node reports another chain id.  Values cross this boundary as plain Python
types (bytes, ints), never web3 objects.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from eth.exceptions import HeaderNotFound
from eth_account import Account
from eth_tester.exceptions import TransactionFailed  # type: ignore[import-untyped]
from web3 import Web3
from web3.exceptions import BlockNotFound, ContractLogicError, TransactionNotFound
from web3.providers.eth_tester import EthereumTesterProvider

from chainbook.chain.evm import EMBEDDED_CHAIN_ID, embedded_tester
from chainbook.chain.merkle import TradeLeaf

EMBEDDED = "embedded"
_NO_SENDER = "0x" + "00" * 20
PRIORITY_FEE_WEI = 10**9


class ChainError(RuntimeError):
    """The node refused or failed a request."""


class ChainIdMismatch(ChainError):
    """The node is on another chain than the configured one."""


class WouldRevert(ChainError):
    """Gas estimation shows the transaction would revert (a contract error)."""


class CannotPay(ChainError):
    """The node refuses the transaction because the operator's balance cannot cover its
    value and gas (at the estimate, or when it is sent): nothing was broadcast.  Not a
    WouldRevert: topping the wallet up mends it (the settler retries its batch; the
    withdrawal processor refunds the one withdrawal rather than wait)."""


class NonceUsed(ChainError):
    """A transaction's nonce is already taken on-chain by another transaction."""


# how nodes say the sender cannot cover value + gas: geth/anvil "insufficient funds for
# gas * price + value", eth-tester "Sender does not have enough balance to cover ..."
# (the value) and "Sender ... cannot afford txn gas ..." (the gas)
_NO_FUNDS = ("insufficient funds", "does not have enough balance", "cannot afford txn")


def _cannot_pay(error: Exception) -> bool:
    text = str(error).lower()
    return any(s in text for s in _NO_FUNDS)


@dataclass(frozen=True, slots=True)
class SignedTx:
    tx_hash: bytes
    nonce: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: bytes
    block_number: int
    block_hash: bytes
    status: int  # 1 success, 0 reverted
    gas_used: int


@dataclass(frozen=True, slots=True)
class OnchainBatch:
    """``Settlement.batchRoot``: a zero root means the batch is not on-chain."""

    root: bytes
    count: int
    block_number: int

    @property
    def present(self) -> bool:
        return self.root != bytes(32)


def load_artifact(name: str) -> dict[str, Any]:
    """The committed compiled artifact ``chain/artifacts/<name>.json`` (ABI + bytecode)."""
    text = resources.files("chainbook.chain").joinpath("artifacts", f"{name}.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"


def _key_bytes(key: str | bytes) -> bytes:
    raw = bytes.fromhex(key.removeprefix("0x")) if isinstance(key, str) else key
    if len(raw) != 32:
        raise ValueError("the operator key must be 32 bytes (64 hex digits)")
    return raw


class ChainClient:
    """A node plus the operator key; ``settlement`` is the Settlement contract address."""

    def __init__(self, rpc_url: str, chain_id: int | None, operator_key: str | bytes | None,
                 confirmations: int = 6, *, settlement: str | None = None,
                 timeout_s: float = 10.0, block_time_s: float = 1.0) -> None:
        if confirmations < 1:
            raise ValueError("confirmations must be at least 1")
        # no key: a read-only client (verify-trade); it refuses to sign
        self._key = _key_bytes(operator_key) if operator_key is not None else b""
        self.operator: Any = Account.from_key(self._key).address if self._key else _NO_SENDER
        self.embedded = rpc_url == EMBEDDED
        if self.embedded and not self._key:
            raise ValueError("the embedded chain needs the operator key")
        if self.embedded:
            self.tester: Any = embedded_tester([self._key])
            self._instance = uuid.uuid4().hex
            self.w3 = Web3(EthereumTesterProvider(self.tester))
            chain_id = EMBEDDED_CHAIN_ID if chain_id is None else chain_id
        else:
            if chain_id is None:
                raise ValueError("chain_id is required for a JSON-RPC node")
            provider = Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s},
                                         exception_retry_configuration=None)
            self.w3 = Web3(provider)
        for name in ("validation", "ens_name_to_address", "gas_price_strategy",
                     "gas_estimate"):  # validation asks eth_chainId twice per call
            self.w3.middleware_onion.remove(name)
        self.rpc_url = rpc_url
        self.chain_id = chain_id
        self.confirmations = confirmations
        self.block_time_s = block_time_s
        self._last_mined = time.monotonic()
        self._checked = False
        self.check_chain_id()
        self._settlement_abi = load_artifact("Settlement")
        self._errors = {
            bytes(Web3.keccak(text=_signature(e))[:4]): e["name"]
            for e in self._settlement_abi["abi"] if e["type"] == "error"}
        self.settlement: Any = None
        if settlement is not None:
            self.use_settlement(settlement)

    # --- chain -------------------------------------------------------------------------

    def check_chain_id(self) -> None:
        """Raise ChainIdMismatch unless the node's chain id is the configured one."""
        if self.embedded and self._checked:
            return  # eth-tester's chain id is a constant: checked once, at the start
        actual = int(self.w3.eth.chain_id)
        if actual != self.chain_id:
            raise ChainIdMismatch(
                f"node at {self.rpc_url} is on chain {actual}, configured {self.chain_id}")
        self._checked = True

    def head(self) -> int:
        """The latest block number."""
        if self.embedded:  # read off py-evm: web3's eth_blockNumber serializes a block
            return int(self.tester.backend.chain.get_canonical_head().block_number)
        return int(self.w3.eth.block_number)

    def block_hash(self, number: int) -> bytes | None:
        """Hash of canonical block ``number``, or None if there is none."""
        if self.embedded:  # a header lookup, not a serialized block through web3 (~1 ms)
            if number < 0:
                return None
            try:
                return bytes(self.tester.backend.chain
                             .get_canonical_block_header_by_number(number).hash)
            except HeaderNotFound:
                return None
        try:
            return bytes(self.w3.eth.get_block(number)["hash"])
        except BlockNotFound:
            return None

    def chain_key(self) -> str:
        """``<chain id>:<genesis hash>``: tells one chain from another.  An embedded chain
        never outlives its process, so each one also gets a random instance id (two
        started in the same second would otherwise have the same genesis)."""
        genesis = self.block_hash(0) or b""
        key = f"{self.chain_id}:0x{genesis.hex()}"
        return f"{key}:embedded-{self._instance}" if self.embedded else key

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Raw JSON-RPC call (``anvil_mine``, ``evm_snapshot`` ...); raise ChainError."""
        reply = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in reply and reply["error"]:
            raise ChainError(f"{method}: {reply['error']}")
        return reply.get("result")

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` empty blocks (embedded chain, anvil or another dev node)."""
        if self.embedded:
            self.tester.mine_blocks(blocks)
        else:
            self.rpc("anvil_mine", [hex(blocks)])
        self._last_mined = time.monotonic()

    def heartbeat(self) -> None:
        """On the embedded chain, mine an empty block every ``block_time_s``."""
        if self.embedded and time.monotonic() - self._last_mined >= self.block_time_s:
            self.mine(1)

    # --- transactions ------------------------------------------------------------------

    def nonce(self, pending: bool = True) -> int:
        """The operator's next nonce (counting pending transactions) or mined count."""
        return int(self.w3.eth.get_transaction_count(self.operator,
                                                     "pending" if pending else "latest"))

    def mined_nonce(self, block: int) -> int:
        """How many of the operator's transactions were mined up to ``block``."""
        return int(self.w3.eth.get_transaction_count(self.operator, block))

    def _fees(self) -> dict[str, int]:
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        return {"maxFeePerGas": 2 * base + PRIORITY_FEE_WEI,
                "maxPriorityFeePerGas": PRIORITY_FEE_WEI}

    def _sign(self, tx: dict[str, Any], nonce: int, gas: int | None) -> SignedTx:
        if not self._key:
            raise ChainError("this client has no operator key: it cannot sign")
        tx = {**tx, "nonce": nonce, "chainId": self.chain_id, "from": self.operator,
              **self._fees()}
        tx.pop("gasPrice", None)
        if gas is None:
            try:
                gas = int(self.w3.eth.estimate_gas(tx)) * 6 // 5 + 10_000  # type: ignore[arg-type]
            except (ContractLogicError, TransactionFailed) as e:  # node / embedded revert
                raise WouldRevert(f"the transaction would revert: {self._explain(e)}") from e
            except Exception as e:  # noqa: BLE001 - nodes differ in how they refuse
                if _cannot_pay(e):
                    raise CannotPay(f"the operator cannot pay it: {e}") from e
                raise
        tx["gas"] = gas
        tx.pop("from")
        signed = Account.sign_transaction(tx, self._key)
        return SignedTx(bytes(signed.hash), nonce, bytes(signed.raw_transaction))

    def _explain(self, error: Exception) -> str:
        """Name the contract's custom error in a revert message when it is one of ours."""
        text = str(error)
        for selector, name in self._errors.items():
            if "0x" + selector.hex() in text or repr(selector)[2:-1] in text:
                return f"{name} ({text})"
        return text

    def send(self, tx: SignedTx) -> None:
        """Broadcast ``tx``; a node that already knows it is fine.

        Raise NonceUsed if another transaction took its nonce, CannotPay if the operator
        cannot cover it, ChainError otherwise."""
        try:
            self.w3.eth.send_raw_transaction(tx.raw)
        except Exception as e:  # nodes differ in how they say "known" or "nonce too low"
            if self.tx_known(tx.tx_hash):
                return
            if self.nonce(pending=False) > tx.nonce:
                raise NonceUsed(f"nonce {tx.nonce} already used: {e}") from e
            if _cannot_pay(e):
                raise CannotPay(f"the node refused 0x{tx.tx_hash.hex()}: the operator "
                                f"cannot pay it: {e}") from e
            raise ChainError(f"sending 0x{tx.tx_hash.hex()} failed: {e}") from e

    def tx_known(self, tx_hash: bytes) -> bool:
        """True if the node has the transaction (pending or mined)."""
        try:
            self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
            return True
        except TransactionNotFound:
            return False

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        """The transaction's receipt, or None while it is pending, dropped or orphaned."""
        try:
            r = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        if r is None or r.get("blockHash") is None:
            return None
        return Receipt(tx_hash, int(r["blockNumber"]), bytes(r["blockHash"]),
                       int(r["status"]), int(r["gasUsed"]))

    def wait_receipt(self, tx_hash: bytes, timeout_s: float = 30.0) -> Receipt:
        """Poll for the receipt (every 10 ms); raise ChainError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            r = self.receipt(tx_hash)
            if r is not None:
                return r
            if time.monotonic() > deadline:
                raise ChainError(f"no receipt for 0x{tx_hash.hex()} after {timeout_s} s")
            time.sleep(0.01)

    def transact(self, tx: dict[str, Any], gas: int | None = None) -> Receipt:
        """Sign ``tx`` with the next nonce, send it, wait for a successful receipt."""
        signed = self._sign(tx, self.nonce(), gas)
        self.send(signed)
        r = self.wait_receipt(signed.tx_hash)
        if r.status != 1:
            raise ChainError(f"transaction 0x{signed.tx_hash.hex()} reverted")
        return r

    # --- contracts ---------------------------------------------------------------------

    def deploy(self, name: str, *args: Any) -> str:
        """Deploy artifact ``name`` with constructor ``args``; return its address."""
        art = load_artifact(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        # gas given: build_transaction would estimate with the placeholder nonce (which
        # eth-tester validates); _sign estimates with the real one
        tx = factory.constructor(*args).build_transaction(
            {"from": self.operator, "nonce": 0, "gas": 1})
        tx.pop("nonce")
        tx.pop("gas")
        signed = self._sign(dict(tx), self.nonce(), None)
        self.send(signed)
        r = self.wait_receipt(signed.tx_hash)
        got = self.w3.eth.get_transaction_receipt(signed.tx_hash)  # type: ignore[arg-type]
        if r.status != 1 or not got["contractAddress"]:
            raise ChainError(f"deploying {name} failed")
        return str(got["contractAddress"])

    def deploy_settlement(self, operator: str | None = None) -> str:
        """Deploy a Settlement contract (operator: this client's key) and use it."""
        address = self.deploy("Settlement", operator or self.operator)
        self.use_settlement(address)
        return address

    def use_settlement(self, address: str) -> None:
        """Talk to the Settlement contract at ``address``; raise ChainError if none."""
        checksum = Web3.to_checksum_address(address)
        if not self.w3.eth.get_code(checksum):
            raise ChainError(f"no contract at {address} on chain {self.chain_id}")
        self.settlement = self.w3.eth.contract(address=checksum,
                                               abi=self._settlement_abi["abi"])

    def token(self, address: str) -> Any:
        """A TestToken (ERC-20) contract object at ``address``."""
        return self.w3.eth.contract(address=Web3.to_checksum_address(address),
                                    abi=load_artifact("TestToken")["abi"])

    def _contract(self) -> Any:
        if self.settlement is None:
            raise ChainError("no Settlement contract: deploy_settlement or use_settlement")
        return self.settlement

    def batch_on_chain(self, batch_id: int, block: int | str = "latest") -> OnchainBatch:
        """``Settlement.batchRoot(batch_id)`` at ``block``."""
        root, count, number = self._contract().functions.batchRoot(batch_id).call(
            block_identifier=block)
        return OnchainBatch(bytes(root), int(count), int(number))

    def batch_events(self, from_block: int = 0) -> list[tuple[int, bytes, int, int]]:
        """``BatchSubmitted`` logs on the canonical chain: (batch id, root, count, block).

        Keep the range short on the embedded chain (eth-tester's get_logs is slow)."""
        logs = self._contract().events.BatchSubmitted.get_logs(from_block=from_block)
        return [(int(e["args"]["batchId"]), bytes(e["args"]["merkleRoot"]),
                 int(e["args"]["tradeCount"]), int(e["blockNumber"])) for e in logs]

    def verify_on_chain(self, batch_id: int, index: int, leaf: bytes,
                        proof: Sequence[bytes]) -> bool:
        """``Settlement.verifyTrade``: the contract's own inclusion check."""
        fn = self._contract().functions.verifyTrade(batch_id, index, leaf, list(proof))
        return bool(fn.call())

    def hash_trade_on_chain(self, t: TradeLeaf) -> bytes:
        """``Settlement.hashTrade``: the leaf hash computed by the contract."""
        return bytes(self._contract().functions.hashTrade(*self._trade_args(t)).call())

    @staticmethod
    def _trade_args(t: TradeLeaf) -> tuple[Any, ...]:
        symbol = t.symbol.encode("ascii").ljust(32, b"\x00")
        return (t.trade_id, symbol, t.price, t.qty, t.maker_account, t.taker_account,
                t.taker_side, t.seq)

    def sign_submit(self, batch_id: int, root: bytes, count: int, packed: bytes,
                    nonce: int, gas: int | None = None) -> SignedTx:
        """Sign ``submitBatch`` with ``nonce`` (gas estimated unless given; an estimate
        fails with ChainError if the call would revert, e.g. the batch id exists)."""
        fn = self._contract().functions.submitBatch(batch_id, root, count, packed)
        tx = fn.build_transaction({"from": self.operator, "nonce": nonce, "gas": 1})
        tx.pop("gas")
        return self._sign(dict(tx), nonce, gas)

    def sign_settle(self, t: TradeLeaf, nonce: int, gas: int | None = None) -> SignedTx:
        """Sign ``settle`` (one trade per transaction: the gas baseline)."""
        fn = self._contract().functions.settle(*self._trade_args(t))
        tx = fn.build_transaction({"from": self.operator, "nonce": nonce, "gas": 1})
        tx.pop("gas")
        return self._sign(dict(tx), nonce, gas)


# --- deposits and withdrawals (chain.deposits, chain.withdrawals) ----------------------

TRANSFER_TOPIC = "0x" + bytes(Web3.keccak(text="Transfer(address,address,uint256)")).hex()


@dataclass(frozen=True, slots=True)
class NativeTx:
    """A transaction of a block as the deposit watcher needs it (``to`` lower-case hex)."""

    tx_hash: bytes
    to: str | None
    value: int


@dataclass(frozen=True, slots=True)
class BlockInfo:
    number: int
    hash: bytes
    parent: bytes
    txs: tuple[NativeTx, ...]


@dataclass(frozen=True, slots=True)
class TransferLog:
    """An ERC-20 ``Transfer`` log (addresses lower-case hex, ``value`` in token units)."""

    tx_hash: bytes
    log_index: int
    token: str
    sender: str
    to: str
    value: int
    block_number: int
    block_hash: bytes


def _topic_address(topic: Any) -> str:
    raw = bytes(topic)
    return "0x" + raw[-20:].hex()


class FundsClient(ChainClient):
    """``ChainClient`` plus what deposits and withdrawals need: blocks with their
    transactions, ERC-20 Transfer logs, signed transfers, balances, test tokens."""

    def block(self, number: int) -> BlockInfo | None:
        """Canonical block ``number`` with its transactions, or None if there is none."""
        try:
            b = self.w3.eth.get_block(number, full_transactions=True)
        except BlockNotFound:
            return None
        txs = []
        for item in b["transactions"]:
            t: Any = item  # full_transactions=True: dicts, never bare hashes
            to = t.get("to")
            txs.append(NativeTx(bytes(t["hash"]), str(to).lower() if to else None,
                                int(t.get("value", 0))))
        return BlockInfo(int(b["number"]), bytes(b["hash"]), bytes(b["parentHash"]),
                         tuple(txs))

    def transfer_logs(self, from_block: int, to_block: int, tokens: Sequence[str]
                      ) -> list[TransferLog]:
        """``Transfer`` logs of ``tokens`` in blocks ``from_block..to_block``."""
        if not tokens:
            return []
        logs = self.w3.eth.get_logs({
            "fromBlock": from_block, "toBlock": to_block,
            "address": [Web3.to_checksum_address(t) for t in tokens],
            "topics": [TRANSFER_TOPIC]})
        out = []
        for lg in logs:
            topics = lg["topics"]
            if len(topics) != 3 or lg.get("removed"):
                continue
            data = bytes(lg["data"])
            out.append(TransferLog(
                bytes(lg["transactionHash"]), int(lg["logIndex"]), str(lg["address"]).lower(),
                _topic_address(topics[1]), _topic_address(topics[2]),
                int.from_bytes(data[:32], "big"), int(lg["blockNumber"]),
                bytes(lg["blockHash"])))
        return out

    def sign_transfer(self, token: str | None, to: str, amount: int, nonce: int
                      ) -> SignedTx:
        """Sign a payment of ``amount`` to ``to``: native (``token`` None) or ERC-20.

        Raise WouldRevert if gas estimation shows it would fail (e.g. the operator does
        not hold enough tokens)."""
        dest = Web3.to_checksum_address(to)
        if token is None:
            return self._sign({"to": dest, "value": amount, "from": self.operator}, nonce,
                              None)
        fn = self.token(token).functions.transfer(dest, amount)
        tx = fn.build_transaction({"from": self.operator, "nonce": nonce, "gas": 1})
        tx.pop("gas")
        return self._sign(dict(tx), nonce, None)

    def token_balance(self, token: str, owner: str) -> int:
        """``balanceOf(owner)`` of an ERC-20 ``token``."""
        return int(self.token(token).functions.balanceOf(
            Web3.to_checksum_address(owner)).call())

    def native_balance(self, owner: str) -> int:
        """The native balance of ``owner`` in wei."""
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(owner)))

    def deploy_token(self, name: str, symbol: str, decimals: int, supply: int) -> str:
        """Deploy a TestToken minting ``supply`` to the operator; return its address."""
        return self.deploy("TestToken", name, symbol, decimals, supply)

    def token_decimals(self, token: str) -> int:
        """``decimals()`` of an ERC-20 ``token``."""
        return int(self.token(token).functions.decimals().call())

    def pay(self, token: str | None, to: str, amount: int) -> Receipt:
        """Pay now from the operator (faucet, tests): sign, send, wait for success."""
        signed = self.sign_transfer(token, to, amount, self.nonce())
        self.send(signed)
        r = self.wait_receipt(signed.tx_hash)
        if r.status != 1:
            raise ChainError(f"payment 0x{signed.tx_hash.hex()} reverted")
        return r
