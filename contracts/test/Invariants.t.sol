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

/// @notice Drives grants and deeds through random issue / revoke / renounce / retire /
/// transfer / time steps, plus signed grants that holders give out and anyone redeems later,
/// and keeps an independent model (ghost state) of what must authorise.
contract GrantsHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant DATASETS = 4;
    uint256 internal constant GRANTEES = 3;

    DatasetRegistry public immutable registry;
    UsageGrants public immutable grants;
    bytes32 public immutable purpose;

    uint256[DATASETS] public datasetIds;
    uint256[DATASETS] internal holderKey;
    address[DATASETS] public holder;
    uint32[DATASETS] public epoch;
    bool[DATASETS] public retired;

    struct GhostGrant {
        bool issued;
        bool revoked;
        uint64 notBefore;
        uint64 expiresAt;
        uint32 epoch;
    }

    GhostGrant[GRANTEES][DATASETS] internal ghost;

    /// @dev Epoch + 1 in which the model last saw (d, g) revoked or renounced (0: never).
    uint40[GRANTEES][DATASETS] internal revokedInEpochPlusOne;

    struct SignedGrant {
        uint256 d;
        uint256 g;
        uint64 notBefore;
        uint64 expiresAt;
        uint256 nonce;
        uint256 deadline;
        bytes signature;
    }

    SignedGrant[] internal signedGrants;
    uint256 public redeemedSignatures;
    /// @notice Signed grants the contract accepted for a key revoked in the deed's current epoch.
    uint256 public recreatedAfterRevocation;

    constructor(DatasetRegistry registry_, UsageGrants grants_) {
        registry = registry_;
        grants = grants_;
        purpose = grants_.AI_TRAINING();
        for (uint256 d; d < DATASETS; ++d) {
            holderKey[d] = 0xA000 + d;
            holder[d] = vm.addr(holderKey[d]);
            vm.prank(holder[d]);
            datasetIds[d] = registry_.register(keccak256(abi.encode("inv", d)), 0, "");
        }
    }

    function grantee(uint256 g) public pure returns (address) {
        return address(uint160(0xB000 + g));
    }

    function issue(uint256 d, uint256 g, uint64 notBefore, uint64 length) external {
        d %= DATASETS;
        g %= GRANTEES;
        if (retired[d]) return;
        notBefore = uint64(block.timestamp) - 3 days + (notBefore % 6 days);
        uint64 expiresAt = notBefore + (length % 4 days);
        if (expiresAt < block.timestamp) expiresAt = uint64(block.timestamp);
        vm.prank(holder[d]);
        grants.issueGrant(datasetIds[d], grantee(g), purpose, notBefore, expiresAt);
        ghost[d][g] = GhostGrant(true, false, notBefore, expiresAt, epoch[d]);
    }

    function revoke(uint256 d, uint256 g) external {
        d %= DATASETS;
        g %= GRANTEES;
        if (!ghost[d][g].issued || ghost[d][g].revoked) return;
        vm.prank(holder[d]);
        grants.revokeGrant(datasetIds[d], grantee(g), purpose);
        ghost[d][g].revoked = true;
        revokedInEpochPlusOne[d][g] = uint40(epoch[d]) + 1;
    }

    function renounce(uint256 d, uint256 g) external {
        d %= DATASETS;
        g %= GRANTEES;
        if (!ghost[d][g].issued || ghost[d][g].revoked) return;
        vm.prank(grantee(g));
        grants.renounceGrant(datasetIds[d], purpose);
        ghost[d][g].revoked = true;
        revokedInEpochPlusOne[d][g] = uint40(epoch[d]) + 1;
    }

    /// @notice The current holder signs a grant with its next nonce and keeps it for later.
    function sign(uint256 d, uint256 g, uint64 length) external {
        d %= DATASETS;
        g %= GRANTEES;
        uint64 notBefore = uint64(block.timestamp);
        uint64 expiresAt = notBefore + (length % 4 days);
        uint256 nonce = grants.nonces(holder[d]);
        uint256 deadline = block.timestamp + 3 days;
        bytes32 structHash = keccak256(
            bytes.concat(
                abi.encode(grants.GRANT_TYPEHASH(), datasetIds[d], grantee(g), purpose, notBefore, expiresAt),
                abi.encode(uint256(0), uint256(0), uint256(0), uint256(0), nonce, deadline)
            )
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", grants.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(holderKey[d], digest);
        signedGrants.push(SignedGrant(d, g, notBefore, expiresAt, nonce, deadline, abi.encodePacked(r, s, v)));
    }

    /// @notice Anyone redeems a signed grant given out earlier (maybe before a revocation).
    function redeem(uint256 i) external {
        if (signedGrants.length == 0) return;
        SignedGrant memory sg = signedGrants[i % signedGrants.length];
        try grants.issueGrantBySig(
            datasetIds[sg.d], grantee(sg.g), purpose, sg.notBefore, sg.expiresAt, IUsageGrants.GrantTerms(0, 0, 0, 0), sg.nonce, sg.deadline, sg.signature
        ) {
            ++redeemedSignatures;
            if (revokedInEpochPlusOne[sg.d][sg.g] == uint40(epoch[sg.d]) + 1) ++recreatedAfterRevocation;
            ghost[sg.d][sg.g] = GhostGrant(true, false, sg.notBefore, sg.expiresAt, epoch[sg.d]);
        } catch {}
    }

    /// @notice The current holder cancels its outstanding signatures.
    function cancelSignatures(uint256 d) external {
        d %= DATASETS;
        vm.prank(holder[d]);
        grants.invalidateNonces(grants.nonces(holder[d]));
    }

    function retire(uint256 d) external {
        d %= DATASETS;
        if (retired[d]) return;
        vm.prank(holder[d]);
        registry.retire(datasetIds[d]);
        retired[d] = true;
    }

    function transfer(uint256 d, uint256 to) external {
        d %= DATASETS;
        uint256 nextKey = 0xA100 + (to % 3);
        address next = vm.addr(nextKey);
        if (next == holder[d]) return;
        vm.prank(holder[d]);
        registry.transferFrom(holder[d], next, datasetIds[d]);
        holder[d] = next;
        holderKey[d] = nextKey;
        ++epoch[d];
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + (seconds_ % 2 days));
    }

    /// @notice What the model says: authorised iff issued, not revoked, not retired, same epoch, in window.
    function expected(uint256 d, uint256 g) public view returns (bool) {
        GhostGrant memory gg = ghost[d][g];
        return gg.issued && !gg.revoked && !retired[d] && gg.epoch == epoch[d] && gg.notBefore <= block.timestamp
            && block.timestamp <= gg.expiresAt;
    }
}

