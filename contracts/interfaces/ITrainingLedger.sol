// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Federated training jobs and their hash-chained round commitments
/// @notice A job names its coordinator, purpose, the datasets it may use (strictly ascending
/// ids, at most 256) and its initial model digest. Each round commits the aggregated
/// model's digest, the round manifest's CID, the participating datasets and the Merkle root
/// of the nodes' signed attestations. The contract checks at commit time that every
/// participant is in the job and authorised for the coordinator and purpose, and that every
/// participant's grant terms allow the round: at least `minParticipants` participants and a
/// round number of at most `maxRounds` (`IUsageGrants.requireRoundAuthorized`; its
/// `UsageGrantsTooFewParticipants` / `UsageGrantsRoundLimitExceeded` revert `commitRound`).
interface ITrainingLedger {
    /// @notice A job as stored (five slots; a round rewrites only the first and `lastDigest`).
    /// @dev `specDigest` is the digest of the model spec every node checks before training.
    struct Job {
        address coordinator;
        uint64 lastRound;
        bytes32 purpose;
        bytes32 lastDigest;
        bytes32 datasetsHash;
        bytes32 specDigest;
    }

    /// @notice No job has this id.
    error TrainingLedgerUnknownJob(uint256 jobId);
    /// @notice Only the job's coordinator commits rounds.
    error TrainingLedgerNotCoordinator(uint256 jobId, address caller, address coordinator);
    /// @notice Rounds are consecutive: `expected` is the only round that can be committed next.
    error TrainingLedgerRoundOutOfOrder(uint256 jobId, uint64 expected, uint64 given);
    /// @notice The round does not build on the job's last committed model.
    error TrainingLedgerParentMismatch(uint256 jobId, bytes32 expected, bytes32 given);
    /// @notice The dataset list given does not hash to the job's dataset list.
    error TrainingLedgerDatasetsMismatch(uint256 jobId, bytes32 expected, bytes32 given);
    /// @notice The participant mask selects no dataset, or a bit past the job's dataset count.
    error TrainingLedgerInvalidParticipants(uint256 jobId, uint256 participantMask, uint256 datasetCount);
    /// @notice A job needs between 1 and 256 datasets.
    error TrainingLedgerInvalidDatasetCount(uint256 count);
    /// @notice Job datasets must be strictly ascending (no duplicates); `index` breaks the order.
    error TrainingLedgerDatasetsNotSorted(uint256 index, uint256 datasetId);
    /// @notice A job's dataset is not registered.
    error TrainingLedgerUnknownDataset(uint256 datasetId);
    /// @notice The purpose is zero.
    error TrainingLedgerInvalidPurpose(bytes32 purpose);
    /// @notice A model digest of zero is not a digest.
    error TrainingLedgerZeroDigest();

    /// @notice A job was created.
    event JobCreated(
        uint256 indexed jobId,
        address indexed coordinator,
        bytes32 indexed purpose,
        uint256[] datasets,
        bytes32 initialModelDigest,
        bytes32 specDigest
    );
    /// @notice A round was committed; `participants` are dataset ids.
    event RoundCommitted(
        uint256 indexed jobId,
        uint64 indexed round,
        bytes32 parentDigest,
        bytes32 modelDigest,
        string manifestCid,
        uint256[] participants,
        bytes32 attestationsRoot
    );

    /// @notice Creates a job coordinated by the caller.
    /// @param datasets Strictly ascending dataset ids the job may use (1 to 256).
    /// @param specDigest Digest of the model spec (architecture, optimiser, epochs, batch size, learning rate).
    function createJob(bytes32 purpose, uint256[] calldata datasets, bytes32 initialModelDigest, bytes32 specDigest)
        external
        returns (uint256 jobId);

    /// @notice Commits round `round` of `jobId`.
    /// @param jobDatasets The job's full dataset list, as given to `createJob`.
    /// @param participantMask Bit i set = `jobDatasets[i]` took part in this round.
    function commitRound(
        uint256 jobId,
        uint64 round,
        bytes32 parentDigest,
        bytes32 modelDigest,
        string calldata manifestCid,
        uint256[] calldata jobDatasets,
        uint256 participantMask,
        bytes32 attestationsRoot
    ) external;

    /// @notice The stored job.
    function getJob(uint256 jobId) external view returns (Job memory);

    /// @notice How many jobs exist; ids run from 1 to `jobCount()`.
    function jobCount() external view returns (uint256);
}
