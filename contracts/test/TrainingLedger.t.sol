// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ITrainingLedger} from "../interfaces/ITrainingLedger.sol";
import {IUsageGrants} from "../interfaces/IUsageGrants.sol";
import {Fixture} from "./utils/Fixture.sol";

contract TrainingLedgerTest is Fixture {
    bytes32 internal constant GENESIS = keccak256("genesis model");
    bytes32 internal constant SPEC = keccak256("spec");
    string internal constant CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

    uint256[] internal datasets;
    uint256 internal jobId;

    function setUp() public override {
        super.setUp();
        datasets = grantedDatasets(owner, 3, 1);
        vm.prank(coordinator);
        jobId = ledger.createJob(trainingPurpose, datasets, GENESIS, SPEC);
    }

    function digest(uint256 round) internal pure returns (bytes32) {
        return keccak256(abi.encode("model", round));
    }

    function commit(uint64 round, bytes32 parent, uint256 mask) internal {
        vm.prank(coordinator);
        ledger.commitRound(jobId, round, parent, digest(round), CID, datasets, mask, keccak256("att"));
    }

    function assertUnchanged() internal view {
        ITrainingLedger.Job memory job = ledger.getJob(jobId);
        assertEq(uint256(job.lastRound), 0, "round unchanged");
        assertEq(job.lastDigest, GENESIS, "digest unchanged");
    }

    // ------------------------------------------------------------ createJob

    function test_createJob_storesAndEmits() public {
        uint256[] memory ids = grantedDatasets(other, 2, 2);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit ITrainingLedger.JobCreated(2, coordinator, trainingPurpose, ids, GENESIS, SPEC);
        vm.prank(coordinator);
        uint256 created = ledger.createJob(trainingPurpose, ids, GENESIS, SPEC);
        assertEq(created, 2, "ids count from 1");
        assertEq(ledger.jobCount(), 2, "jobCount");
        ITrainingLedger.Job memory job = ledger.getJob(created);
        assertEq(job.coordinator, coordinator, "coordinator");
        assertEq(uint256(job.lastRound), 0, "no round yet");
        assertEq(job.purpose, trainingPurpose, "purpose");
        assertEq(job.lastDigest, GENESIS, "initial digest");
        assertEq(job.datasetsHash, keccak256(abi.encodePacked(ids)), "datasetsHash");
        assertEq(job.specDigest, SPEC, "specDigest");
    }

    function test_createJob_revertsForZeroPurpose() public {
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerInvalidPurpose.selector, bytes32(0)));
        ledger.createJob(bytes32(0), datasets, GENESIS, SPEC);
        assertEq(ledger.jobCount(), 1, "no job");
    }

    function test_createJob_revertsForNoDatasets() public {
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerInvalidDatasetCount.selector, 0));
        ledger.createJob(trainingPurpose, new uint256[](0), GENESIS, SPEC);
    }

    function test_createJob_revertsForTooManyDatasets() public {
        uint256[] memory ids = new uint256[](257);
        for (uint256 i; i < 257; ++i) ids[i] = i + 1;
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerInvalidDatasetCount.selector, 257));
        ledger.createJob(trainingPurpose, ids, GENESIS, SPEC);
    }

    function test_createJob_revertsForUnsortedOrDuplicate() public {
        uint256[] memory ids = new uint256[](3);
        ids[0] = datasets[0];
        ids[1] = datasets[2];
        ids[2] = datasets[1];
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerDatasetsNotSorted.selector, 2, datasets[1]));
        ledger.createJob(trainingPurpose, ids, GENESIS, SPEC);
        ids[1] = datasets[0];
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerDatasetsNotSorted.selector, 1, datasets[0]));
        ledger.createJob(trainingPurpose, ids, GENESIS, SPEC);
    }

    function test_createJob_revertsForUnknownDataset() public {
        uint256[] memory ids = new uint256[](2);
        ids[0] = datasets[0];
        ids[1] = type(uint256).max;
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerUnknownDataset.selector, ids[1]));
        ledger.createJob(trainingPurpose, ids, GENESIS, SPEC);
    }

    function test_createJob_revertsForZeroDigest() public {
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerZeroDigest.selector));
        ledger.createJob(trainingPurpose, datasets, bytes32(0), SPEC);
    }

    function testFuzz_createJob(uint8 count, address creator, bytes32 spec) public {
        count = uint8(bound(count, 1, 12));
        vm.assume(creator != address(0));
        uint256[] memory ids = grantedDatasets(owner, count, 99);
        uint256 before = ledger.jobCount();
        bytes32 analytics = grants.ANALYTICS();
        vm.prank(creator);
        uint256 created = ledger.createJob(analytics, ids, GENESIS, spec);
        assertEq(created, before + 1, "sequential id");
        assertEq(ledger.getJob(created).specDigest, spec, "spec digest as given");
        assertEq(ledger.getJob(created).coordinator, creator, "creator coordinates");
        assertEq(ledger.getJob(created).datasetsHash, keccak256(abi.encodePacked(ids)), "hash");
    }

    function test_views() public view {
        assertEq(ledger.registry(), address(registry), "registry");
        assertEq(ledger.grants(), address(grants), "grants");
        assertEq(ledger.MAX_DATASETS(), 256, "max datasets");
        (, string memory name, string memory version,, address verifying,,) = ledger.eip712Domain();
        assertEq(name, "TrainingLedger", "attestation domain name");
        assertEq(version, "2", "attestation domain version");
        assertEq(verifying, address(ledger), "verifyingContract");
    }

    // ---------------------------------------------------------- commitRound

    function test_commitRound_chainsAndEmits() public {
        uint256[] memory participants = new uint256[](2);
        participants[0] = datasets[0];
        participants[1] = datasets[2];
        vm.expectEmit(true, true, true, true, address(ledger));
        emit ITrainingLedger.RoundCommitted(jobId, 1, GENESIS, digest(1), CID, participants, keccak256("att"));
        commit(1, GENESIS, 0x5);
        ITrainingLedger.Job memory job = ledger.getJob(jobId);
        assertEq(uint256(job.lastRound), 1, "round 1");
        assertEq(job.lastDigest, digest(1), "digest 1");
        commit(2, digest(1), 0x7);
        assertEq(uint256(ledger.getJob(jobId).lastRound), 2, "round 2");
        assertEq(ledger.getJob(jobId).lastDigest, digest(2), "digest 2");
        assertEq(ledger.getJob(jobId).specDigest, SPEC, "rounds leave the spec digest alone");
    }

    function test_commitRound_revertsForUnknownJob() public {
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerUnknownJob.selector, 77));
        vm.prank(coordinator);
        ledger.commitRound(77, 1, GENESIS, digest(1), CID, datasets, 1, bytes32(0));
    }

    function test_commitRound_revertsForNonCoordinator() public {
        vm.expectRevert(
            abi.encodeWithSelector(ITrainingLedger.TrainingLedgerNotCoordinator.selector, jobId, other, coordinator)
        );
        vm.prank(other);
        ledger.commitRound(jobId, 1, GENESIS, digest(1), CID, datasets, 1, bytes32(0));
        assertUnchanged();
    }

    function test_commitRound_revertsOutOfOrder() public {
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerRoundOutOfOrder.selector, jobId, 1, 2));
        commit(2, GENESIS, 1);
        assertUnchanged();
        commit(1, GENESIS, 1);
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerRoundOutOfOrder.selector, jobId, 2, 1));
        commit(1, digest(1), 1);
    }

    function test_commitRound_revertsOnParentMismatch() public {
        bytes32 wrong = keccak256("fork");
        vm.expectRevert(
            abi.encodeWithSelector(ITrainingLedger.TrainingLedgerParentMismatch.selector, jobId, GENESIS, wrong)
        );
        commit(1, wrong, 1);
        assertUnchanged();
    }

    function test_commitRound_revertsOnZeroModelDigest() public {
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerZeroDigest.selector));
        vm.prank(coordinator);
        ledger.commitRound(jobId, 1, GENESIS, bytes32(0), CID, datasets, 1, bytes32(0));
        assertUnchanged();
    }

    function test_commitRound_revertsOnDatasetsMismatch() public {
        uint256[] memory shorter = new uint256[](2);
        shorter[0] = datasets[0];
        shorter[1] = datasets[1];
        vm.expectRevert(
            abi.encodeWithSelector(
                ITrainingLedger.TrainingLedgerDatasetsMismatch.selector,
                jobId,
                keccak256(abi.encodePacked(datasets)),
                keccak256(abi.encodePacked(shorter))
            )
        );
        vm.prank(coordinator);
        ledger.commitRound(jobId, 1, GENESIS, digest(1), CID, shorter, 1, bytes32(0));
        assertUnchanged();
    }

    function test_commitRound_revertsOnInvalidMask() public {
        vm.expectRevert(abi.encodeWithSelector(ITrainingLedger.TrainingLedgerInvalidParticipants.selector, jobId, 0, 3));
        commit(1, GENESIS, 0);
        vm.expectRevert(
            abi.encodeWithSelector(ITrainingLedger.TrainingLedgerInvalidParticipants.selector, jobId, 0x9, 3)
        );
        commit(1, GENESIS, 0x9);
        assertUnchanged();
    }

    function test_commitRound_bubblesGrantErrors() public {
        vm.prank(owner);
        grants.revokeGrant(datasets[1], coordinator, trainingPurpose);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsRevoked.selector, datasets[1], coordinator, trainingPurpose)
        );
        commit(1, GENESIS, 0x7);
        assertUnchanged();
        // The same round without the revoked dataset is accepted.
        commit(1, GENESIS, 0x5);
        assertEq(uint256(ledger.getJob(jobId).lastRound), 1, "committed without it");
    }

    function test_commitRound_refusesExpiredAndRetiredAndTransferred() public {
        grantAs(owner, datasets[0], coordinator, 0, START + 10);
        vm.warp(START + 11);
        vm.expectRevert(
            abi.encodeWithSelector(
                IUsageGrants.UsageGrantsExpired.selector, datasets[0], coordinator, trainingPurpose, START + 10
            )
        );
        commit(1, GENESIS, 0x1);

        vm.prank(owner);
        registry.retire(datasets[1]);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsDatasetRetired.selector, datasets[1]));
        commit(1, GENESIS, 0x2);

        vm.prank(owner);
        registry.transferFrom(owner, other, datasets[2]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IUsageGrants.UsageGrantsOwnerChanged.selector, datasets[2], coordinator, trainingPurpose
            )
        );
        commit(1, GENESIS, 0x4);
        assertUnchanged();
    }

    function test_commitRound_grantChecksUseJobPurpose() public {
        // A grant for another purpose does not count: the analytics job has no grants.
        bytes32 analytics = grants.ANALYTICS();
        vm.prank(coordinator);
        uint256 analyticsJob = ledger.createJob(analytics, datasets, GENESIS, SPEC);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsNoGrant.selector, datasets[0], coordinator, analytics)
        );
        vm.prank(coordinator);
        ledger.commitRound(analyticsJob, 1, GENESIS, digest(1), CID, datasets, 1, bytes32(0));
    }

    function test_commitRound_fullJobOf256Datasets() public {
        uint256[] memory ids = grantedDatasets(owner, 256, 256);
        vm.prank(coordinator);
        uint256 big = ledger.createJob(trainingPurpose, ids, GENESIS, SPEC);
        vm.prank(coordinator);
        ledger.commitRound(big, 1, GENESIS, digest(1), CID, ids, type(uint256).max, bytes32(0));
        assertEq(uint256(ledger.getJob(big).lastRound), 1, "all 256 bits usable");
    }

    function testFuzz_commitRound(uint256 mask, uint8 rounds) public {
        mask = bound(mask, 1, 7);
        rounds = uint8(bound(rounds, 1, 10));
        bytes32 parent = GENESIS;
        for (uint64 r = 1; r <= rounds; ++r) {
            commit(r, parent, mask);
            parent = digest(r);
        }
        ITrainingLedger.Job memory job = ledger.getJob(jobId);
        assertEq(uint256(job.lastRound), rounds, "consecutive rounds");
        assertEq(job.lastDigest, parent, "chain head");
        assertEq(job.specDigest, SPEC, "spec digest unchanged");
        assertEq(job.purpose, trainingPurpose, "purpose unchanged");
    }

    function testFuzz_commitRound_rejectsAnyWrongRound(uint64 round) public {
        vm.assume(round != 1);
        vm.expectRevert(
            abi.encodeWithSelector(ITrainingLedger.TrainingLedgerRoundOutOfOrder.selector, jobId, 1, round)
        );
        vm.prank(coordinator);
        ledger.commitRound(jobId, round, GENESIS, digest(1), CID, datasets, 1, bytes32(0));
    }
}