contract UsageGrantsInvariantTest is TestBase {
    GrantsHandler internal handler;
    UsageGrants internal grants;

    function setUp() public {
        vm.warp(1_700_000_000);
        DatasetRegistry registry = new DatasetRegistry();
        grants = new UsageGrants(registry);
        handler = new GrantsHandler(registry, grants);
        targetContract(address(handler));
    }

    /// @notice No revoked, renounced, expired, not-yet-valid, retired or pre-transfer grant
    /// authorises, and every grant the model says is live does authorise.
    function invariant_authorisationMatchesModel() public view {
        bytes32 purpose = handler.purpose();
        for (uint256 d; d < 4; ++d) {
            uint256 id = handler.datasetIds(d);
            for (uint256 g; g < 3; ++g) {
                address who = handler.grantee(g);
                bool want = handler.expected(d, g);
                assertEq(grants.isAuthorized(id, who, purpose), want, "isAuthorized vs model");
                uint256[] memory one = new uint256[](1);
                one[0] = id;
                bool passed;
                try grants.requireAuthorized(one, who, purpose) {
                    passed = true;
                } catch {
                    passed = false;
                }
                assertEq(passed, want, "requireAuthorized vs model");
            }
        }
    }

    /// @notice No grant revoked or renounced in the deed's current epoch is re-created by a
    /// signature, whenever that signature was given out.
    function invariant_noRevokedGrantRecreatedBySignature() public view {
        assertEq(handler.recreatedAfterRevocation(), 0, "signature re-created a revoked grant");
    }
}

