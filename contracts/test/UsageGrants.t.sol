// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IUsageGrants} from "../interfaces/IUsageGrants.sol";
import {Fixture} from "./utils/Fixture.sol";

contract UsageGrantsTest is Fixture {
    uint256 internal id;
    address internal grantee = address(0x6EA);
    uint64 internal notBefore = START + 100;
    uint64 internal expiresAt = START + 1000;

    function setUp() public override {
        super.setUp();
        id = registerAs(owner, rootOf(1));
    }

    function status() internal view returns (IUsageGrants.Status) {
        return grants.authorizationStatus(id, grantee, trainingPurpose);
    }

    function assertStatus(IUsageGrants.Status expected, string memory message) internal view {
        assertEq(uint256(status()), uint256(expected), message);
        assertEq(grants.isAuthorized(id, grantee, trainingPurpose), expected == IUsageGrants.Status.Authorized, message);
    }

    function singleton(uint256 value) internal pure returns (uint256[] memory list) {
        list = new uint256[](1);
        list[0] = value;
    }

    // ------------------------------------------------------------ constants

    function test_purposeVocabulary() public view {
        assertEq(grants.AI_TRAINING(), keccak256("ai-training"), "ai-training");
        assertEq(grants.AI_INFERENCE(), keccak256("ai-inference"), "ai-inference");
        assertEq(grants.DATA_MINING(), keccak256("data-mining"), "data-mining");
        assertEq(grants.ANALYTICS(), keccak256("analytics"), "analytics");
    }

    function test_eip712Domain() public view {
        (bytes1 fields, string memory name, string memory version, uint256 chainId, address verifying,,) =
            grants.eip712Domain();
        assertEq(uint256(uint8(fields)), 0x0f, "name, version, chainId, verifyingContract");
        assertEq(name, "UsageGrants", "name");
        assertEq(version, "2", "version");
        assertEq(chainId, block.chainid, "chainId");
        assertEq(verifying, address(grants), "verifyingContract");
        bytes32 expected = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("UsageGrants"),
                keccak256("2"),
                block.chainid,
                address(grants)
            )
        );
        assertEq(grants.DOMAIN_SEPARATOR(), expected, "DOMAIN_SEPARATOR");
        assertEq(grants.registry(), address(registry), "registry");
    }

    // ----------------------------------------------------------- issueGrant

    function test_issueGrant_storesAndEmits() public {
        vm.expectEmit(true, true, true, true, address(grants));
        emit IUsageGrants.GrantIssued(id, grantee, trainingPurpose, notBefore, expiresAt, 0, 0, 0, 0);
        grantAs(owner, id, grantee, notBefore, expiresAt);
        IUsageGrants.Grant memory g = grants.getGrant(id, grantee, trainingPurpose);
        assertEq(uint256(g.notBefore), notBefore, "notBefore");
        assertEq(uint256(g.expiresAt), expiresAt, "expiresAt");
        assertEq(uint256(g.epoch), 0, "epoch");
        assertFalse(g.revoked, "revoked");
        assertFalse(g.revokedOnce, "never revoked");
        assertEq(
            uint256(grants.authorizationStatus(id, grantee, grants.ANALYTICS())),
            uint256(IUsageGrants.Status.NoGrant),
            "purpose-scoped"
        );
    }

    function test_issueGrant_byOperator() public {
        vm.prank(owner);
        registry.setApprovalForAll(operator, true);
        grantAs(operator, id, grantee, 0, expiresAt);
        assertStatus(IUsageGrants.Status.Authorized, "operator grant authorises");
    }

    function test_issueGrant_reissueReplacesRevokedGrant() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.prank(owner);
        grants.revokeGrant(id, grantee, trainingPurpose);
        grantAs(owner, id, grantee, 0, expiresAt + 5);
        assertStatus(IUsageGrants.Status.Authorized, "re-issued");
        IUsageGrants.Grant memory g = grants.getGrant(id, grantee, trainingPurpose);
        assertEq(uint256(g.expiresAt), expiresAt + 5, "replaced");
        assertFalse(g.revoked, "live again");
        assertTrue(g.revokedOnce, "the revocation record survives a direct re-issue");
        // The batched check's fast path reads the raw slot: the sticky bits must not trip it.
        grants.requireAuthorized(singleton(id), grantee, trainingPurpose);
    }

    function test_issueGrant_revertsForUnknownDataset() public {
        uint256 missing = uint256(rootOf(9));
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsUnknownDataset.selector, missing));
        grantAs(owner, missing, grantee, 0, expiresAt);
    }

    function test_issueGrant_revertsForStranger() public {
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsNotOwnerOrOperator.selector, id, other, owner)
        );
        grantAs(other, id, grantee, 0, expiresAt);
        assertStatus(IUsageGrants.Status.NoGrant, "nothing stored");
    }

    function test_issueGrant_revertsForRetiredDataset() public {
        vm.prank(owner);
        registry.retire(id);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsDatasetRetired.selector, id));
        grantAs(owner, id, grantee, 0, expiresAt);
        assertStatus(IUsageGrants.Status.NoGrant, "nothing stored");
    }

    function test_issueGrant_revertsForZeroGrantee() public {
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidGrantee.selector, address(0)));
        grantAs(owner, id, address(0), 0, expiresAt);
    }

    function test_issueGrant_revertsForZeroPurpose() public {
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidPurpose.selector, bytes32(0)));
        vm.prank(owner);
        grants.issueGrant(id, grantee, bytes32(0), 0, expiresAt);
    }

    function test_issueGrant_revertsForEmptyWindow() public {
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidWindow.selector, expiresAt + 1, expiresAt, START)
        );
        grantAs(owner, id, grantee, expiresAt + 1, expiresAt);
        assertStatus(IUsageGrants.Status.NoGrant, "nothing stored");
    }

    function test_issueGrant_windowEndingNowIsValidOneSecondEarlierIsNot() public {
        grantAs(owner, id, grantee, 0, START);
        assertStatus(IUsageGrants.Status.Authorized, "expiresAt == now is valid");
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidWindow.selector, 0, START - 1, START)
        );
        grantAs(owner, id, address(0xBEEF), 0, START - 1);
    }

    function testFuzz_issueGrant(address to, uint64 start, uint64 length, uint64 at) public {
        vm.assume(to != address(0));
        start = uint64(bound(start, 0, type(uint64).max - 1));
        length = uint64(bound(length, 0, type(uint64).max - start));
        uint64 end = start + length;
        bool valid = end >= START;
        if (!valid) {
            vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidWindow.selector, start, end, START));
        }
        grantAs(owner, id, to, start, end);
        if (!valid) return;
        vm.warp(at);
        IUsageGrants.Status expected = at < start
            ? IUsageGrants.Status.NotYetValid
            : (at > end ? IUsageGrants.Status.Expired : IUsageGrants.Status.Authorized);
        assertEq(uint256(grants.authorizationStatus(id, to, trainingPurpose)), uint256(expected), "time policy");
    }

    // ------------------------------------------------------- time boundaries

    function test_notBefore_boundary() public {
        grantAs(owner, id, grantee, notBefore, expiresAt);
        vm.warp(notBefore - 1);
        assertStatus(IUsageGrants.Status.NotYetValid, "one second before notBefore");
        vm.warp(notBefore);
        assertStatus(IUsageGrants.Status.Authorized, "at notBefore");
    }

    function test_expiresAt_boundary() public {
        grantAs(owner, id, grantee, notBefore, expiresAt);
        vm.warp(expiresAt);
        assertStatus(IUsageGrants.Status.Authorized, "at expiresAt");
        vm.warp(expiresAt + 1);
        assertStatus(IUsageGrants.Status.Expired, "one second after expiresAt");
    }

    // ---------------------------------------------------- revoke, renounce

    function test_revokeGrant_stopsAuthorisingAndEmits() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.expectEmit(true, true, true, true, address(grants));
        emit IUsageGrants.GrantRevoked(id, grantee, trainingPurpose);
        vm.prank(owner);
        grants.revokeGrant(id, grantee, trainingPurpose);
        assertStatus(IUsageGrants.Status.Revoked, "revoked");
        IUsageGrants.Grant memory g = grants.getGrant(id, grantee, trainingPurpose);
        assertTrue(g.revoked, "stored flag");
        assertTrue(g.revokedOnce, "sticky record");
        assertEq(uint256(g.revokedEpoch), 0, "revoked in epoch 0");
    }

    function test_revokeGrant_recordsTheCurrentEpochForAStaleGrant() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.prank(owner);
        registry.transferFrom(owner, other, id);
        // The new owner revokes the previous owner's grant: the record is for the deed's epoch now.
        vm.prank(other);
        grants.revokeGrant(id, grantee, trainingPurpose);
        IUsageGrants.Grant memory g = grants.getGrant(id, grantee, trainingPurpose);
        assertEq(uint256(g.epoch), 0, "issued in epoch 0");
        assertEq(uint256(g.revokedEpoch), 1, "revoked in epoch 1");
        assertStatus(IUsageGrants.Status.Revoked, "revoked");
    }

    function test_revokeGrant_byOperator() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.prank(owner);
        registry.setApprovalForAll(operator, true);
        vm.prank(operator);
        grants.revokeGrant(id, grantee, trainingPurpose);
        assertStatus(IUsageGrants.Status.Revoked, "operator revoked");
    }

    function test_revokeGrant_revertsWithoutGrant() public {
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsNoGrant.selector, id, grantee, trainingPurpose)
        );
        vm.prank(owner);
        grants.revokeGrant(id, grantee, trainingPurpose);
    }

    function test_revokeGrant_revertsForStranger() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsNotOwnerOrOperator.selector, id, grantee, owner)
        );
        vm.prank(grantee);
        grants.revokeGrant(id, grantee, trainingPurpose);
        assertStatus(IUsageGrants.Status.Authorized, "grant intact");
    }

    function test_revokeGrant_revertsWhenAlreadyRevoked() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.startPrank(owner);
        grants.revokeGrant(id, grantee, trainingPurpose);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsRevoked.selector, id, grantee, trainingPurpose)
        );
        grants.revokeGrant(id, grantee, trainingPurpose);
        vm.stopPrank();
    }

    function testFuzz_revokeGrant(address caller, bool approve) public {
        vm.assume(caller != address(0));
        grantAs(owner, id, grantee, 0, expiresAt);
        if (approve && caller != owner) {
            vm.prank(owner);
            registry.setApprovalForAll(caller, true);
        }
        bool allowed = caller == owner || approve;
        if (!allowed) {
            vm.expectRevert(
                abi.encodeWithSelector(IUsageGrants.UsageGrantsNotOwnerOrOperator.selector, id, caller, owner)
            );
        }
        vm.prank(caller);
        grants.revokeGrant(id, grantee, trainingPurpose);
        assertStatus(allowed ? IUsageGrants.Status.Revoked : IUsageGrants.Status.Authorized, "revoke");
    }

    function test_renounceGrant_byGrantee() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.expectEmit(true, true, true, true, address(grants));
        emit IUsageGrants.GrantRevoked(id, grantee, trainingPurpose);
        vm.prank(grantee);
        grants.renounceGrant(id, trainingPurpose);
        assertStatus(IUsageGrants.Status.Revoked, "renounced");
    }

    function test_renounceGrant_revertsWithoutGrant() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsNoGrant.selector, id, other, trainingPurpose));
        vm.prank(other);
        grants.renounceGrant(id, trainingPurpose);
        assertStatus(IUsageGrants.Status.Authorized, "grantee's grant untouched");
    }

    function test_renounceGrant_revertsWhenRevoked() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.prank(owner);
        grants.revokeGrant(id, grantee, trainingPurpose);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsRevoked.selector, id, grantee, trainingPurpose)
        );
        vm.prank(grantee);
        grants.renounceGrant(id, trainingPurpose);
    }

    function testFuzz_renounceGrant(address who, bytes32 purpose) public {
        vm.assume(who != address(0) && purpose != bytes32(0));
        vm.prank(owner);
        grants.issueGrant(id, who, purpose, 0, expiresAt);
        vm.prank(who);
        grants.renounceGrant(id, purpose);
        assertEq(uint256(grants.authorizationStatus(id, who, purpose)), uint256(IUsageGrants.Status.Revoked), "renounced");
    }

    // ------------------------------------------- dataset state and transfers

    function test_status_unknownDatasetAndNoGrant() public view {
        assertEq(
            uint256(grants.authorizationStatus(uint256(rootOf(9)), grantee, trainingPurpose)),
            uint256(IUsageGrants.Status.UnknownDataset),
            "unknown"
        );
        assertStatus(IUsageGrants.Status.NoGrant, "no grant");
    }

    function test_retire_endsEveryGrant() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.prank(owner);
        registry.retire(id);
        assertStatus(IUsageGrants.Status.DatasetRetired, "retired");
    }

    function test_transfer_endsGrantsOfPreviousOwner() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.prank(owner);
        registry.transferFrom(owner, other, id);
        assertStatus(IUsageGrants.Status.OwnerChanged, "grant from the previous epoch");
        // The previous owner can no longer grant; the new owner can, in the new epoch.
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsNotOwnerOrOperator.selector, id, owner, other)
        );
        grantAs(owner, id, grantee, 0, expiresAt);
        grantAs(other, id, grantee, 0, expiresAt);
        assertStatus(IUsageGrants.Status.Authorized, "re-granted by the new owner");
        assertEq(uint256(grants.getGrant(id, grantee, trainingPurpose).epoch), 1, "epoch 1");
    }

    function test_transferBackDoesNotRevive() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.prank(owner);
        registry.transferFrom(owner, other, id);
        vm.prank(other);
        registry.transferFrom(other, owner, id);
        assertStatus(IUsageGrants.Status.OwnerChanged, "epochs only grow");
    }

    // ---------------------------------------------------- requireAuthorized

    function test_requireAuthorized_passesForAuthorisedList() public {
        uint256[] memory ids = grantedDatasets(owner, 3, 42);
        grants.requireAuthorized(ids, coordinator, trainingPurpose);
        grants.requireAuthorized(new uint256[](0), coordinator, trainingPurpose);
    }

    function test_requireAuthorized_revertsWithEachReason() public {
        uint256[] memory one = singleton(id);
        uint256 missing = uint256(rootOf(9));
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsUnknownDataset.selector, missing));
        grants.requireAuthorized(singleton(missing), grantee, trainingPurpose);

        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsNoGrant.selector, id, grantee, trainingPurpose)
        );
        grants.requireAuthorized(one, grantee, trainingPurpose);

        grantAs(owner, id, grantee, notBefore, expiresAt);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsNotYetValid.selector, id, grantee, trainingPurpose, notBefore)
        );
        grants.requireAuthorized(one, grantee, trainingPurpose);

        vm.warp(expiresAt + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsExpired.selector, id, grantee, trainingPurpose, expiresAt)
        );
        grants.requireAuthorized(one, grantee, trainingPurpose);

        vm.warp(notBefore);
        grants.requireAuthorized(one, grantee, trainingPurpose);
        vm.prank(owner);
        registry.transferFrom(owner, other, id);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsOwnerChanged.selector, id, grantee, trainingPurpose)
        );
        grants.requireAuthorized(one, grantee, trainingPurpose);

        grantAs(other, id, grantee, 0, expiresAt);
        vm.prank(other);
        grants.revokeGrant(id, grantee, trainingPurpose);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsRevoked.selector, id, grantee, trainingPurpose)
        );
        grants.requireAuthorized(one, grantee, trainingPurpose);

        vm.prank(other);
        registry.retire(id);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsDatasetRetired.selector, id));
        grants.requireAuthorized(one, grantee, trainingPurpose);
    }

    function test_requireAuthorized_namesFirstFailingDataset() public {
        uint256[] memory ids = grantedDatasets(owner, 3, 7);
        vm.prank(owner);
        grants.revokeGrant(ids[1], coordinator, trainingPurpose);
        vm.prank(owner);
        grants.revokeGrant(ids[2], coordinator, trainingPurpose);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsRevoked.selector, ids[1], coordinator, trainingPurpose)
        );
        grants.requireAuthorized(ids, coordinator, trainingPurpose);
    }
}
