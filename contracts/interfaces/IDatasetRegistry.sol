// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Dataset deeds
/// @notice One ERC-721 deed per dataset. The token id is the dataset's content root
/// (the sha2-256 digest inside the CIDv1 of the data), so the same bytes can only be
/// registered once. The data itself never leaves its owner.
interface IDatasetRegistry {
    /// @notice The content root is already registered; `owner` holds its deed.
    error DatasetRegistryAlreadyRegistered(uint256 datasetId, address owner);
    /// @notice No deed exists for `datasetId`.
    error DatasetRegistryUnknownDataset(uint256 datasetId);
    /// @notice The parent named for a new version is not registered.
    error DatasetRegistryUnknownParent(uint256 parentId);
    /// @notice A content root of zero is not a content hash.
    error DatasetRegistryZeroRoot();
    /// @notice Only the deed's owner (or an approved operator) may do this.
    error DatasetRegistryNotOwner(uint256 datasetId, address caller, address owner);
    /// @notice The dataset was retired (consent withdrawn) and cannot be retired again.
    error DatasetRegistryAlreadyRetired(uint256 datasetId);

    /// @notice A dataset deed was minted to `owner`. `parentId` is 0 for a first version.
    event DatasetRegistered(uint256 indexed datasetId, address indexed owner, uint256 indexed parentId, string uri);
    /// @notice The owner withdrew consent: no grant on this dataset authorises from this block on.
    event DatasetRetired(uint256 indexed datasetId);

    /// @notice Registers the dataset whose content root is `contentRoot` and mints its deed to the caller.
    /// @param parentId The dataset this one is a new version of, or 0.
    /// @param uri Where the owner describes the dataset (kept in the event, not in storage).
    /// @return datasetId `uint256(contentRoot)`.
    function register(bytes32 contentRoot, uint256 parentId, string calldata uri) external returns (uint256 datasetId);

    /// @notice Retires a dataset: consent withdrawn, irreversibly. Owner or approved operator only.
    function retire(uint256 datasetId) external;

    /// @notice Whether `datasetId` was retired.
    function isRetired(uint256 datasetId) external view returns (bool);

    /// @notice The facts every grant check needs, in one call.
    /// @return owner The deed's current holder.
    /// @return epoch How many times the deed changed hands; grants from an earlier epoch no longer authorise.
    /// @return retired Whether consent was withdrawn.
    function datasetState(uint256 datasetId) external view returns (address owner, uint32 epoch, bool retired);
}
