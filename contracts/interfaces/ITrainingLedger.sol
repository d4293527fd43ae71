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
///
/// Large federations (more than 256 datasets) use an open job (`createOpenJob`: no dataset
/// list; any dataset whose owner grants the coordinator the job's purpose may take part) and
/// large rounds, committed across several transactions: `beginLargeRound`, then
/// `addRoundParticipants` batches (dataset ids strictly ascending across the whole round, each
/// batch's grants and terms checked in that transaction and folded into a running hash), then
/// `finalizeLargeRound`, which checks the participant count against every participant's
/// `minParticipants` and emits `RoundCommitted` (with an empty participant list) beside
/// `LargeRoundCommitted`. The participants are in the `RoundParticipantsAdded` logs.
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

    /// @notice The large round a job has open: at most one, always round `lastRound + 1`.
    /// @dev Three slots while open, zeroed at finalize or abort. `participantsHash` is the hash
    /// chain h_0 = 0, h_i = keccak256(abi.encode(h_{i-1}, datasetId_i)) over the participants so
    /// far in ascending order; `minParticipants` is the largest `minParticipants` term among them
    /// and `strictestDatasetId` the first participant that set it.
    struct LargeRound {
        uint64 round;
        uint64 participantCount;
        uint8 minParticipants;
        bytes32 participantsHash;
        uint256 lastDatasetId;
        uint256 strictestDatasetId;
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
    /// @notice Large rounds are for open jobs (`createOpenJob`); a job with a dataset list uses `commitRound`.
    error TrainingLedgerNotOpenJob(uint256 jobId);
    /// @notice The job already has large round `round` open: finalize or abort it first.
    error TrainingLedgerLargeRoundOpen(uint256 jobId, uint64 round);
    /// @notice No large round `given` is open for the job (`open` is the one that is, 0 for none).
    error TrainingLedgerNoLargeRound(uint256 jobId, uint64 open, uint64 given);
    /// @notice A batch of participants is empty.
    error TrainingLedgerEmptyBatch(uint256 jobId, uint64 round);
    /// @notice Participants must be strictly ascending across the whole round (no dataset twice):
    /// `datasetId` does not come after `previous`.
    error TrainingLedgerParticipantsNotAscending(uint256 jobId, uint64 round, uint256 previous, uint256 datasetId);
    /// @notice The large round has no participant.
    error TrainingLedgerNoParticipants(uint256 jobId, uint64 round);
    /// @notice The participant set the coordinator finalizes is not the one its batches added.
    error TrainingLedgerParticipantsMismatch(
        uint256 jobId, uint64 round, uint64 addedCount, bytes32 addedHash, uint64 givenCount, bytes32 givenHash
    );

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

    /// @notice Large round `round` was opened on the job's last model `parentDigest`.
    event LargeRoundBegun(uint256 indexed jobId, uint64 indexed round, bytes32 parentDigest);
    /// @notice A batch of participants was checked and added to the open large round; the last
    /// two fields are the round's running count and participants hash after this batch.
    event RoundParticipantsAdded(
        uint256 indexed jobId,
        uint64 indexed round,
        uint256[] participants,
        uint64 participantCount,
        bytes32 participantsHash
    );
    /// @notice The coordinator dropped the open large round and every batch added to it.
    event LargeRoundAborted(uint256 indexed jobId, uint64 indexed round, uint64 participantCount);
    /// @notice A large round was committed (next to its `RoundCommitted`, whose participant list
    /// is empty): the participants are the round's `RoundParticipantsAdded` batches since its
    /// `LargeRoundBegun`, `participantCount` of them, whose hash chain is `participantsHash`.
    event LargeRoundCommitted(
        uint256 indexed jobId, uint64 indexed round, uint64 participantCount, bytes32 participantsHash
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

    /// @notice Creates an open job coordinated by the caller: no dataset list (its `datasetsHash`
    /// is zero and `JobCreated` lists no dataset); any dataset whose grant authorises the
    /// coordinator for `purpose` may take part. Its rounds are large rounds.
    function createOpenJob(bytes32 purpose, bytes32 initialModelDigest, bytes32 specDigest)
        external
        returns (uint256 jobId);

    /// @notice Opens large round `round` (the job's next) of open job `jobId` on the last model.
    function beginLargeRound(uint256 jobId, uint64 round, bytes32 parentDigest) external;

    /// @notice Adds participants to the open large round. `datasetIds` are strictly ascending
    /// and above every id added before in this round; each must be authorised for the
    /// coordinator and purpose now, with terms allowing round `round` (`UsageGrants*` reverts).
    function addRoundParticipants(uint256 jobId, uint64 round, uint256[] calldata datasetIds) external;

    /// @notice Commits the open large round. `participantCount` and `participantsHash` must be
    /// those the batches built; every participant's `minParticipants` must be met.
    function finalizeLargeRound(
        uint256 jobId,
        uint64 round,
        bytes32 modelDigest,
        string calldata manifestCid,
        uint64 participantCount,
        bytes32 participantsHash,
        bytes32 attestationsRoot
    ) external;

    /// @notice Drops the open large round (e.g. a participant's grant ended before finalize).
    function abortLargeRound(uint256 jobId, uint64 round) external;

    /// @notice The job's open large round (all zero when none).
    function getLargeRound(uint256 jobId) external view returns (LargeRound memory);

    /// @notice The stored job.
    function getJob(uint256 jobId) external view returns (Job memory);

    /// @notice How many jobs exist; ids run from 1 to `jobCount()`.
    function jobCount() external view returns (uint256);
}
