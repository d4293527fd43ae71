// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/// @title Test helper: an EIP-1271 wallet that approves what its configured signer signed
/// @notice Stands in for a hospital's multisig or smart account in tests (Solidity and Python).
contract MockSignerWallet is IERC1271 {
    address private immutable _signer;

    constructor(address signer_) {
        _signer = signer_;
    }

    /// @notice The EOA whose signatures this wallet accepts.
    function signer() external view returns (address) {
        return _signer;
    }

    /// @notice Forwards a call, so the wallet can register datasets and grant as their owner.
    function execute(address target, bytes calldata data) external returns (bytes memory result) {
        if (msg.sender != _signer) revert MockSignerWalletNotSigner(msg.sender);
        bool ok;
        (ok, result) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 32), mload(result))
            }
        }
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        // The signer is an EOA, so this is a plain ECDSA recovery check.
        if (SignatureChecker.isValidSignatureNowCalldata(_signer, hash, signature)) {
            return IERC1271.isValidSignature.selector;
        }
        return 0xffffffff;
    }

    /// @notice Only the configured signer may drive the wallet.
    error MockSignerWalletNotSigner(address caller);
}

/// @title Test helper: an EIP-1271 wallet that rejects every signature
contract MockRejectingWallet is IERC1271 {
    /// @notice Forwards any call (tests use it to register a dataset owned by this wallet).
    function execute(address target, bytes calldata data) external returns (bytes memory result) {
        bool ok;
        (ok, result) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 32), mload(result))
            }
        }
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32, bytes calldata) external pure returns (bytes4) {
        return 0xffffffff;
    }
}
