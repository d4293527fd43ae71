// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {DatasetRegistry} from "../DatasetRegistry.sol";
import {UsageGrants} from "../UsageGrants.sol";

/// @title Benchmark helper: one contract owning thousands of granted datasets
/// @notice Sets up a large federation on a devnet in a few transactions: it registers
/// `count` datasets (content roots keccak256(abi.encode(seed, i))) as their owner and grants
/// each to `grantee` for `purpose`. Production owners register and grant one by one; this
/// only exists so the gas of 1,000- and 10,000-participant rounds can be measured quickly.
contract BulkDatasetOwner {
    DatasetRegistry private immutable _registry;
    UsageGrants private immutable _grants;

    constructor(DatasetRegistry registry_, UsageGrants grants_) {
        _registry = registry_;
        _grants = grants_;
    }

    /// @notice Registers datasets `first` to `first + count - 1` of `seed` and grants each.
    function registerAndGrant(
        bytes32 seed,
        uint256 first,
        uint256 count,
        address grantee,
        bytes32 purpose,
        uint64 expiresAt
    ) external {
        for (uint256 i = first; i < first + count; ++i) {
            uint256 datasetId = _registry.register(keccak256(abi.encode(seed, i)), 0, "");
            _grants.issueGrant(datasetId, grantee, purpose, 0, expiresAt);
        }
    }
}
