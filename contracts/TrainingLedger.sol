// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IDatasetRegistry} from "./interfaces/IDatasetRegistry.sol";
import {ITrainingLedger} from "./interfaces/ITrainingLedger.sol";
import {IUsageGrants} from "./interfaces/IUsageGrants.sol";

/// @title Federated training jobs and their hash-chained round commitments
/// @notice Per round only two storage words change (last round, last digest); everything an
/// auditor needs (manifest CID, participants, attestations root) is in the event.
/// @dev Inherits EIP712 only to publish, through EIP-5267 `eip712Domain()`, the domain
/// (`TrainingLedger`, `2`) under which nodes sign their update attestations off-chain.
contract TrainingLedger is EIP712, ITrainingLedger {
    /// @notice The largest dataset list a job may hold (one bit each in the participant mask).
    uint256 public constant MAX_DATASETS = 256;

    IDatasetRegistry private immutable _registry;
    IUsageGrants private immutable _grants;

    mapping(uint256 jobId => Job) private _jobs;
    uint256 private _jobCount;

    constructor(IDatasetRegistry registry_, IUsageGrants grants_) EIP712("TrainingLedger", "2") {
        _registry = registry_;
        _grants = grants_;
    }

    /// @notice The DatasetRegistry jobs draw their datasets from.
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @notice The UsageGrants contract consulted at every commit.
    function grants() external view returns (address) {
        return address(_grants);
    }

    /// @inheritdoc ITrainingLedger
    function createJob(bytes32 purpose, uint256[] calldata datasets, bytes32 initialModelDigest, bytes32 specDigest)
        external
        returns (uint256 jobId)
    {
        if (purpose == bytes32(0)) revert TrainingLedgerInvalidPurpose(purpose);
        uint256 count = datasets.length;
        if (count == 0 || count > MAX_DATASETS) revert TrainingLedgerInvalidDatasetCount(count);
        if (initialModelDigest == bytes32(0)) revert TrainingLedgerZeroDigest();
        for (uint256 i; i < count; ++i) {
            uint256 datasetId = datasets[i];
            // Strictly ascending makes the list a set with one canonical encoding (and hash).
            if (i != 0 && datasetId <= datasets[i - 1]) revert TrainingLedgerDatasetsNotSorted(i, datasetId);
            // Only existence matters here; epoch and retirement are checked per round, at commit time.
            // slither-disable-next-line unused-return,calls-loop
            (address owner,,) = _registry.datasetState(datasetId);
            if (owner == address(0)) revert TrainingLedgerUnknownDataset(datasetId);
        }
        jobId = _createJob(purpose, datasets, initialModelDigest, specDigest);
    }

    /// @inheritdoc ITrainingLedger
    function commitRound(
        uint256 jobId,
        uint64 round,
        bytes32 parentDigest,
        bytes32 modelDigest,
        string calldata manifestCid,
        uint256[] calldata jobDatasets,
        uint256 participantMask,
        bytes32 attestationsRoot
    ) external {
        Job storage job = _jobs[jobId];
        address coordinator = _checkRound(job, jobId, round, parentDigest, modelDigest, jobDatasets, participantMask);
        uint256[] memory participants = _selectParticipants(jobDatasets, participantMask);
        // Reverts with the precise UsageGrants* error of the first unauthorised participant, or of
        // the first whose grant terms forbid this many participants or this round number.
        _requireGrants(participants, coordinator, job.purpose, round);
        _commitRound(job, jobId, round, parentDigest, modelDigest, manifestCid, participants, attestationsRoot);
    }

    /// @inheritdoc ITrainingLedger
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _jobs[jobId];
    }

    /// @inheritdoc ITrainingLedger
    function jobCount() external view returns (uint256) {
        return _jobCount;
    }

    /// @dev Guard clauses of `commitRound`, in the order a coordinator would fix them.
    /// @return coordinator The job's coordinator (the grantee every participant is checked for).
    function _checkRound(
        Job storage job,
        uint256 jobId,
        uint64 round,
        bytes32 parentDigest,
        bytes32 modelDigest,
        uint256[] calldata jobDatasets,
        uint256 participantMask
    ) private view returns (address coordinator) {
        coordinator = job.coordinator;
        if (coordinator == address(0)) revert TrainingLedgerUnknownJob(jobId);
        if (msg.sender != coordinator) revert TrainingLedgerNotCoordinator(jobId, msg.sender, coordinator);
        uint64 expected = job.lastRound + 1;
        if (round != expected) revert TrainingLedgerRoundOutOfOrder(jobId, expected, round);
        bytes32 lastDigest = job.lastDigest;
        if (parentDigest != lastDigest) revert TrainingLedgerParentMismatch(jobId, lastDigest, parentDigest);
        if (modelDigest == bytes32(0)) revert TrainingLedgerZeroDigest();
        bytes32 datasetsHash = _hashDatasets(jobDatasets);
        bytes32 jobDatasetsHash = job.datasetsHash;
        if (datasetsHash != jobDatasetsHash) {
            revert TrainingLedgerDatasetsMismatch(jobId, jobDatasetsHash, datasetsHash);
        }
        uint256 count = jobDatasets.length;
        // count <= 256 holds here because the hash matched a list createJob accepted.
        if (participantMask == 0 || (count < MAX_DATASETS && participantMask >> count != 0)) {
            revert TrainingLedgerInvalidParticipants(jobId, participantMask, count);
        }
    }

    /// @dev The grants check of a round, in its own frame (commitRound's arguments fill the stack).
    function _requireGrants(uint256[] memory participants, address coordinator, bytes32 purpose, uint64 round)
        private
        view
    {
        _grants.requireRoundAuthorized(participants, coordinator, purpose, round);
    }

    /// @dev keccak256(abi.encodePacked(datasets)), hashed in unallocated memory so the
    /// same memory is reused by the participant list (memory growth is paid per word).
    function _hashDatasets(uint256[] calldata datasets) private pure returns (bytes32 digest) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            let size := shl(5, datasets.length)
            calldatacopy(ptr, datasets.offset, size)
            digest := keccak256(ptr, size)
        }
    }

    /// @dev The dataset ids whose bit is set in `mask`, in job order.
    function _selectParticipants(uint256[] calldata jobDatasets, uint256 mask)
        private
        pure
        returns (uint256[] memory participants)
    {
        uint256 count = jobDatasets.length;
        participants = new uint256[](count);
        uint256 selected;
        for (uint256 i; i < count; ++i) {
            if ((mask >> i) & 1 == 1) {
                participants[selected] = jobDatasets[i];
                ++selected;
            }
        }
        // Shrink the array in place to the selected length (memory is not reused after).
        assembly ("memory-safe") {
            mstore(participants, selected)
        }
    }

    /// @dev The job-creation transition: write, then emit.
    function _createJob(bytes32 purpose, uint256[] calldata datasets, bytes32 initialModelDigest, bytes32 specDigest)
        private
        returns (uint256 jobId)
    {
        jobId = ++_jobCount;
        _jobs[jobId] = Job({
            coordinator: msg.sender,
            lastRound: 0,
            purpose: purpose,
            lastDigest: initialModelDigest,
            datasetsHash: _hashDatasets(datasets),
            specDigest: specDigest
        });
        emit JobCreated(jobId, msg.sender, purpose, datasets, initialModelDigest, specDigest);
    }

    /// @dev The round-commit transition: write, then emit.
    function _commitRound(
        Job storage job,
        uint256 jobId,
        uint64 round,
        bytes32 parentDigest,
        bytes32 modelDigest,
        string calldata manifestCid,
        uint256[] memory participants,
        bytes32 attestationsRoot
    ) private {
        job.lastRound = round;
        job.lastDigest = modelDigest;
        emit RoundCommitted(jobId, round, parentDigest, modelDigest, manifestCid, participants, attestationsRoot);
    }
}
