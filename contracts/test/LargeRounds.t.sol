// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ITrainingLedger} from "../interfaces/ITrainingLedger.sol";
import {IUsageGrants} from "../interfaces/IUsageGrants.sol";
import {Fixture} from "./utils/Fixture.sol";

/// @title Open jobs and large rounds: participants added in batches, then finalized
contract LargeRoundsTest is Fixture {
    bytes32 internal constant GENESIS = keccak256("genesis model");
    bytes32 internal constant SPEC = keccak256("spec");
    bytes32 internal constant ATT = keccak256("att");
    string internal constant CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

    uint256[] internal ids;
    uint256 internal jobId;

    function setUp() public override {
        super.setUp();
        ids = grantedDatasets(owner, 6, 7);
        vm.prank(coordinator);
        jobId = ledger.createOpenJob(trainingPurpose, GENESIS, SPEC);
    }

    function digest(uint256 round) internal pure returns (bytes32) {
        return keccak256(abi.encode("model", round));
    }

    /// @dev The participants hash chain, spelled out independently of the contract.
    function chainOf(uint256[] memory list) internal pure returns (bytes32 h) {
        for (uint256 i; i < list.length; ++i) h = keccak256(abi.encode(h, list[i]));
    }

    function slice(uint256 from, uint256 to) internal view returns (uint256[] memory part) {
        part = new uint256[](to - from);
        for (uint256 i = from; i < to; ++i) part[i - from] = ids[i];
    }

    function begin(uint64 round, bytes32 parent) internal {
        vm.prank(coordinator);
        ledger.beginLargeRound(jobId, round, parent);
    }

    function add(uint64 round, uint256[] memory batch) internal {
        vm.prank(coordinator);
        ledger.addRoundParticipants(jobId, round, batch);
    }

    function finalize(uint64 round, uint64 count, bytes32 hash) internal {
        vm.prank(coordinator);
        ledger.finalizeLargeRound(jobId, round, digest(round), CID, count, hash, ATT);
    }

    function assertUnchanged() internal view {
        ITrainingLedger.Job memory job = ledger.getJob(jobId);
        assertEq(uint256(job.lastRound), 0, "round unchanged");
        assertEq(job.lastDigest, GENESIS, "digest unchanged");
    }

    // ------------------------------------------------------------ createOpenJob

    function test_createOpenJob_storesZeroDatasetsHashAndEmitsEmptyList() public {
        vm.expectEmit(true, true, true, true, address(ledger));
        emit ITrainingLedger.JobCreated(2, coordinator, trainingPurpose, new uint256[](0), GENESIS, SPEC);
        vm.prank(coordinator);
        uint256 created = ledger.createOpenJob(trainingPurpose, GENESIS, SPEC);
        ITrainingLedger.Job memory job = ledger.getJob(created);
        assertEq(created, 2, "sequential id");
        assertEq(job.coordinator, coordinator, "coordinator");
        assertEq(job.datasetsHash, bytes32(0), "no dataset list");
        assertEq(job.lastDigest, GENESIS, "initial digest");
        assertEq(job.specDigest, SPEC, "spec");
    }

    function test_createOpenJob_revertsForZeroPurposeOrDigest() public {
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerInvalidPurpose.selector, bytes32(0)));
        ledger.createOpenJob(bytes32(0), GENESIS, SPEC);
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerZeroDigest.selector));
        ledger.createOpenJob(trainingPurpose, bytes32(0), SPEC);
        assertEq(ledger.jobCount(), 1, "no job");
    }

    function testFuzz_createOpenJob(address creator, bytes32 spec, bytes32 initial) public {
        vm.assume(creator != address(0) && initial != bytes32(0));
        vm.prank(creator);
        uint256 created = ledger.createOpenJob(trainingPurpose, initial, spec);
        ITrainingLedger.Job memory job = ledger.getJob(created);
        assertEq(job.coordinator, creator, "creator coordinates");
        assertEq(job.datasetsHash, bytes32(0), "open");
        assertEq(job.lastDigest, initial, "initial digest");
        assertEq(job.specDigest, spec, "spec");
    }

    // ------------------------------------------------------------ happy path

    function test_largeRound_batchesThenFinalize_chainsAndEmits() public {
        vm.expectEmit(true, true, true, true, address(ledger));
        emit ITrainingLedger.LargeRoundBegun(jobId, 1, GENESIS);
        begin(1, GENESIS);
        uint256[] memory first = slice(0, 4);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit ITrainingLedger.RoundParticipantsAdded(jobId, 1, first, 4, chainOf(first));
        add(1, first);
        uint256[] memory all = slice(0, 6);
        bytes32 hash = chainOf(all);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit ITrainingLedger.RoundParticipantsAdded(jobId, 1, slice(4, 6), 6, hash);
        add(1, slice(4, 6));
        ITrainingLedger.LargeRound memory open = ledger.getLargeRound(jobId);
        assertEq(uint256(open.round), 1, "open round");
        assertEq(uint256(open.participantCount), 6, "count");
        assertEq(open.participantsHash, hash, "hash");
        assertEq(open.lastDatasetId, ids[5], "last id");

        vm.expectEmit(true, true, true, true, address(ledger));
        emit ITrainingLedger.RoundCommitted(jobId, 1, GENESIS, digest(1), CID, new uint256[](0), ATT);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit ITrainingLedger.LargeRoundCommitted(jobId, 1, 6, hash);
        finalize(1, 6, hash);
        ITrainingLedger.Job memory job = ledger.getJob(jobId);
        assertEq(uint256(job.lastRound), 1, "round 1");
        assertEq(job.lastDigest, digest(1), "digest 1");
        open = ledger.getLargeRound(jobId);
        assertEq(uint256(open.round), 0, "closed");
        assertEq(open.participantsHash, bytes32(0), "cleared");

        // The next round starts from scratch: the same datasets again.
        begin(2, digest(1));
        add(2, slice(0, 2));
        finalize(2, 2, chainOf(slice(0, 2)));
        assertEq(ledger.getJob(jobId).lastDigest, digest(2), "digest 2");
    }

    /// @dev However the participants are split into batches, the round commits the same hash.
    function testFuzz_largeRound_batchSplitDoesNotChangeTheHash(uint8 cut1, uint8 cut2) public {
        uint256 a = bound(cut1, 1, 5);
        uint256 b = bound(cut2, a, 5);
        begin(1, GENESIS);
        add(1, slice(0, a));
        if (b > a) add(1, slice(a, b));
        add(1, slice(b, 6));
        assertEq(ledger.getLargeRound(jobId).participantsHash, chainOf(ids), "split-independent");
        finalize(1, 6, chainOf(ids));
        assertEq(uint256(ledger.getJob(jobId).lastRound), 1, "committed");
    }

    function test_abortLargeRound_dropsTheBatches() public {
        begin(1, GENESIS);
        add(1, slice(0, 3));
        vm.expectEmit(true, true, true, true, address(ledger));
        emit ITrainingLedger.LargeRoundAborted(jobId, 1, 3);
        vm.prank(coordinator);
        ledger.abortLargeRound(jobId, 1);
        assertEq(uint256(ledger.getLargeRound(jobId).round), 0, "closed");
        assertUnchanged();
        // The round can start again, with ids the aborted attempt had added.
        begin(1, GENESIS);
        add(1, slice(1, 2));
        finalize(1, 1, chainOf(slice(1, 2)));
        assertEq(uint256(ledger.getJob(jobId).lastRound), 1, "committed after abort");
    }

    // ------------------------------------------------------------ reverts: who and which job

    function test_beginLargeRound_revertsForListedJob() public {
        vm.prank(coordinator);
        uint256 listed = ledger.createJob(trainingPurpose, slice(0, 2), GENESIS, SPEC);
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerNotOpenJob.selector, listed));
        vm.prank(coordinator);
        ledger.beginLargeRound(listed, 1, GENESIS);
    }

    function test_commitRound_revertsForOpenJob() public {
        uint256[] memory list = slice(0, 2);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITrainingLedger.TrainingLedgerDatasetsMismatch.selector,
                jobId,
                bytes32(0),
                keccak256(abi.encodePacked(list))
            )
        );
        vm.prank(coordinator);
        ledger.commitRound(jobId, 1, GENESIS, digest(1), CID, list, 3, ATT);
        assertUnchanged();
    }

    function test_largeRound_revertsForUnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerUnknownJob.selector, 77));
        vm.prank(coordinator);
        ledger.beginLargeRound(77, 1, GENESIS);
    }

    function test_largeRound_revertsForNonCoordinator() public {
        bytes memory notCoordinator =
            abi.encodeWithSelector(ITrainingLedger.TrainingLedgerNotCoordinator.selector, jobId, other, coordinator);
        vm.expectRevert(notCoordinator);
        vm.prank(other);
        ledger.beginLargeRound(jobId, 1, GENESIS);
        begin(1, GENESIS);
        uint256[] memory batch = slice(0, 1);
        vm.expectRevert(notCoordinator);
        vm.prank(other);
        ledger.addRoundParticipants(jobId, 1, batch);
        add(1, batch);
        vm.expectRevert(notCoordinator);
        vm.prank(other);
        ledger.finalizeLargeRound(jobId, 1, digest(1), CID, 1, chainOf(batch), ATT);
        vm.expectRevert(notCoordinator);
        vm.prank(other);
        ledger.abortLargeRound(jobId, 1);
        assertUnchanged();
    }

    // ------------------------------------------------------------ reverts: round order

    function test_beginLargeRound_revertsWhileAnotherIsOpen() public {
        begin(1, GENESIS);
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerLargeRoundOpen.selector, jobId, 1));
        begin(1, GENESIS);
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerLargeRoundOpen.selector, jobId, 1));
        begin(2, digest(1));
    }

    function test_beginLargeRound_revertsOutOfOrderOrOnParentMismatch() public {
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerRoundOutOfOrder.selector, jobId, 1, 2));
        begin(2, GENESIS);
        bytes32 wrong = keccak256("fork");
        vm.expectRevert(
            abi.encodeWithSelector(ITrainingLedger.TrainingLedgerParentMismatch.selector, jobId, GENESIS, wrong)
        );
        begin(1, wrong);
        assertEq(uint256(ledger.getLargeRound(jobId).round), 0, "nothing opened");
    }

    function test_largeRound_revertsWithoutAnOpenRound() public {
        uint256[] memory batch = slice(0, 1);
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerNoLargeRound.selector, jobId, 0, 1));
        add(1, batch);
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerNoLargeRound.selector, jobId, 0, 1));
        finalize(1, 1, chainOf(batch));
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerNoLargeRound.selector, jobId, 0, 1));
        vm.prank(coordinator);
        ledger.abortLargeRound(jobId, 1);
        begin(1, GENESIS);
        // Another round number than the open one: no batch of round 2 joins round 1.
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerNoLargeRound.selector, jobId, 1, 2));
        add(2, batch);
        assertEq(uint256(ledger.getLargeRound(jobId).participantCount), 0, "nothing added");
    }

    // ------------------------------------------------------------ reverts: the participant set

    function test_addRoundParticipants_revertsForEmptyBatch() public {
        begin(1, GENESIS);
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerEmptyBatch.selector, jobId, 1));
        add(1, new uint256[](0));
    }

    function test_addRoundParticipants_revertsUnlessAscending() public {
        begin(1, GENESIS);
        uint256[] memory swapped = new uint256[](3);
        swapped[0] = ids[0];
        swapped[1] = ids[2];
        swapped[2] = ids[1];
        vm.expectRevert(
            abi.encodeWithSelector(
                ITrainingLedger.TrainingLedgerParticipantsNotAscending.selector, jobId, 1, ids[2], ids[1]
            )
        );
        add(1, swapped);
        uint256[] memory twice = new uint256[](2);
        twice[0] = ids[0];
        twice[1] = ids[0];
        vm.expectRevert(
            abi.encodeWithSelector(
                ITrainingLedger.TrainingLedgerParticipantsNotAscending.selector, jobId, 1, ids[0], ids[0]
            )
        );
        add(1, twice);
        assertEq(uint256(ledger.getLargeRound(jobId).participantCount), 0, "nothing added");
    }

    /// @dev Any batch whose ids are not strictly above the last one added is refused, whole.
    function testFuzz_addRoundParticipants_refusesAnyIdNotAboveThePrevious(uint8 cut, uint8 pick) public {
        uint256 split = bound(cut, 1, 5);
        uint256 repeat = bound(pick, 0, split - 1);
        begin(1, GENESIS);
        add(1, slice(0, split));
        uint256[] memory batch = new uint256[](1);
        batch[0] = ids[repeat];
        vm.expectRevert(
            abi.encodeWithSelector(
                ITrainingLedger.TrainingLedgerParticipantsNotAscending.selector, jobId, 1, ids[split - 1], ids[repeat]
            )
        );
        add(1, batch);
        assertEq(uint256(ledger.getLargeRound(jobId).participantCount), split, "unchanged");
    }

    function testFuzz_abortLargeRound_clearsWhatWasAdded(uint8 count) public {
        uint256 n = bound(count, 1, 6);
        begin(1, GENESIS);
        add(1, slice(0, n));
        vm.prank(coordinator);
        ledger.abortLargeRound(jobId, 1);
        ITrainingLedger.LargeRound memory open = ledger.getLargeRound(jobId);
        assertEq(uint256(open.participantCount), 0, "count cleared");
        assertEq(open.participantsHash, bytes32(0), "hash cleared");
        assertEq(open.lastDatasetId, 0, "last id cleared");
        assertUnchanged();
    }

    function test_addRoundParticipants_revertsOnADatasetTwiceAcrossBatches() public {
        begin(1, GENESIS);
        add(1, slice(0, 3));
        // The same id again in a later batch: the first id of a batch must follow the last one added.
        vm.expectRevert(
            abi.encodeWithSelector(
                ITrainingLedger.TrainingLedgerParticipantsNotAscending.selector, jobId, 1, ids[2], ids[2]
            )
        );
        add(1, slice(2, 4));
        vm.expectRevert(
            abi.encodeWithSelector(
                ITrainingLedger.TrainingLedgerParticipantsNotAscending.selector, jobId, 1, ids[2], ids[0]
            )
        );
        add(1, slice(0, 1));
        assertEq(uint256(ledger.getLargeRound(jobId).participantCount), 3, "first batch only");
        add(1, slice(3, 4));
        assertEq(uint256(ledger.getLargeRound(jobId).participantCount), 4, "an ascending batch still joins");
    }

    function test_addRoundParticipants_revertsForDatasetWithoutGrant() public {
        uint256 ungranted = registerAs(owner, keccak256("no grant"));
        uint256[] memory batch = new uint256[](1);
        batch[0] = ungranted;
        begin(1, GENESIS);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsNoGrant.selector, ungranted, coordinator, trainingPurpose)
        );
        add(1, batch);
        batch[0] = uint256(keccak256("never registered"));
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsUnknownDataset.selector, batch[0]));
        add(1, batch);
        assertEq(uint256(ledger.getLargeRound(jobId).participantCount), 0, "nothing added");
    }

    function test_addRoundParticipants_revertsForRevokedGrant() public {
        vm.prank(owner);
        grants.revokeGrant(ids[1], coordinator, trainingPurpose);
        begin(1, GENESIS);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsRevoked.selector, ids[1], coordinator, trainingPurpose)
        );
        add(1, slice(0, 3));
        assertEq(uint256(ledger.getLargeRound(jobId).participantCount), 0, "the whole batch is refused");
    }

    function test_addRoundParticipants_revertsPastMaxRounds() public {
        grantWithTermsAs(owner, ids[0], coordinator, 0, type(uint64).max, termsOf(0, 0, 0, 1));
        begin(1, GENESIS);
        add(1, slice(0, 1));
        finalize(1, 1, chainOf(slice(0, 1)));
        begin(2, digest(1));
        vm.expectRevert(
            abi.encodeWithSelector(
                IUsageGrants.UsageGrantsRoundLimitExceeded.selector, ids[0], coordinator, trainingPurpose, 1, 2
            )
        );
        add(2, slice(0, 1));
    }

    function test_finalizeLargeRound_revertsForTooFewParticipants() public {
        // ids[1] asks for 4 participants, ids[2] for 3: the strictest one is reported.
        grantWithTermsAs(owner, ids[1], coordinator, 0, type(uint64).max, termsOf(0, 0, 4, 0));
        grantWithTermsAs(owner, ids[2], coordinator, 0, type(uint64).max, termsOf(0, 0, 3, 0));
        begin(1, GENESIS);
        add(1, slice(0, 2));
        add(1, slice(2, 3));
        vm.expectRevert(
            abi.encodeWithSelector(
                IUsageGrants.UsageGrantsTooFewParticipants.selector, ids[1], coordinator, trainingPurpose, 4, 3
            )
        );
        finalize(1, 3, chainOf(slice(0, 3)));
        assertUnchanged();
        // Exactly the minimum passes.
        add(1, slice(3, 4));
        finalize(1, 4, chainOf(slice(0, 4)));
        assertEq(uint256(ledger.getJob(jobId).lastRound), 1, "committed at the minimum");
    }

    function test_finalizeLargeRound_revertsForNoParticipants() public {
        begin(1, GENESIS);
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerNoParticipants.selector, jobId, 1));
        finalize(1, 0, bytes32(0));
        assertUnchanged();
    }

    function test_finalizeLargeRound_revertsForAnotherParticipantSet() public {
        begin(1, GENESIS);
        add(1, slice(0, 3));
        bytes32 added = chainOf(slice(0, 3));
        bytes32 claimed = chainOf(slice(0, 2));
        vm.expectRevert(
            abi.encodeWithSelector(
                ITrainingLedger.TrainingLedgerParticipantsMismatch.selector, jobId, 1, 3, added, 2, claimed
            )
        );
        finalize(1, 2, claimed);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITrainingLedger.TrainingLedgerParticipantsMismatch.selector, jobId, 1, 3, added, 3, claimed
            )
        );
        finalize(1, 3, claimed);
        assertUnchanged();
    }

    function test_finalizeLargeRound_revertsOnZeroModelDigest() public {
        begin(1, GENESIS);
        add(1, slice(0, 1));
        bytes32 hash = chainOf(slice(0, 1));
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerZeroDigest.selector));
        vm.prank(coordinator);
        ledger.finalizeLargeRound(jobId, 1, bytes32(0), CID, 1, hash, ATT);
        assertUnchanged();
    }

    // ------------------------------------------------------------ the batch view of UsageGrants

    function test_requireBatchAuthorized_returnsTheStrictestMinimum() public {
        grantWithTermsAs(owner, ids[2], coordinator, 0, type(uint64).max, termsOf(0, 0, 5, 0));
        grantWithTermsAs(owner, ids[4], coordinator, 0, type(uint64).max, termsOf(0, 0, 5, 0));
        (uint8 minimum, uint256 strictest) = grants.requireBatchAuthorized(ids, coordinator, trainingPurpose, 1);
        assertEq(uint256(minimum), 5, "largest minimum");
        assertEq(strictest, ids[2], "the first dataset with it");
        (minimum, strictest) = grants.requireBatchAuthorized(slice(0, 2), coordinator, trainingPurpose, 1);
        assertEq(uint256(minimum), 0, "no terms");
        assertEq(strictest, 0, "no dataset");
    }

    function test_addRoundParticipants_revertsForExpiredGrant() public {
        grantAs(owner, ids[0], coordinator, 0, START + 10);
        begin(1, GENESIS);
        vm.warp(START + 11);
        vm.expectRevert(
            abi.encodeWithSelector(
                IUsageGrants.UsageGrantsExpired.selector, ids[0], coordinator, trainingPurpose, START + 10
            )
        );
        add(1, slice(0, 1));
    }
}
