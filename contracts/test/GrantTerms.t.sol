// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ITrainingLedger} from "../interfaces/ITrainingLedger.sol";
import {IUsageGrants} from "../interfaces/IUsageGrants.sol";
import {Fixture} from "./utils/Fixture.sol";

/// @notice Grant terms: stored in the grant's slot, emitted, signed (domain version 2), and
/// enforced by `commitRound` (minimum participants, maximum rounds) at both sides of each bound.
contract GrantTermsTest is Fixture {
    bytes32 internal constant GENESIS = keccak256("genesis model");
    string internal constant CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

    address internal grantee = address(0x6EA);
    uint64 internal expiresAt = START + 30 days;
    uint256 internal deadline = START + 1 hours;
    uint256 internal id;

    // Five datasets granted to the coordinator without terms; a job over all five.
    uint256[] internal datasets;
    uint256 internal jobId;

    function setUp() public override {
        super.setUp();
        id = registerAs(owner, rootOf(1));
        datasets = grantedDatasets(owner, 5, 7);
        vm.prank(coordinator);
        jobId = ledger.createJob(trainingPurpose, datasets, GENESIS, keccak256("spec"));
    }

    function dp() internal pure returns (IUsageGrants.GrantTerms memory) {
        return termsOf(300, 5, 3, 50);
    }

    function setTerms(uint256 i, IUsageGrants.GrantTerms memory terms) internal {
        grantWithTermsAs(owner, datasets[i], coordinator, 0, type(uint64).max, terms);
    }

    function model(uint256 round) internal pure returns (bytes32) {
        return round == 0 ? GENESIS : keccak256(abi.encode("model", round));
    }

    function commit(uint64 round, uint256 mask) internal {
        vm.prank(coordinator);
        ledger.commitRound(jobId, round, model(round - 1), model(round), CID, datasets, mask, keccak256("att"));
    }

    /// @dev Commit rounds 1..count with every dataset taking part.
    function commitRounds(uint64 count) internal {
        for (uint64 r = 1; r <= count; ++r) commit(r, 0x1f);
    }

    function assertLastRound(uint256 expected) internal view {
        ITrainingLedger.Job memory job = ledger.getJob(jobId);
        assertEq(uint256(job.lastRound), expected, "lastRound");
        assertEq(job.lastDigest, model(expected), "lastDigest");
    }

    // ------------------------------------------------------------ issue with terms

    function test_issueWithTerms_storesAndEmits() public {
        vm.expectEmit(true, true, true, true, address(grants));
        emit IUsageGrants.GrantIssued(id, grantee, trainingPurpose, 0, expiresAt, 300, 5, 3, 50);
        grantWithTermsAs(owner, id, grantee, 0, expiresAt, dp());
        IUsageGrants.Grant memory g = grants.getGrant(id, grantee, trainingPurpose);
        assertEq(uint256(g.expiresAt), expiresAt, "expiresAt");
        assertEq(uint256(g.epsilonHundredths), 300, "epsilon");
        assertEq(uint256(g.deltaNegExponent), 5, "delta");
        assertEq(uint256(g.minParticipants), 3, "minParticipants");
        assertEq(uint256(g.maxRounds), 50, "maxRounds");
        assertTrue(grants.isAuthorized(id, grantee, trainingPurpose), "terms do not affect status");
    }

    function test_reissueWithoutTerms_clearsThem() public {
        grantWithTermsAs(owner, id, grantee, 0, expiresAt, dp());
        vm.expectEmit(true, true, true, true, address(grants));
        emit IUsageGrants.GrantIssued(id, grantee, trainingPurpose, 0, expiresAt, 0, 0, 0, 0);
        grantAs(owner, id, grantee, 0, expiresAt);
        IUsageGrants.Grant memory g = grants.getGrant(id, grantee, trainingPurpose);
        assertEq(uint256(g.epsilonHundredths) + g.deltaNegExponent + g.minParticipants + g.maxRounds, 0, "cleared");
    }

    function test_termsSurviveRevocationRecordAndKeepIt() public {
        grantWithTermsAs(owner, id, grantee, 0, expiresAt, dp());
        vm.prank(owner);
        grants.revokeGrant(id, grantee, trainingPurpose);
        grantWithTermsAs(owner, id, grantee, 0, expiresAt, termsOf(100, 6, 2, 10));
        IUsageGrants.Grant memory g = grants.getGrant(id, grantee, trainingPurpose);
        assertTrue(g.revokedOnce && !g.revoked, "sticky record kept, grant live");
        assertEq(uint256(g.epsilonHundredths), 100, "new epsilon");
        assertEq(uint256(g.maxRounds), 10, "new maxRounds");
    }

    function test_issueWithTerms_revertsForEpsilonWithoutDelta() public {
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidTerms.selector, 300, 0));
        grantWithTermsAs(owner, id, grantee, 0, expiresAt, termsOf(300, 0, 0, 0));
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidTerms.selector, 0, 5));
        grantWithTermsAs(owner, id, grantee, 0, expiresAt, termsOf(0, 5, 0, 0));
        assertEq(uint256(grants.getGrant(id, grantee, trainingPurpose).expiresAt), 0, "nothing stored");
    }

    function test_issueWithTerms_ownerChecksFirst() public {
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsNotOwnerOrOperator.selector, id, other, owner)
        );
        grantWithTermsAs(other, id, grantee, 0, expiresAt, dp());
    }

    function testFuzz_issueWithTerms(uint16 epsilon, uint8 delta, uint8 minParticipants, uint16 maxRounds) public {
        IUsageGrants.GrantTerms memory terms = termsOf(epsilon, delta, minParticipants, maxRounds);
        bool valid = (epsilon == 0) == (delta == 0);
        if (!valid) {
            vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidTerms.selector, epsilon, delta));
        } else {
            vm.expectEmit(true, true, true, true, address(grants));
            emit IUsageGrants.GrantIssued(
                id, grantee, trainingPurpose, 0, expiresAt, epsilon, delta, minParticipants, maxRounds
            );
        }
        grantWithTermsAs(owner, id, grantee, 0, expiresAt, terms);
        IUsageGrants.Grant memory g = grants.getGrant(id, grantee, trainingPurpose);
        assertEq(g.expiresAt != 0, valid, "stored iff valid");
        if (valid) {
            assertEq(uint256(g.epsilonHundredths), epsilon, "epsilon");
            assertEq(uint256(g.deltaNegExponent), delta, "delta");
            assertEq(uint256(g.minParticipants), minParticipants, "minParticipants");
            assertEq(uint256(g.maxRounds), maxRounds, "maxRounds");
            assertEq(uint256(g.epoch), 0, "epoch untouched by terms");
            assertFalse(g.revoked || g.revokedOnce, "flags untouched by terms");
        }
    }

    // ------------------------------------------------------------ signed terms (v2)

    function test_signedTerms_redeemAndEmit() public {
        bytes memory signature =
            signDigest(OWNER_KEY, grantDigest(id, grantee, trainingPurpose, 0, expiresAt, dp(), 0, deadline));
        vm.expectEmit(true, true, true, true, address(grants));
        emit IUsageGrants.GrantIssued(id, grantee, trainingPurpose, 0, expiresAt, 300, 5, 3, 50);
        vm.prank(relayer);
        grants.issueGrantBySig(id, grantee, trainingPurpose, 0, expiresAt, dp(), 0, deadline, signature);
        assertEq(uint256(grants.getGrant(id, grantee, trainingPurpose).minParticipants), 3, "signed terms stored");
        assertEq(grants.nonces(owner), 1, "nonce used");
    }

    function test_signedTerms_tamperedTermsRevert() public {
        bytes memory signature =
            signDigest(OWNER_KEY, grantDigest(id, grantee, trainingPurpose, 0, expiresAt, dp(), 0, deadline));
        IUsageGrants.GrantTerms[4] memory tampered =
            [termsOf(301, 5, 3, 50), termsOf(300, 4, 3, 50), termsOf(300, 5, 2, 50), termsOf(300, 5, 3, 0)];
        for (uint256 i; i < 4; ++i) {
            vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidSignature.selector, id, owner));
            vm.prank(relayer);
            grants.issueGrantBySig(id, grantee, trainingPurpose, 0, expiresAt, tampered[i], 0, deadline, signature);
        }
        // A grant signed with terms cannot be redeemed as one without them.
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidSignature.selector, id, owner));
        vm.prank(relayer);
        grants.issueGrantBySig(id, grantee, trainingPurpose, 0, expiresAt, noTerms, 0, deadline, signature);
        assertEq(uint256(grants.getGrant(id, grantee, trainingPurpose).expiresAt), 0, "no grant");
        assertEq(grants.nonces(owner), 0, "nonce unchanged");
    }

    function test_signedTerms_v1SignatureRefused() public {
        // The version-1 digest: Grant without terms under domain version "1".
        bytes32 v1Domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("UsageGrants"),
                keccak256("1"),
                block.chainid,
                address(grants)
            )
        );
        bytes32 v1Struct = keccak256(
            abi.encode(
                keccak256(
                    "Grant(uint256 datasetId,address grantee,bytes32 purpose,uint64 notBefore,uint64 expiresAt,uint256 nonce,uint256 deadline)"
                ),
                id,
                grantee,
                trainingPurpose,
                uint64(0),
                expiresAt,
                uint256(0),
                deadline
            )
        );
        bytes memory signature =
            signDigest(OWNER_KEY, keccak256(abi.encodePacked("\x19\x01", v1Domain, v1Struct)));
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidSignature.selector, id, owner));
        vm.prank(relayer);
        grants.issueGrantBySig(id, grantee, trainingPurpose, 0, expiresAt, noTerms, 0, deadline, signature);
    }

    function test_signedTerms_invalidTermsRevertAfterSignature() public {
        IUsageGrants.GrantTerms memory bad = termsOf(300, 0, 0, 0);
        bytes memory signature =
            signDigest(OWNER_KEY, grantDigest(id, grantee, trainingPurpose, 0, expiresAt, bad, 0, deadline));
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidTerms.selector, 300, 0));
        vm.prank(relayer);
        grants.issueGrantBySig(id, grantee, trainingPurpose, 0, expiresAt, bad, 0, deadline, signature);
        assertEq(grants.nonces(owner), 0, "nonce not consumed");
    }

    /// @dev Raw `issueGrantBySig` calldata whose epsilon word is `epsilonWord`, signed over that raw word.
    function rawSignedCall(uint256 epsilonWord) internal view returns (bytes memory data) {
        bytes32 structHash = keccak256(
            abi.encode(
                grants.GRANT_TYPEHASH(),
                id,
                grantee,
                trainingPurpose,
                uint64(0),
                expiresAt,
                epsilonWord,
                uint256(5),
                uint256(3),
                uint256(50),
                uint256(0),
                deadline
            )
        );
        bytes memory signature =
            signDigest(OWNER_KEY, keccak256(abi.encodePacked("\x19\x01", grants.DOMAIN_SEPARATOR(), structHash)));
        // The static GrantTerms is encoded in place: eleven head words, then the bytes offset.
        data = abi.encodeWithSelector(
            grants.issueGrantBySig.selector,
            id,
            grantee,
            trainingPurpose,
            uint64(0),
            expiresAt,
            epsilonWord,
            uint256(5),
            uint256(3),
            uint256(50),
            uint256(0),
            deadline,
            signature
        );
    }

    function test_signedTerms_rawCallControl() public {
        vm.prank(relayer);
        (bool ok,) = address(grants).call(rawSignedCall(300));
        assertTrue(ok, "clean raw call redeems");
        assertEq(uint256(grants.getGrant(id, grantee, trainingPurpose).epsilonHundredths), 300, "stored");
    }

    function test_signedTerms_dirtyTermsWordReverts() public {
        // Bits above uint16 in the epsilon word, signed as such (the digest hashes the raw word):
        // the signature verifies, and reading the terms then refuses the out-of-range value.
        vm.prank(relayer);
        (bool ok,) = address(grants).call(rawSignedCall(300 | (1 << 16)));
        assertFalse(ok, "dirty terms refused");
        assertEq(uint256(grants.getGrant(id, grantee, trainingPurpose).expiresAt), 0, "no grant");
        assertEq(grants.nonces(owner), 0, "nonce unchanged");
    }

    function testFuzz_signedTerms(uint16 epsilon, uint8 delta, uint8 minParticipants, uint16 maxRounds) public {
        vm.assume((epsilon == 0) == (delta == 0));
        IUsageGrants.GrantTerms memory terms = termsOf(epsilon, delta, minParticipants, maxRounds);
        bytes memory signature =
            signDigest(OWNER_KEY, grantDigest(id, grantee, trainingPurpose, 0, expiresAt, terms, 0, deadline));
        vm.prank(relayer);
        grants.issueGrantBySig(id, grantee, trainingPurpose, 0, expiresAt, terms, 0, deadline, signature);
        IUsageGrants.Grant memory g = grants.getGrant(id, grantee, trainingPurpose);
        assertEq(uint256(g.epsilonHundredths), epsilon, "epsilon");
        assertEq(uint256(g.deltaNegExponent), delta, "delta");
        assertEq(uint256(g.minParticipants), minParticipants, "minParticipants");
        assertEq(uint256(g.maxRounds), maxRounds, "maxRounds");
    }

    // ------------------------------------------------------------ commitRound: minimum participants

    function test_minParticipants_exactlyEnoughCommits() public {
        setTerms(1, termsOf(0, 0, 3, 0));
        commit(1, 0x07); // datasets 0, 1, 2
        assertLastRound(1);
    }

    function test_minParticipants_oneFewerReverts() public {
        setTerms(1, termsOf(0, 0, 3, 0));
        vm.expectRevert(
            abi.encodeWithSelector(
                IUsageGrants.UsageGrantsTooFewParticipants.selector, datasets[1], coordinator, trainingPurpose, 3, 2
            )
        );
        commit(1, 0x03); // datasets 0, 1
        assertLastRound(0);
    }

    function test_minParticipants_onlyParticipantsTermsCount() public {
        // Dataset 4 requires five participants, but it is not in this round.
        setTerms(4, termsOf(0, 0, 5, 0));
        commit(1, 0x03);
        assertLastRound(1);
    }

    function test_minParticipants_firstViolatingParticipantNamed() public {
        setTerms(2, termsOf(0, 0, 4, 0));
        setTerms(3, termsOf(0, 0, 5, 0));
        vm.expectRevert(
            abi.encodeWithSelector(
                IUsageGrants.UsageGrantsTooFewParticipants.selector, datasets[2], coordinator, trainingPurpose, 4, 3
            )
        );
        commit(1, 0x0e); // datasets 1, 2, 3
    }

    function test_minParticipants_authorisationErrorsComeFirst() public {
        setTerms(0, termsOf(0, 0, 3, 0));
        vm.prank(owner);
        grants.revokeGrant(datasets[0], coordinator, trainingPurpose);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsRevoked.selector, datasets[0], coordinator, trainingPurpose)
        );
        commit(1, 0x01);
    }

    function testFuzz_minParticipants(uint8 minParticipants, uint256 mask) public {
        minParticipants = uint8(bound(minParticipants, 0, 6));
        mask = bound(mask, 1, 0x1f) | 1; // dataset 0, which carries the terms, always takes part
        setTerms(0, termsOf(0, 0, minParticipants, 0));
        uint256 count;
        for (uint256 i; i < 5; ++i) count += (mask >> i) & 1;
        if (count < minParticipants) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IUsageGrants.UsageGrantsTooFewParticipants.selector,
                    datasets[0],
                    coordinator,
                    trainingPurpose,
                    minParticipants,
                    count
                )
            );
        }
        commit(1, mask);
        assertLastRound(count < minParticipants ? 0 : 1);
    }

    // ------------------------------------------------------------ commitRound: maximum rounds

    function test_maxRounds_lastAllowedRoundCommits() public {
        setTerms(2, termsOf(0, 0, 0, 3));
        commitRounds(3);
        assertLastRound(3);
    }

    function test_maxRounds_oneMoreReverts() public {
        setTerms(2, termsOf(0, 0, 0, 3));
        commitRounds(3);
        vm.expectRevert(
            abi.encodeWithSelector(
                IUsageGrants.UsageGrantsRoundLimitExceeded.selector, datasets[2], coordinator, trainingPurpose, 3, 4
            )
        );
        commit(4, 0x1f);
        assertLastRound(3);
        // The job goes on without that dataset.
        commit(4, 0x1b);
        assertLastRound(4);
    }

    function test_maxRounds_zeroMeansNoLimit() public {
        setTerms(0, termsOf(300, 5, 0, 0));
        commitRounds(5);
        assertLastRound(5);
    }

    function test_maxRounds_viewMatchesCommit() public {
        setTerms(1, termsOf(0, 0, 2, 7));
        uint256[] memory two = new uint256[](2);
        two[0] = datasets[0];
        two[1] = datasets[1];
        grants.requireRoundAuthorized(two, coordinator, trainingPurpose, 7);
        vm.expectRevert(
            abi.encodeWithSelector(
                IUsageGrants.UsageGrantsRoundLimitExceeded.selector, datasets[1], coordinator, trainingPurpose, 7, 8
            )
        );
        grants.requireRoundAuthorized(two, coordinator, trainingPurpose, 8);
        // requireAuthorized (no round) ignores the terms.
        uint256[] memory one = new uint256[](1);
        one[0] = datasets[1];
        grants.requireAuthorized(one, coordinator, trainingPurpose);
    }

    function testFuzz_maxRounds(uint16 maxRounds, uint64 round) public {
        maxRounds = uint16(bound(maxRounds, 1, 400));
        round = uint64(bound(round, 1, 500));
        setTerms(3, termsOf(0, 0, 0, maxRounds));
        uint256[] memory participants = new uint256[](1);
        participants[0] = datasets[3];
        if (round > maxRounds) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IUsageGrants.UsageGrantsRoundLimitExceeded.selector,
                    datasets[3],
                    coordinator,
                    trainingPurpose,
                    maxRounds,
                    round
                )
            );
        }
        grants.requireRoundAuthorized(participants, coordinator, trainingPurpose, round);
    }
}
