"""Merkle commitments to trades: leaf encoding, tree, proofs (pure; docs/chain.md).

A trade's *packed form* is ``abi.encodePacked(uint64 tradeId, bytes32 symbol, uint64
price, uint64 qty, uint64 makerAccount, uint64 takerAccount, uint8 takerSide, uint64
seq)``: 81 bytes, big-endian, the symbol's ASCII name right-padded with zero bytes.
Hashes are keccak256 and domain-separated so a leaf can never pass for an inner node:

* leaf  = keccak256(0x00 ++ packed trade)
* node  = keccak256(0x01 ++ left ++ right)

The tree is positional: leaves in batch order, paired left to right on each level; an
odd node at the end of a level is carried up unchanged (never paired with itself).  A
proof is the list of sibling hashes from the leaf upwards, skipping levels where the
node was carried; the verifier needs the leaf's index and the leaf count, which fix the
proof's exact length.  ``Settlement.verifyTrade`` implements the same rule on-chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_hash.auto import keccak

from chainbook.domain.events import Trade

TRADE_SIZE = 81
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
_U64 = 1 << 64


class LeafError(ValueError):
    """A trade that cannot be encoded (a field out of range, a symbol too long)."""


@dataclass(frozen=True, slots=True)
class TradeLeaf:
    """The fields of a trade committed on-chain (prices in ticks, quantities in lots)."""

    trade_id: int
    symbol: str
    price: int
    qty: int
    maker_account: int
    taker_account: int
    taker_side: int
    seq: int

    @classmethod
    def from_trade(cls, seq: int, trade: Trade) -> TradeLeaf:
        """The leaf fields of ``trade``, matched by command ``seq``."""
        return cls(trade.trade_id, trade.symbol, trade.price, trade.qty,
                   trade.maker_account, trade.taker_account, int(trade.taker_side), seq)

    def pack(self) -> bytes:
        """The 81-byte packed form; raise LeafError if a field does not fit."""
        name = self.symbol.encode("ascii") if self.symbol.isascii() else b""
        if not name or len(name) > 32:
            raise LeafError(f"symbol {self.symbol!r} must be 1..32 ASCII characters")
        if self.taker_side not in (0, 1):
            raise LeafError(f"taker_side must be 0 or 1, not {self.taker_side}")
        words = (self.trade_id, self.price, self.qty, self.maker_account,
                 self.taker_account, self.seq)
        if any(not 0 <= w < _U64 for w in words):
            raise LeafError(f"trade {self.trade_id}: a field does not fit in uint64: {words}")
        return b"".join((
            self.trade_id.to_bytes(8, "big"), name.ljust(32, b"\x00"),
            self.price.to_bytes(8, "big"), self.qty.to_bytes(8, "big"),
            self.maker_account.to_bytes(8, "big"), self.taker_account.to_bytes(8, "big"),
            bytes((self.taker_side,)), self.seq.to_bytes(8, "big"),
        ))

    @classmethod
    def unpack(cls, data: bytes) -> TradeLeaf:
        """Decode an 81-byte packed trade (inverse of ``pack``)."""
        if len(data) != TRADE_SIZE:
            raise LeafError(f"a packed trade has {TRADE_SIZE} bytes, not {len(data)}")

        def u64(at: int) -> int:
            return int.from_bytes(data[at:at + 8], "big")

        symbol = data[8:40].rstrip(b"\x00").decode("ascii")
        return cls(u64(0), symbol, u64(40), u64(48), u64(56), u64(64), data[72], u64(73))

    def leaf(self) -> bytes:
        """The leaf hash: keccak256(0x00 ++ packed trade)."""
        return leaf_hash(self.pack())


def leaf_hash(packed: bytes) -> bytes:
    """keccak256(0x00 ++ packed) for an 81-byte packed trade."""
    if len(packed) != TRADE_SIZE:
        raise LeafError(f"a packed trade has {TRADE_SIZE} bytes, not {len(packed)}")
    return keccak(LEAF_PREFIX + packed)


def node_hash(left: bytes, right: bytes) -> bytes:
    """keccak256(0x01 ++ left ++ right)."""
    return keccak(NODE_PREFIX + left + right)


class MerkleTree:
    """All levels of the tree over ``leaves`` (32-byte hashes, at least one).

    Building costs n - 1 hashes; ``proof`` is O(log n)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        if any(len(h) != 32 for h in leaves):
            raise ValueError("leaves must be 32-byte hashes")
        levels = [list(leaves)]
        while len(levels[-1]) > 1:
            cur = levels[-1]
            nxt = [node_hash(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
            if len(cur) % 2:
                nxt.append(cur[-1])
            levels.append(nxt)
        self.levels = levels

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def __len__(self) -> int:
        return len(self.levels[0])

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from leaf ``index`` up to the root (carried levels skipped)."""
        if not 0 <= index < len(self):
            raise IndexError(f"leaf index {index} out of range 0..{len(self) - 1}")
        out = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                out.append(level[sibling])
            index >>= 1
        return out


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root of the tree over ``leaves``."""
    return MerkleTree(leaves).root


def verify(root: bytes, count: int, index: int, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """True if ``leaf`` is leaf ``index`` of a ``count``-leaf tree with ``root``."""
    if not 0 <= index < count or len(leaf) != 32:
        return False
    h, p, n = leaf, 0, count
    while n > 1:
        if index & 1:
            if p >= len(proof):
                return False
            h = node_hash(proof[p], h)
            p += 1
        elif index + 1 < n:
            if p >= len(proof):
                return False
            h = node_hash(h, proof[p])
            p += 1
        index >>= 1
        n = (n + 1) >> 1
    return p == len(proof) and h == root
