// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Settlement: batches of off-chain matched trades committed by their Merkle root.
/// @notice The operator submits each batch once (id, root, trade count, optional packed
/// trades as data availability); anyone can check that a trade is in a batch with
/// `verifyTrade`. Leaf encoding and tree rules: docs/chain.md.
contract Settlement {
    /// Size in bytes of one packed trade (the leaf preimage without its 0x00 prefix).
    uint256 public constant TRADE_SIZE = 81;

    struct Batch {
        bytes32 root;
        uint32 tradeCount;
        uint64 blockNumber;
    }

    error NotOperator(address caller);
    error BatchExists(uint64 batchId);
    error EmptyBatch();
    error ZeroRoot();
    error BadPackedLength(uint256 length, uint256 expected);
    error TradeExists(uint64 tradeId);

    event BatchSubmitted(uint64 indexed batchId, bytes32 merkleRoot, uint32 tradeCount);
    event TradeSettled(uint64 indexed tradeId, bytes32 leaf);

    address public immutable operator;

    mapping(uint64 => Batch) private _batches;
    mapping(uint64 => bytes32) private _settled;

    constructor(address operator_) {
        operator = operator_;
    }

    modifier onlyOperator() {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        _;
    }

    /// Record batch `batchId` with its Merkle root; `packedTrades` is empty or holds
    /// `tradeCount` packed trades (calldata only, never stored).
    function submitBatch(
        uint64 batchId,
        bytes32 merkleRoot,
        uint32 tradeCount,
        bytes calldata packedTrades
    ) external onlyOperator {
        if (tradeCount == 0) revert EmptyBatch();
        if (merkleRoot == bytes32(0)) revert ZeroRoot();
        if (packedTrades.length != 0 && packedTrades.length != uint256(tradeCount) * TRADE_SIZE) {
            revert BadPackedLength(packedTrades.length, uint256(tradeCount) * TRADE_SIZE);
        }
        Batch storage b = _batches[batchId];
        if (b.root != bytes32(0)) revert BatchExists(batchId);
        b.root = merkleRoot;
        b.tradeCount = tradeCount;
        b.blockNumber = uint64(block.number);
        emit BatchSubmitted(batchId, merkleRoot, tradeCount);
    }

    /// Root, trade count and inclusion block of a batch (zeros if unknown).
    function batchRoot(uint64 batchId)
        external
        view
        returns (bytes32 root, uint32 tradeCount, uint64 blockNumber)
    {
        Batch storage b = _batches[batchId];
        return (b.root, b.tradeCount, b.blockNumber);
    }

    /// Leaf hash of a trade: keccak256(0x00 ++ packed trade).
    function hashTrade(
        uint64 tradeId,
        bytes32 symbol,
        uint64 price,
        uint64 qty,
        uint64 makerAccount,
        uint64 takerAccount,
        uint8 takerSide,
        uint64 seq
    ) public pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                bytes1(0x00), tradeId, symbol, price, qty, makerAccount, takerAccount,
                takerSide, seq
            )
        );
    }

    /// True if `leaf` is leaf number `index` of batch `batchId` with this proof.
    function verifyTrade(uint64 batchId, uint256 index, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        Batch storage b = _batches[batchId];
        uint256 n = b.tradeCount;
        if (b.root == bytes32(0) || index >= n) return false;
        bytes32 h = leaf;
        uint256 p = 0;
        while (n > 1) {
            if (index & 1 == 1) {
                if (p >= proof.length) return false;
                h = _node(proof[p++], h);
            } else if (index + 1 < n) {
                if (p >= proof.length) return false;
                h = _node(h, proof[p++]);
            }
            index >>= 1;
            n = (n + 1) >> 1;
        }
        return p == proof.length && h == b.root;
    }

    /// Baseline for the gas benchmark: settle ONE trade per transaction.
    function settle(
        uint64 tradeId,
        bytes32 symbol,
        uint64 price,
        uint64 qty,
        uint64 makerAccount,
        uint64 takerAccount,
        uint8 takerSide,
        uint64 seq
    ) external onlyOperator {
        if (_settled[tradeId] != bytes32(0)) revert TradeExists(tradeId);
        bytes32 leaf =
            hashTrade(tradeId, symbol, price, qty, makerAccount, takerAccount, takerSide, seq);
        _settled[tradeId] = leaf;
        emit TradeSettled(tradeId, leaf);
    }

    /// Leaf hash of a trade settled one by one with `settle` (zero if none).
    function settledTrade(uint64 tradeId) external view returns (bytes32) {
        return _settled[tradeId];
    }

    function _node(bytes32 left, bytes32 right) private pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x01), left, right));
    }
}
