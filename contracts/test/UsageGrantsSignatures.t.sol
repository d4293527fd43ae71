// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IUsageGrants} from "../interfaces/IUsageGrants.sol";
import {MockRejectingWallet, MockSignerWallet} from "../mocks/MockWallets.sol";
import {Fixture} from "./utils/Fixture.sol";

contract UsageGrantsSignaturesTest is Fixture {
    uint256 internal id;
    address internal grantee = address(0x6EA);
    uint64 internal expiresAt = START + 30 days;
    uint256 internal deadline = START + 1 hours;

    function setUp() public override {
        super.setUp();
        id = registerAs(owner, rootOf(1));
    }

    function signed(uint256 key, uint256 datasetId, uint256 nonce) internal view returns (bytes memory) {
        return signDigest(key, grantDigest(datasetId, grantee, trainingPurpose, 0, expiresAt, nonce, deadline));
    }

    function submit(uint256 datasetId, uint256 nonce, bytes memory signature) internal {
        vm.prank(relayer);
        grants.issueGrantBySig(datasetId, grantee, trainingPurpose, 0, expiresAt, noTerms, nonce, deadline, signature);
    }

    function authorised() internal view returns (bool) {
        return grants.isAuthorized(id, grantee, trainingPurpose);
    }

    function test_validSignature_anyoneSubmits() public {
        vm.expectEmit(true, true, true, true, address(grants));
        emit IUsageGrants.GrantIssued(id, grantee, trainingPurpose, 0, expiresAt, 0, 0, 0, 0);
        submit(id, 0, signed(OWNER_KEY, id, 0));
        assertTrue(authorised(), "authorised");
        assertEq(grants.nonces(owner), 1, "nonce consumed");
        assertEq(grants.nonces(relayer), 0, "submitter's nonce untouched");
    }

    function test_sequentialNonces() public {
        submit(id, 0, signed(OWNER_KEY, id, 0));
        submit(id, 1, signed(OWNER_KEY, id, 1));
        assertEq(grants.nonces(owner), 2, "two signatures used");
    }

    function test_wrongSigner_reverts() public {
        bytes memory signature = signed(OTHER_KEY, id, 0);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidSignature.selector, id, owner));
        submit(id, 0, signature);
        assertFalse(authorised(), "no grant");
        assertEq(grants.nonces(owner), 0, "nonce unchanged");
    }

    function test_tamperedField_reverts() public {
        bytes memory signature = signed(OWNER_KEY, id, 0);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidSignature.selector, id, owner));
        vm.prank(relayer);
        grants.issueGrantBySig(id, grantee, trainingPurpose, 0, expiresAt + 1, noTerms, 0, deadline, signature);
    }

    function test_malformedSignature_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidSignature.selector, id, owner));
        submit(id, 0, hex"1234");
    }

    function test_replayedNonce_reverts() public {
        bytes memory signature = signed(OWNER_KEY, id, 0);
        submit(id, 0, signature);
        vm.prank(owner);
        grants.revokeGrant(id, grantee, trainingPurpose);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidNonce.selector, owner, 1, 0));
        submit(id, 0, signature);
        assertFalse(authorised(), "replay did not restore the revoked grant");
    }

    function test_futureNonce_reverts() public {
        bytes memory signature = signed(OWNER_KEY, id, 5);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidNonce.selector, owner, 0, 5));
        submit(id, 5, signature);
    }

    function test_deadline_boundary() public {
        bytes memory signature = signed(OWNER_KEY, id, 0);
        vm.warp(deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsSignatureExpired.selector, deadline, deadline + 1)
        );
        submit(id, 0, signature);
        assertFalse(authorised(), "not issued after the deadline");
        vm.warp(deadline);
        submit(id, 0, signature);
        assertTrue(authorised(), "valid at the deadline");
    }

    function test_unknownDataset_reverts() public {
        uint256 missing = uint256(rootOf(9));
        bytes memory signature = signed(OWNER_KEY, missing, 0);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsUnknownDataset.selector, missing));
        submit(missing, 0, signature);
    }

    function test_retiredDataset_reverts() public {
        vm.prank(owner);
        registry.retire(id);
        bytes memory signature = signed(OWNER_KEY, id, 0);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsDatasetRetired.selector, id));
        submit(id, 0, signature);
        assertEq(grants.nonces(owner), 0, "nonce not consumed by a failed grant");
    }

    function test_signatureOfPreviousOwner_reverts() public {
        bytes memory signature = signed(OWNER_KEY, id, 0);
        vm.prank(owner);
        registry.transferFrom(owner, other, id);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidSignature.selector, id, other));
        submit(id, 0, signature);
    }

    function test_eip1271WalletThatApproves() public {
        MockSignerWallet wallet = new MockSignerWallet(owner);
        vm.prank(owner);
        wallet.execute(address(registry), abi.encodeCall(registry.register, (rootOf(2), 0, "")));
        uint256 walletDataset = uint256(rootOf(2));
        assertEq(registry.ownerOf(walletDataset), address(wallet), "wallet owns the deed");
        submit(walletDataset, 0, signed(OWNER_KEY, walletDataset, 0));
        assertTrue(grants.isAuthorized(walletDataset, grantee, trainingPurpose), "wallet-approved grant");
        assertEq(grants.nonces(address(wallet)), 1, "wallet nonce consumed");
    }

    function test_eip1271WalletThatApproves_rejectsOtherSigner() public {
        MockSignerWallet wallet = new MockSignerWallet(owner);
        vm.prank(owner);
        wallet.execute(address(registry), abi.encodeCall(registry.register, (rootOf(2), 0, "")));
        uint256 walletDataset = uint256(rootOf(2));
        bytes memory signature = signed(OTHER_KEY, walletDataset, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidSignature.selector, walletDataset, address(wallet))
        );
        submit(walletDataset, 0, signature);
    }

    function test_eip1271WalletThatRefuses() public {
        MockRejectingWallet wallet = new MockRejectingWallet();
        wallet.execute(address(registry), abi.encodeCall(registry.register, (rootOf(3), 0, "")));
        uint256 walletDataset = uint256(rootOf(3));
        bytes memory signature = signed(OWNER_KEY, walletDataset, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidSignature.selector, walletDataset, address(wallet))
        );
        submit(walletDataset, 0, signature);
        assertFalse(grants.isAuthorized(walletDataset, grantee, trainingPurpose), "no grant");
    }

    function testFuzz_issueGrantBySig(uint256 key, address to, bytes32 purpose, uint64 end, uint256 wait) public {
        key = bound(key, 1, 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140);
        vm.assume(to != address(0) && purpose != bytes32(0));
        end = uint64(bound(end, START, type(uint64).max));
        wait = bound(wait, 0, 2 hours);
        address signer = vm.addr(key);
        vm.assume(signer.code.length == 0);
        uint256 dataset = registerAs(signer, keccak256(abi.encode(key, "fuzz")));
        bytes memory signature = signDigest(key, grantDigest(dataset, to, purpose, 0, end, 0, deadline));
        vm.warp(START + wait);
        bool late = block.timestamp > deadline;
        bool over = end < block.timestamp;
        if (late) {
            vm.expectRevert(
                abi.encodeWithSelector(IUsageGrants.UsageGrantsSignatureExpired.selector, deadline, block.timestamp)
            );
        } else if (over) {
            vm.expectRevert(
                abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidWindow.selector, 0, end, block.timestamp)
            );
        }
        vm.prank(relayer);
        grants.issueGrantBySig(dataset, to, purpose, 0, end, noTerms, 0, deadline, signature);
        assertEq(grants.nonces(signer), late || over ? 0 : 1, "nonce");
        assertEq(grants.isAuthorized(dataset, to, purpose), !(late || over), "authorised iff accepted");
    }

    // ------------------------------------------------ revocation is final

    function revokeAs(address who) internal {
        vm.prank(who);
        grants.revokeGrant(id, grantee, trainingPurpose);
    }

    function expectFinal(uint256 datasetId) internal {
        vm.expectRevert(
            abi.encodeWithSelector(
                IUsageGrants.UsageGrantsRevocationFinal.selector, datasetId, grantee, trainingPurpose
            )
        );
    }

    function test_revocationFinal_pendingSignatureCannotRecreateRevokedGrant() public {
        // The owner gave out a signature, then granted directly and revoked.
        bytes memory pending = signed(OWNER_KEY, id, 0);
        grantAs(owner, id, grantee, 0, expiresAt);
        revokeAs(owner);
        expectFinal(id);
        submit(id, 0, pending);
        assertFalse(authorised(), "still revoked");
        assertTrue(grants.getGrant(id, grantee, trainingPurpose).revoked, "stored flag unchanged");
        assertEq(grants.nonces(owner), 0, "nonce not consumed");
    }

    function test_revocationFinal_pendingSignatureCannotOverwriteReissuedGrant() public {
        bytes memory pending = signed(OWNER_KEY, id, 0);
        grantAs(owner, id, grantee, 0, expiresAt);
        revokeAs(owner);
        grantAs(owner, id, grantee, START + 1 days, START + 2 days);
        expectFinal(id);
        submit(id, 0, pending);
        IUsageGrants.Grant memory g = grants.getGrant(id, grantee, trainingPurpose);
        assertEq(uint256(g.notBefore), START + 1 days, "re-issued window kept (start)");
        assertEq(uint256(g.expiresAt), START + 2 days, "re-issued window kept (end)");
        assertEq(grants.nonces(owner), 0, "nonce not consumed");
    }

    function test_revocationFinal_signedGrantRevokedThenRedeemedAgain() public {
        // A grant created by signature, revoked, and a second signature for the same key.
        submit(id, 0, signed(OWNER_KEY, id, 0));
        revokeAs(owner);
        bytes memory later = signed(OWNER_KEY, id, 1);
        expectFinal(id);
        submit(id, 1, later);
        assertFalse(authorised(), "still revoked");
    }

    function test_revocationFinal_afterRenounce() public {
        bytes memory pending = signed(OWNER_KEY, id, 0);
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.prank(grantee);
        grants.renounceGrant(id, trainingPurpose);
        expectFinal(id);
        submit(id, 0, pending);
        assertFalse(authorised(), "renounced stays renounced");
    }

    function test_revocationFinal_onlyForTheRevokedKey() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        revokeAs(owner);
        // Another purpose for the same grantee and dataset is a different key.
        bytes32 analytics = grants.ANALYTICS();
        bytes memory signature = signDigest(OWNER_KEY, grantDigest(id, grantee, analytics, 0, expiresAt, 0, deadline));
        vm.prank(relayer);
        grants.issueGrantBySig(id, grantee, analytics, 0, expiresAt, noTerms, 0, deadline, signature);
        assertTrue(grants.isAuthorized(id, grantee, analytics), "other purpose unaffected");
    }

    function test_revocationFinal_newOwnerSignaturesWork() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        revokeAs(owner);
        vm.prank(owner);
        registry.transferFrom(owner, other, id);
        vm.expectEmit(true, true, true, true, address(grants));
        emit IUsageGrants.GrantIssued(id, grantee, trainingPurpose, 0, expiresAt, 0, 0, 0, 0);
        submit(id, 0, signed(OTHER_KEY, id, 0));
        assertTrue(authorised(), "the new owner's signature grants in the new epoch");
        assertEq(uint256(grants.getGrant(id, grantee, trainingPurpose).epoch), 1, "epoch 1");
    }

    function test_revocationFinal_newOwnerRevokingStaleGrantBlocksItsOwnSignatures() public {
        grantAs(owner, id, grantee, 0, expiresAt);
        vm.prank(owner);
        registry.transferFrom(owner, other, id);
        bytes memory pending = signed(OTHER_KEY, id, 0);
        revokeAs(other);
        expectFinal(id);
        submit(id, 0, pending);
        assertEq(grants.nonces(other), 0, "nonce not consumed");
    }

    function test_revocationFinal_forWalletOwner() public {
        MockSignerWallet wallet = new MockSignerWallet(owner);
        vm.prank(owner);
        wallet.execute(address(registry), abi.encodeCall(registry.register, (rootOf(2), 0, "")));
        uint256 walletDataset = uint256(rootOf(2));
        bytes memory pending = signed(OWNER_KEY, walletDataset, 0);
        vm.startPrank(owner);
        wallet.execute(
            address(grants), abi.encodeWithSignature(
                "issueGrant(uint256,address,bytes32,uint64,uint64)", walletDataset, grantee, trainingPurpose, 0, expiresAt
            )
        );
        wallet.execute(address(grants), abi.encodeCall(grants.revokeGrant, (walletDataset, grantee, trainingPurpose)));
        vm.stopPrank();
        expectFinal(walletDataset);
        submit(walletDataset, 0, pending);
        assertFalse(grants.isAuthorized(walletDataset, grantee, trainingPurpose), "still revoked");
        assertEq(grants.nonces(address(wallet)), 0, "wallet nonce not consumed");
    }

    function holderKey(uint256 transfers) internal pure returns (uint256) {
        return transfers % 2 == 0 ? OWNER_KEY : OTHER_KEY;
    }

    /// @dev Passes the deed on `count` times between owner and other; returns the holder.
    function transferTimes(uint256 count) internal returns (address holder) {
        for (uint256 i; i < count; ++i) {
            address from = vm.addr(holderKey(i));
            vm.prank(from);
            registry.transferFrom(from, vm.addr(holderKey(i + 1)), id);
        }
        holder = vm.addr(holderKey(count));
    }

    function testFuzz_revocationFinal(uint8 transfers, bool renounce, uint64 reissueEnd, bool reissue) public {
        transfers = uint8(bound(transfers, 0, 4));
        reissueEnd = uint64(bound(reissueEnd, START, type(uint64).max));
        address holder = transferTimes(transfers);
        uint256 nonce = grants.nonces(holder);
        bytes memory pending = signed(holderKey(transfers), id, nonce);
        grantAs(holder, id, grantee, 0, expiresAt);
        if (renounce) {
            vm.prank(grantee);
            grants.renounceGrant(id, trainingPurpose);
        } else {
            revokeAs(holder);
        }
        if (reissue) grantAs(holder, id, grantee, 0, reissueEnd);
        expectFinal(id);
        submit(id, nonce, pending);
        assertEq(authorised(), reissue, "only the direct re-issue authorises");
        uint256 kept = grants.getGrant(id, grantee, trainingPurpose).expiresAt;
        assertEq(kept, reissue ? reissueEnd : expiresAt, "stored grant kept");
        // One more transfer: a new epoch, and the new holder's signature works.
        address next = vm.addr(holderKey(transfers + 1));
        vm.prank(holder);
        registry.transferFrom(holder, next, id);
        nonce = grants.nonces(next);
        submit(id, nonce, signed(holderKey(transfers + 1), id, nonce));
        assertTrue(authorised(), "new epoch, new owner's signature");
    }

    // --------------------------------------------------- invalidateNonces

    function test_invalidateNonces_cancelsUnredeemedSignaturesAndEmits() public {
        bytes memory first = signed(OWNER_KEY, id, 0);
        bytes memory second = signed(OWNER_KEY, id, 1);
        vm.expectEmit(true, true, true, true, address(grants));
        emit IUsageGrants.NoncesInvalidated(owner, 2);
        vm.prank(owner);
        grants.invalidateNonces(1);
        assertEq(grants.nonces(owner), 2, "moved past 1");
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidNonce.selector, owner, 2, 0));
        submit(id, 0, first);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidNonce.selector, owner, 2, 1));
        submit(id, 1, second);
        assertFalse(authorised(), "neither cancelled signature granted");
        submit(id, 2, signed(OWNER_KEY, id, 2));
        assertTrue(authorised(), "a signature with the new nonce works");
    }

    function test_invalidateNonces_currentNonceOnly() public {
        bytes memory pending = signed(OWNER_KEY, id, 0);
        vm.prank(owner);
        grants.invalidateNonces(0);
        assertEq(grants.nonces(owner), 1, "nonce 0 cancelled");
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidNonce.selector, owner, 1, 0));
        submit(id, 0, pending);
    }

    function test_invalidateNonces_revertsWhenNotAhead() public {
        vm.startPrank(owner);
        grants.invalidateNonces(4);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsNonceNotAhead.selector, owner, 5, 3));
        grants.invalidateNonces(3);
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsNonceNotAhead.selector, owner, 5, 4));
        grants.invalidateNonces(4);
        vm.expectRevert(
            abi.encodeWithSelector(IUsageGrants.UsageGrantsNonceNotAhead.selector, owner, 5, type(uint256).max)
        );
        grants.invalidateNonces(type(uint256).max);
        vm.stopPrank();
        assertEq(grants.nonces(owner), 5, "unchanged by the refused calls");
    }

    function test_invalidateNonces_onlyTheCallersNonce() public {
        vm.prank(other);
        grants.invalidateNonces(9);
        assertEq(grants.nonces(other), 10, "caller's nonce");
        assertEq(grants.nonces(owner), 0, "the dataset owner's nonce untouched");
        submit(id, 0, signed(OWNER_KEY, id, 0));
        assertTrue(authorised(), "owner's signature unaffected");
    }

    function test_invalidateNonces_lastNonceCannotWrap() public {
        vm.prank(owner);
        grants.invalidateNonces(type(uint256).max - 1);
        assertEq(grants.nonces(owner), type(uint256).max, "at the last nonce");
        bytes memory last = signed(OWNER_KEY, id, type(uint256).max);
        // Consuming the last nonce would wrap to 0 and revive used signatures: it reverts instead.
        vm.expectRevert(abi.encodeWithSignature("Panic(uint256)", 0x11));
        submit(id, type(uint256).max, last);
        assertEq(grants.nonces(owner), type(uint256).max, "unchanged");
    }

    function test_invalidateNonces_byWalletOwner() public {
        MockSignerWallet wallet = new MockSignerWallet(owner);
        vm.prank(owner);
        wallet.execute(address(registry), abi.encodeCall(registry.register, (rootOf(2), 0, "")));
        uint256 walletDataset = uint256(rootOf(2));
        bytes memory pending = signed(OWNER_KEY, walletDataset, 0);
        vm.prank(owner);
        wallet.execute(address(grants), abi.encodeCall(grants.invalidateNonces, (0)));
        assertEq(grants.nonces(address(wallet)), 1, "wallet's nonce moved");
        vm.expectRevert(abi.encodeWithSelector(IUsageGrants.UsageGrantsInvalidNonce.selector, address(wallet), 1, 0));
        submit(walletDataset, 0, pending);
    }

    function testFuzz_invalidateNonces(address caller, uint256 first, uint256 second) public {
        first = bound(first, 0, type(uint256).max - 2);
        vm.expectEmit(true, true, true, true, address(grants));
        emit IUsageGrants.NoncesInvalidated(caller, first + 1);
        vm.prank(caller);
        grants.invalidateNonces(first);
        assertEq(grants.nonces(caller), first + 1, "moved past first");
        bool ahead = second > first && second != type(uint256).max;
        if (!ahead) {
            vm.expectRevert(
                abi.encodeWithSelector(IUsageGrants.UsageGrantsNonceNotAhead.selector, caller, first + 1, second)
            );
        }
        vm.prank(caller);
        grants.invalidateNonces(second);
        assertEq(grants.nonces(caller), ahead ? second + 1 : first + 1, "forward only");
    }

    function test_mockSignerWallet_onlySignerDrivesIt() public {
        MockSignerWallet wallet = new MockSignerWallet(owner);
        assertEq(wallet.signer(), owner, "signer");
        vm.expectRevert(abi.encodeWithSelector(MockSignerWallet.MockSignerWalletNotSigner.selector, other));
        vm.prank(other);
        wallet.execute(address(registry), abi.encodeCall(registry.register, (rootOf(2), 0, "")));
        assertEq(registry.balanceOf(address(wallet)), 0, "nothing registered");
    }
}