/// @notice Drives one job with commits whose round, parent, caller and participants are
/// fuzzed (biased towards valid ones), plus grant revocations and grant terms (minimum
/// participants, maximum rounds); records every commit the contract accepted.
contract LedgerHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    address public constant COORDINATOR = address(0xC0);
    address public constant OWNER = address(0xA11CE);
    bytes32 public constant GENESIS = keccak256("genesis");

    TrainingLedger public immutable ledger;
    UsageGrants public immutable grants;
    uint256 public immutable jobId;
    bytes32 public immutable purpose;
    uint256[] internal datasets;
    bool[4] public revoked;
    // Ghost terms of each dataset's grant (0 = none), as last issued.
    uint8[4] public minParticipantsOf;
    uint16[4] public maxRoundsOf;

    struct Accepted {
        address caller;
        uint64 round;
        bytes32 parent;
        bytes32 model;
        uint256 mask;
    }

    Accepted[] internal accepted;
    uint256 public acceptedWithRevokedParticipant;
    uint256 public acceptedAgainstTerms;

    constructor(DatasetRegistry registry, UsageGrants grants_, TrainingLedger ledger_) {
        ledger = ledger_;
        grants = grants_;
        purpose = grants_.AI_TRAINING();
        bytes32[4] memory roots;
        for (uint256 i; i < 4; ++i) roots[i] = bytes32(uint256(keccak256(abi.encode("ds", i))) >> 8 << 8 | i);
        // ascending order: sort by value
        for (uint256 i = 1; i < 4; ++i) {
            for (uint256 j = i; j > 0 && roots[j - 1] > roots[j]; --j) {
                (roots[j - 1], roots[j]) = (roots[j], roots[j - 1]);
            }
        }
        for (uint256 i; i < 4; ++i) {
            vm.prank(OWNER);
            datasets.push(registry.register(roots[i], 0, ""));
            vm.prank(OWNER);
            grants_.issueGrant(datasets[i], COORDINATOR, purpose, 0, type(uint64).max);
        }
        vm.prank(COORDINATOR);
        jobId = ledger_.createJob(purpose, datasets, GENESIS, bytes32(0));
    }

    function commit(uint256 seed, uint64 round, bytes32 parent, address caller, uint256 mask) external {
        ITrainingLedger.Job memory job = ledger.getJob(jobId);
        // Bias: most calls use the right value for each field, the rest a fuzzed one.
        if (seed % 4 != 0) round = job.lastRound + 1;
        if ((seed >> 8) % 4 != 0) parent = job.lastDigest;
        if ((seed >> 16) % 4 != 0) caller = COORDINATOR;
        if ((seed >> 24) % 4 != 0) mask = 1 + (mask % 15);
        bytes32 model = keccak256(abi.encode(seed, round));
        vm.prank(caller);
        try ledger.commitRound(jobId, round, parent, model, "cid", datasets, mask, bytes32(0)) {
            accepted.push(Accepted(caller, round, parent, model, mask));
            uint256 count;
            for (uint256 i; i < 4; ++i) count += (mask >> i) & 1;
            for (uint256 i; i < 4; ++i) {
                if ((mask >> i) & 1 == 0) continue;
                if (revoked[i]) ++acceptedWithRevokedParticipant;
                if (count < minParticipantsOf[i] || (maxRoundsOf[i] != 0 && round > maxRoundsOf[i])) {
                    ++acceptedAgainstTerms;
                }
            }
        } catch {}
    }

    function toggleGrant(uint256 i) external {
        i %= 4;
        vm.prank(OWNER);
        if (revoked[i]) grants.issueGrant(datasets[i], COORDINATOR, purpose, 0, type(uint64).max);
        else grants.revokeGrant(datasets[i], COORDINATOR, purpose);
        if (revoked[i]) (minParticipantsOf[i], maxRoundsOf[i]) = (0, 0);
        revoked[i] = !revoked[i];
    }

    /// @notice The owner re-issues a dataset's grant with small terms (up to 5 participants, 1-8 rounds).
    function setTerms(uint256 i, uint8 minParticipants, uint16 maxRounds) external {
        i %= 4;
        minParticipants %= 6;
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

    function acceptedCount() external view returns (uint256) {
        return accepted.length;
    }

    function acceptedAt(uint256 i) external view returns (Accepted memory) {
        return accepted[i];
    }
}

contract TrainingLedgerInvariantTest is TestBase {
    LedgerHandler internal handler;
    TrainingLedger internal ledger;

    function setUp() public {
        vm.warp(1_700_000_000);
        DatasetRegistry registry = new DatasetRegistry();
        UsageGrants grants = new UsageGrants(registry);
        ledger = new TrainingLedger(IDatasetRegistry(address(registry)), IUsageGrants(address(grants)));
        handler = new LedgerHandler(registry, grants, ledger);
        targetContract(address(handler));
    }

    /// @notice Accepted commitments are rounds 1, 2, 3, ... each building on the previous model.
    function invariant_commitmentsAreConsecutiveAndHashChained() public view {
        uint256 count = handler.acceptedCount();
        bytes32 previous = handler.GENESIS();
        for (uint256 i; i < count; ++i) {
            LedgerHandler.Accepted memory a = handler.acceptedAt(i);
            assertEq(uint256(a.round), i + 1, "consecutive");
            assertEq(a.parent, previous, "hash-chained");
            previous = a.model;
        }
        ITrainingLedger.Job memory job = ledger.getJob(handler.jobId());
        assertEq(uint256(job.lastRound), count, "lastRound = accepted commits");
        assertEq(job.lastDigest, previous, "lastDigest = head of the chain");
    }

    /// @notice Only the coordinator ever commits.
    function invariant_onlyCoordinatorCommits() public view {
        uint256 count = handler.acceptedCount();
        for (uint256 i; i < count; ++i) {
            assertEq(handler.acceptedAt(i).caller, handler.COORDINATOR(), "committer");
        }
    }

    /// @notice No commitment ever includes a dataset whose grant was revoked.
    function invariant_noCommitWithRevokedParticipant() public view {
        assertEq(handler.acceptedWithRevokedParticipant(), 0, "revoked participant accepted");
    }

    /// @notice No commitment has fewer participants, or a later round, than a participant's terms allow.
    function invariant_noCommitAgainstGrantTerms() public view {
        assertEq(handler.acceptedAgainstTerms(), 0, "round against a participant's terms accepted");
    }
}
