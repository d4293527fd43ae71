// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IDatasetRegistry} from "./interfaces/IDatasetRegistry.sol";
import {ITrainingLedger} from "./interfaces/ITrainingLedger.sol";
import {IUsageGrants} from "./interfaces/IUsageGrants.sol";

/// @title Federated training jobs and their hash-chained round commitments
/// @notice Per round only two storage words change (last round, last digest); everything an
/// auditor needs (manifest CID, participants, attestations root) is in the event. Large rounds
/// (open jobs, more than 256 participants) keep three more words while they are open, written
/// once per batch of participants and cleared at finalize; their participants are in the
/// batches' `RoundParticipantsAdded` events.
/// @dev Inherits EIP712 only to publish, through EIP-5267 `eip712Domain()`, the domain
/// (`TrainingLedger`, `2`) under which nodes sign their update attestations off-chain.
contract TrainingLedger is EIP712, ITrainingLedger {
    /// @notice The largest dataset list a job may hold (one bit each in the participant mask).
    uint256 public constant MAX_DATASETS = 256;

    IDatasetRegistry private immutable _registry;
    IUsageGrants private immutable _grants;

    mapping(uint256 jobId => Job) private _jobs;
    uint256 private _jobCount;
    mapping(uint256 jobId => LargeRound) private _largeRounds;

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
    function createOpenJob(bytes32 purpose, bytes32 initialModelDigest, bytes32 specDigest)
        external
        returns (uint256 jobId)
    {
        if (purpose == bytes32(0)) revert TrainingLedgerInvalidPurpose(purpose);
        if (initialModelDigest == bytes32(0)) revert TrainingLedgerZeroDigest();
        jobId = _createOpenJob(purpose, initialModelDigest, specDigest);
    }

    /// @inheritdoc ITrainingLedger
    function beginLargeRound(uint256 jobId, uint64 round, bytes32 parentDigest) external {
        Job storage job = _jobs[jobId];
        _checkOpenJobCaller(job, jobId);
        LargeRound storage open = _largeRounds[jobId];
        // One open round per job: a second one cannot be interleaved with it.
        if (open.round != 0) revert TrainingLedgerLargeRoundOpen(jobId, open.round);
        uint64 expected = job.lastRound + 1;
        if (round != expected) revert TrainingLedgerRoundOutOfOrder(jobId, expected, round);
        bytes32 lastDigest = job.lastDigest;
        if (parentDigest != lastDigest) revert TrainingLedgerParentMismatch(jobId, lastDigest, parentDigest);
        _beginLargeRound(open, jobId, round, parentDigest);
    }

    /// @inheritdoc ITrainingLedger
    function addRoundParticipants(uint256 jobId, uint64 round, uint256[] calldata datasetIds) external {
        Job storage job = _jobs[jobId];
        address coordinator = _checkOpenJobCaller(job, jobId);
        LargeRound storage open = _requireOpenRound(jobId, round);
        if (datasetIds.length == 0) revert TrainingLedgerEmptyBatch(jobId, round);
        bytes32 participantsHash = _foldInOrder(open, jobId, round, datasetIds);
        // Reverts with the precise UsageGrants* error of the first unauthorised participant or of
        // the first whose terms forbid this round number; the minimum waits for finalize.
        // slither-disable-next-line calls-loop
        (uint8 minParticipants, uint256 strictest) =
            _grants.requireBatchAuthorized(datasetIds, coordinator, job.purpose, round);
        _addParticipants(open, jobId, round, datasetIds, participantsHash, minParticipants, strictest);
    }

    /// @inheritdoc ITrainingLedger
    function finalizeLargeRound(
        uint256 jobId,
        uint64 round,
        bytes32 modelDigest,
        string calldata manifestCid,
        uint64 participantCount,
        bytes32 participantsHash,
        bytes32 attestationsRoot
    ) external {
        Job storage job = _jobs[jobId];
        address coordinator = _checkOpenJobCaller(job, jobId);
        LargeRound storage open = _requireOpenRound(jobId, round);
        if (modelDigest == bytes32(0)) revert TrainingLedgerZeroDigest();
        uint64 added = open.participantCount;
        if (added == 0) revert TrainingLedgerNoParticipants(jobId, round);
        bytes32 addedHash = open.participantsHash;
        if (participantCount != added || participantsHash != addedHash) {
            revert TrainingLedgerParticipantsMismatch(jobId, round, added, addedHash, participantCount, participantsHash);
        }
        uint8 minParticipants = open.minParticipants;
        if (minParticipants > added) {
            revert IUsageGrants.UsageGrantsTooFewParticipants(
                open.strictestDatasetId, coordinator, job.purpose, minParticipants, added
            );
        }
        _finalizeLargeRound(job, jobId, round, modelDigest, manifestCid, added, addedHash, attestationsRoot);
    }

    /// @inheritdoc ITrainingLedger
    function abortLargeRound(uint256 jobId, uint64 round) external {
        Job storage job = _jobs[jobId];
        _checkOpenJobCaller(job, jobId);
        _abortLargeRound(_requireOpenRound(jobId, round), jobId, round);
    }

    /// @inheritdoc ITrainingLedger
    function getLargeRound(uint256 jobId) external view returns (LargeRound memory) {
        return _largeRounds[jobId];
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

    /// @dev Guard clauses shared by the large-round functions: the job exists, the caller
    /// coordinates it, and it is an open job (a listed job has a non-zero datasets hash).
    function _checkOpenJobCaller(Job storage job, uint256 jobId) private view returns (address coordinator) {
        coordinator = job.coordinator;
        if (coordinator == address(0)) revert TrainingLedgerUnknownJob(jobId);
        if (msg.sender != coordinator) revert TrainingLedgerNotCoordinator(jobId, msg.sender, coordinator);
        if (job.datasetsHash != bytes32(0)) revert TrainingLedgerNotOpenJob(jobId);
    }

    /// @dev The job's open large round, which must be round `round`.
    function _requireOpenRound(uint256 jobId, uint64 round) private view returns (LargeRound storage open) {
        open = _largeRounds[jobId];
        uint64 current = open.round;
        if (current == 0 || round != current) revert TrainingLedgerNoLargeRound(jobId, current, round);
    }

    /// @dev The round's hash chain extended by `datasetIds`, which must continue its ascending order.
    function _foldInOrder(LargeRound storage open, uint256 jobId, uint64 round, uint256[] calldata datasetIds)
        private
        view
        returns (bytes32 participantsHash)
    {
        uint256 previous = open.lastDatasetId;
        uint256 unordered;
        (participantsHash, unordered) = _foldParticipants(open.participantsHash, previous, datasetIds);
        if (unordered != 0) {
            uint256 at = unordered - 1;
            revert TrainingLedgerParticipantsNotAscending(
                jobId, round, at == 0 ? previous : datasetIds[at - 1], datasetIds[at]
            );
        }
    }

    /// @dev Folds `datasetIds` into the hash chain `participantsHash` (see `LargeRound`), checking
    /// they are strictly ascending after `previous`. Returns the new hash and 0, or the 1-based
    /// position of the first id out of order. Hashed in scratch space: no memory growth per id.
    function _foldParticipants(bytes32 participantsHash, uint256 previous, uint256[] calldata datasetIds)
        private
        pure
        returns (bytes32 folded, uint256 unordered)
    {
        assembly ("memory-safe") {
            let ptr := datasetIds.offset
            let end := add(ptr, shl(5, datasetIds.length))
            folded := participantsHash
            for {} lt(ptr, end) { ptr := add(ptr, 0x20) } {
                let id := calldataload(ptr)
                if iszero(gt(id, previous)) {
                    unordered := add(shr(5, sub(ptr, datasetIds.offset)), 1)
                    break
                }
                mstore(0x00, folded)
                mstore(0x20, id)
                folded := keccak256(0x00, 0x40)
                previous := id
            }
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

    /// @dev The open-job creation transition: write, then emit (an empty dataset list).
    function _createOpenJob(bytes32 purpose, bytes32 initialModelDigest, bytes32 specDigest)
        private
        returns (uint256 jobId)
    {
        jobId = ++_jobCount;
        _jobs[jobId] = Job({
            coordinator: msg.sender,
            lastRound: 0,
            purpose: purpose,
            lastDigest: initialModelDigest,
            datasetsHash: bytes32(0),
            specDigest: specDigest
        });
        emit JobCreated(jobId, msg.sender, purpose, new uint256[](0), initialModelDigest, specDigest);
    }

    /// @dev The large-round opening transition: write, then emit.
    function _beginLargeRound(LargeRound storage open, uint256 jobId, uint64 round, bytes32 parentDigest) private {
        open.round = round;
        emit LargeRoundBegun(jobId, round, parentDigest);
    }

    /// @dev The batch transition: write the running count, hash, last id and strictest minimum, then emit.
    function _addParticipants(
        LargeRound storage open,
        uint256 jobId,
        uint64 round,
        uint256[] calldata datasetIds,
        bytes32 participantsHash,
        uint8 minParticipants,
        uint256 strictest
    ) private {
        uint64 count = open.participantCount + uint64(datasetIds.length);
        open.participantCount = count;
        if (minParticipants > open.minParticipants) {
            open.minParticipants = minParticipants;
            open.strictestDatasetId = strictest;
        }
        open.participantsHash = participantsHash;
        open.lastDatasetId = datasetIds[datasetIds.length - 1];
        emit RoundParticipantsAdded(jobId, round, datasetIds, count, participantsHash);
    }

    /// @dev The abort transition: clear the open round, then emit.
    function _abortLargeRound(LargeRound storage open, uint256 jobId, uint64 round) private {
        uint64 added = open.participantCount;
        delete _largeRounds[jobId];
        emit LargeRoundAborted(jobId, round, added);
    }

    /// @dev The large-round commit transition: advance the job, clear the open round, then emit.
    function _finalizeLargeRound(
        Job storage job,
        uint256 jobId,
        uint64 round,
        bytes32 modelDigest,
        string calldata manifestCid,
        uint64 participantCount,
        bytes32 participantsHash,
        bytes32 attestationsRoot
    ) private {
        bytes32 parentDigest = job.lastDigest;
        job.lastRound = round;
        job.lastDigest = modelDigest;
        delete _largeRounds[jobId];
        emit RoundCommitted(jobId, round, parentDigest, modelDigest, manifestCid, new uint256[](0), attestationsRoot);
        emit LargeRoundCommitted(jobId, round, participantCount, participantsHash);
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
