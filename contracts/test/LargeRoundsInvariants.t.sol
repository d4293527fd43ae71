// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {DatasetRegistry} from "../DatasetRegistry.sol";
import {TrainingLedger} from "../TrainingLedger.sol";
import {UsageGrants} from "../UsageGrants.sol";
import {IDatasetRegistry} from "../interfaces/IDatasetRegistry.sol";
import {ITrainingLedger} from "../interfaces/ITrainingLedger.sol";
import {IUsageGrants} from "../interfaces/IUsageGrants.sol";
import {TestBase} from "./utils/TestBase.sol";
import {Vm} from "./utils/Vm.sol";

/// @notice Drives one open job through fuzzed begin / add batch / finalize / abort calls
/// (biased towards valid ones, with overlapping and out-of-order batches among them), grant
/// revocations and grant terms, and keeps a ghost of the open round's participants.
contract LargeRoundHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant N = 6;
    address public constant COORDINATOR = address(0xC0);
    address public constant OWNER = address(0xA11CE);
    bytes32 public constant GENESIS = keccak256("genesis");

    TrainingLedger public immutable ledger;
    UsageGrants public immutable grants;
    uint256 public immutable jobId;
    bytes32 public immutable purpose;
    uint256[N] public datasets;
    bool[N] public revoked;
    uint8[N] public minParticipantsOf;
    uint16[N] public maxRoundsOf;

    // Ghost of the open round: which datasets its accepted batches added, in order.
    uint64 public openRound;
    uint256 internal openMask;
    uint256 internal openCount;
    bytes32 internal openHash;
    // The largest minParticipants among the added datasets' grants as they stood at their batch:
    // a grant (terms included) is checked when its batch lands, not again at finalize.
    uint256 internal openMin;

    struct Finalized {
        uint64 round;
        bytes32 parent;
        bytes32 model;
        uint256 mask;
    }

    Finalized[] internal finalized;
    uint256 public acceptedWithRevokedParticipant;
    uint256 public acceptedTwice;
    uint256 public acceptedAgainstTerms;
    uint256 public acceptedOtherSet;

    constructor(DatasetRegistry registry, UsageGrants grants_, TrainingLedger ledger_) {
        ledger = ledger_;
        grants = grants_;
        purpose = grants_.AI_TRAINING();
        // Small ascending ids: index i is dataset i + 1.
        for (uint256 i; i < N; ++i) {
            vm.prank(OWNER);
            datasets[i] = registry.register(bytes32(i + 1), 0, "");
            vm.prank(OWNER);
            grants_.issueGrant(datasets[i], COORDINATOR, purpose, 0, type(uint64).max);
        }
        vm.prank(COORDINATOR);
        jobId = ledger_.createOpenJob(purpose, GENESIS, bytes32(0));
    }

    function begin(uint256 seed, uint64 round, bytes32 parent) external {
        ITrainingLedger.Job memory job = ledger.getJob(jobId);
        if (seed % 4 != 0) round = job.lastRound + 1;
        if ((seed >> 8) % 4 != 0) parent = job.lastDigest;
        vm.prank(COORDINATOR);
        try ledger.beginLargeRound(jobId, round, parent) {
            (openRound, openMask, openCount, openHash, openMin) = (round, 0, 0, bytes32(0), 0);
        } catch {}
    }

    /// @notice A batch of datasets `first` to `first + length - 1`, usually after the last one added.
    function add(uint256 seed, uint256 first, uint256 length) external {
        uint256 next;
        for (uint256 i; i < N; ++i) {
            if ((openMask >> i) & 1 == 1) next = i + 1;
        }
        first = seed % 4 != 0 ? next : first % N;
        length = 1 + (length % 3);
        if (first + length > N) length = N > first ? N - first : 0;
        uint256[] memory batch = new uint256[](length);
        for (uint256 i; i < length; ++i) batch[i] = datasets[first + i];
        uint64 round = (seed >> 8) % 8 != 0 ? openRound : uint64(seed >> 16);
        vm.prank(COORDINATOR);
        try ledger.addRoundParticipants(jobId, round, batch) {
            for (uint256 i; i < length; ++i) {
                uint256 d = first + i;
                if ((openMask >> d) & 1 == 1) ++acceptedTwice;
                if (revoked[d]) ++acceptedWithRevokedParticipant;
                if (maxRoundsOf[d] != 0 && round > maxRoundsOf[d]) ++acceptedAgainstTerms;
                if (minParticipantsOf[d] > openMin) openMin = minParticipantsOf[d];
                openMask |= 1 << d;
                openHash = keccak256(abi.encode(openHash, datasets[d]));
            }
            openCount += length;
        } catch {}
    }

    function finalize(uint256 seed, uint64 count, bytes32 hash) external {
        if (seed % 4 != 0) (count, hash) = (uint64(openCount), openHash);
        bytes32 parent = ledger.getJob(jobId).lastDigest;
        bytes32 model = keccak256(abi.encode(seed, openRound));
        vm.prank(COORDINATOR);
        try ledger.finalizeLargeRound(jobId, openRound, model, "cid", count, hash, bytes32(0)) {
            if (count != openCount || hash != openHash) ++acceptedOtherSet;
            if (openCount < openMin) ++acceptedAgainstTerms;
            finalized.push(Finalized(openRound, parent, model, openMask));
            (openRound, openMask, openCount, openHash, openMin) = (0, 0, 0, bytes32(0), 0);
        } catch {}
    }

    /// @notice A whole honest round: begin, the granted datasets in batches of two, finalize.
    function honestRound(uint256 seed) external {
        if (openRound == 0) this.begin(0x0101, 0, bytes32(0));
        uint256 first;
        while (first < N) {
            this.add(0x0101, 0, 1);
            first += 2;
        }
        this.finalize(seed | 1, 0, bytes32(0));
    }

    function abort() external {
        vm.prank(COORDINATOR);
        try ledger.abortLargeRound(jobId, openRound) {
            (openRound, openMask, openCount, openHash, openMin) = (0, 0, 0, bytes32(0), 0);
        } catch {}
    }

    function toggleGrant(uint256 i) external {
        i %= N;
        vm.prank(OWNER);
        if (revoked[i]) grants.issueGrant(datasets[i], COORDINATOR, purpose, 0, type(uint64).max);
        else grants.revokeGrant(datasets[i], COORDINATOR, purpose);
        if (revoked[i]) (minParticipantsOf[i], maxRoundsOf[i]) = (0, 0);
        revoked[i] = !revoked[i];
    }

    function setTerms(uint256 i, uint8 minParticipants, uint16 maxRounds) external {
        i %= N;
        minParticipants %= 7;
        maxRounds %= 9;
        vm.prank(OWNER);
        grants.issueGrant(
            datasets[i],
            COORDINATOR,
            purpose,
            0,
            type(uint64).max,
            IUsageGrants.GrantTerms(0, 0, minParticipants, maxRounds)
        );
        (minParticipantsOf[i], maxRoundsOf[i]) = (minParticipants, maxRounds);
        revoked[i] = false;
    }

    function finalizedCount() external view returns (uint256) {
        return finalized.length;
    }

    function finalizedAt(uint256 i) external view returns (Finalized memory) {
        return finalized[i];
    }
}

