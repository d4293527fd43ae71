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
        grants.issueGrantBySig(datasetId, grantee, trainingPurpose, 0, expiresAt, nonce, deadline, signature);
    }

    function authorised() internal view returns (bool) {
        return grants.isAuthorized(id, grantee, trainingPurpose);
    }

    function test_validSignature_anyoneSubmits() public {
        vm.expectEmit(true, true, true, true, address(grants));
        emit IUsageGrants.GrantIssued(id, grantee, trainingPurpose, 0, expiresAt);
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
        grants.issueGrantBySig(id, grantee, trainingPurpose, 0, expiresAt + 1, 0, deadline, signature);
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
        grants.issueGrantBySig(dataset, to, purpose, 0, end, 0, deadline, signature);
        assertEq(grants.nonces(signer), late || over ? 0 : 1, "nonce");
        assertEq(grants.isAuthorized(dataset, to, purpose), !(late || over), "authorised iff accepted");
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