contract LargeRoundsInvariantTest is TestBase {
    LargeRoundHandler internal handler;
    TrainingLedger internal ledger;

    function setUp() public {
        vm.warp(1_700_000_000);
        DatasetRegistry registry = new DatasetRegistry();
        UsageGrants grants = new UsageGrants(registry);
        ledger = new TrainingLedger(IDatasetRegistry(address(registry)), IUsageGrants(address(grants)));
        handler = new LargeRoundHandler(registry, grants, ledger);
        targetContract(address(handler));
    }

    /// @notice Finalized large rounds are rounds 1, 2, 3, ... each building on the previous model.
    function invariant_largeRoundsAreConsecutiveAndHashChained() public view {
        uint256 count = handler.finalizedCount();
        bytes32 previous = handler.GENESIS();
        for (uint256 i; i < count; ++i) {
            LargeRoundHandler.Finalized memory f = handler.finalizedAt(i);
            assertEq(uint256(f.round), i + 1, "consecutive");
            assertEq(f.parent, previous, "hash-chained");
            assertTrue(f.mask != 0, "no empty round");
            previous = f.model;
        }
        ITrainingLedger.Job memory job = ledger.getJob(handler.jobId());
        assertEq(uint256(job.lastRound), count, "lastRound = finalized rounds");
        assertEq(job.lastDigest, previous, "lastDigest = head of the chain");
    }

    /// @notice The open round, if any, is the job's next one and holds what the accepted batches added.
    function invariant_atMostTheNextRoundIsOpen() public view {
        ITrainingLedger.LargeRound memory open = ledger.getLargeRound(handler.jobId());
        assertEq(uint256(open.round), uint256(handler.openRound()), "open round as the ghost says");
        if (open.round != 0) {
            assertEq(uint256(open.round), uint256(ledger.getJob(handler.jobId()).lastRound) + 1, "next round");
        }
    }

    /// @notice No batch with a revoked grant, no dataset twice in a round, no round against a
    /// participant's terms, and no finalize of another set than the batches built was accepted.
    function invariant_noDishonestLargeRoundAccepted() public view {
        assertEq(handler.acceptedWithRevokedParticipant(), 0, "revoked participant accepted");
        assertEq(handler.acceptedTwice(), 0, "a dataset accepted twice in one round");
        assertEq(handler.acceptedAgainstTerms(), 0, "round against a participant's terms accepted");
        assertEq(handler.acceptedOtherSet(), 0, "finalized another participant set");
    }
}
