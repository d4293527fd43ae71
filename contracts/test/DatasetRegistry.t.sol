// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IDatasetRegistry} from "../interfaces/IDatasetRegistry.sol";
import {Fixture} from "./utils/Fixture.sol";

contract DatasetRegistryTest is Fixture {
    // ------------------------------------------------------------- register

    function test_register_mintsDeedToCallerAndEmits() public {
        bytes32 root = rootOf(1);
        uint256 id = uint256(root);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IERC721.Transfer(address(0), owner, id);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IDatasetRegistry.DatasetRegistered(id, owner, 0, "ipfs://about");
        vm.prank(owner);
        uint256 returned = registry.register(root, 0, "ipfs://about");

        assertEq(returned, id, "datasetId = uint256(contentRoot)");
        assertEq(registry.ownerOf(id), owner, "deed holder");
        assertEq(registry.balanceOf(owner), 1, "balance");
        (address holder, uint32 epoch, bool retired) = registry.datasetState(id);
        assertEq(holder, owner, "state owner");
        assertEq(uint256(epoch), 0, "a fresh deed starts at epoch 0");
        assertFalse(retired, "not retired");
        assertFalse(registry.isRetired(id), "isRetired");
    }

    function test_register_linksParentVersion() public {
        uint256 parent = registerAs(owner, rootOf(1));
        bytes32 child = rootOf(2);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IDatasetRegistry.DatasetRegistered(uint256(child), other, parent, "v2");
        vm.prank(other);
        registry.register(child, parent, "v2");
        assertEq(registry.ownerOf(uint256(child)), other, "another party may publish a version");
    }

    function test_register_revertsOnZeroRoot() public {
        vm.expectRevert(abi.encodeWithSelector(IDatasetRegistry.DatasetRegistryZeroRoot.selector));
        vm.prank(owner);
        registry.register(bytes32(0), 0, "");
        assertEq(registry.balanceOf(owner), 0, "nothing minted");
    }

    function test_register_revertsOnDuplicateNamingTheOwner() public {
        uint256 id = registerAs(owner, rootOf(1));
        vm.expectRevert(abi.encodeWithSelector(IDatasetRegistry.DatasetRegistryAlreadyRegistered.selector, id, owner));
        vm.prank(other);
        registry.register(rootOf(1), 0, "");
        assertEq(registry.ownerOf(id), owner, "deed unchanged");
    }

    function test_register_revertsOnUnknownParent() public {
        uint256 missing = uint256(rootOf(99));
        vm.expectRevert(abi.encodeWithSelector(IDatasetRegistry.DatasetRegistryUnknownParent.selector, missing));
        vm.prank(owner);
        registry.register(rootOf(1), missing, "");
        assertEq(registry.balanceOf(owner), 0, "nothing minted");
    }

    function testFuzz_register(bytes32 root, address caller, uint256 parentSeed) public {
        vm.assume(root != bytes32(0) && caller != address(0) && caller.code.length == 0);
        uint256 parent = parentSeed % 2 == 0 ? 0 : registerAs(address(0xFA), rootOf(parentSeed));
        vm.assume(uint256(root) != parent);
        vm.prank(caller);
        uint256 id = registry.register(root, parent, "uri");
        assertEq(id, uint256(root), "id");
        assertEq(registry.ownerOf(id), caller, "owner");
        vm.expectRevert(abi.encodeWithSelector(IDatasetRegistry.DatasetRegistryAlreadyRegistered.selector, id, caller));
        registry.register(root, 0, "");
    }

    // --------------------------------------------------------------- retire

    function test_retire_byOwnerEmitsAndFlags() public {
        uint256 id = registerAs(owner, rootOf(1));
        vm.expectEmit(true, true, true, true, address(registry));
        emit IDatasetRegistry.DatasetRetired(id);
        vm.prank(owner);
        registry.retire(id);
        assertTrue(registry.isRetired(id), "retired");
        (address holder,, bool retired) = registry.datasetState(id);
        assertTrue(retired, "state retired");
        assertEq(holder, owner, "deed kept");
    }

    function test_retire_byApprovedOperator() public {
        uint256 id = registerAs(owner, rootOf(1));
        vm.prank(owner);
        registry.setApprovalForAll(operator, true);
        vm.prank(operator);
        registry.retire(id);
        assertTrue(registry.isRetired(id), "operator may retire");
    }

    function test_retire_revertsForUnknownDataset() public {
        uint256 missing = uint256(rootOf(5));
        vm.expectRevert(abi.encodeWithSelector(IDatasetRegistry.DatasetRegistryUnknownDataset.selector, missing));
        registry.retire(missing);
        assertFalse(registry.isRetired(missing), "unchanged");
    }

    function test_retire_revertsForStranger() public {
        uint256 id = registerAs(owner, rootOf(1));
        vm.expectRevert(abi.encodeWithSelector(IDatasetRegistry.DatasetRegistryNotOwner.selector, id, other, owner));
        vm.prank(other);
        registry.retire(id);
        assertFalse(registry.isRetired(id), "unchanged");
    }

    function test_retire_revertsForSingleTokenApproval() public {
        // Only operators (isApprovedForAll) act for the owner; a one-token approval is for transfers.
        uint256 id = registerAs(owner, rootOf(1));
        vm.prank(owner);
        registry.approve(other, id);
        vm.expectRevert(abi.encodeWithSelector(IDatasetRegistry.DatasetRegistryNotOwner.selector, id, other, owner));
        vm.prank(other);
        registry.retire(id);
    }

    function test_retire_revertsWhenAlreadyRetired() public {
        uint256 id = registerAs(owner, rootOf(1));
        vm.prank(owner);
        registry.retire(id);
        vm.expectRevert(abi.encodeWithSelector(IDatasetRegistry.DatasetRegistryAlreadyRetired.selector, id));
        vm.prank(owner);
        registry.retire(id);
        assertTrue(registry.isRetired(id), "still retired");
    }

    function testFuzz_retire(address caller, bool approve) public {
        vm.assume(caller != address(0));
        uint256 id = registerAs(owner, rootOf(1));
        if (approve && caller != owner) {
            vm.prank(owner);
            registry.setApprovalForAll(caller, true);
        }
        bool allowed = caller == owner || approve;
        if (!allowed) {
            vm.expectRevert(
                abi.encodeWithSelector(IDatasetRegistry.DatasetRegistryNotOwner.selector, id, caller, owner)
            );
        }
        vm.prank(caller);
        registry.retire(id);
        assertEq(registry.isRetired(id), allowed, "retired iff owner or operator");
    }

    // ------------------------------------------------------ transfer, epochs

    function test_transfer_startsNewEpoch() public {
        uint256 id = registerAs(owner, rootOf(1));
        vm.prank(owner);
        registry.transferFrom(owner, other, id);
        (address holder, uint32 epoch,) = registry.datasetState(id);
        assertEq(holder, other, "new holder");
        assertEq(uint256(epoch), 1, "epoch bumped");
    }

    function test_transfer_ofRetiredDatasetKeepsItRetired() public {
        uint256 id = registerAs(owner, rootOf(1));
        vm.startPrank(owner);
        registry.retire(id);
        registry.transferFrom(owner, other, id);
        vm.stopPrank();
        assertTrue(registry.isRetired(id), "retirement is irreversible");
    }

    function testFuzz_transfer_epochCountsTransfers(uint8 hops) public {
        uint256 id = registerAs(owner, rootOf(1));
        address holder = owner;
        for (uint256 i; i < hops; ++i) {
            address next = address(uint160(0x1000 + i));
            vm.prank(holder);
            registry.transferFrom(holder, next, id);
            holder = next;
        }
        (address current, uint32 epoch,) = registry.datasetState(id);
        assertEq(current, holder, "holder");
        assertEq(uint256(epoch), hops, "one epoch per transfer");
    }

    // ----------------------------------------------------------------- views

    function test_datasetState_unknownIsZero() public view {
        (address holder, uint32 epoch, bool retired) = registry.datasetState(uint256(rootOf(7)));
        assertEq(holder, address(0), "no owner");
        assertEq(uint256(epoch), 0, "epoch");
        assertFalse(retired, "retired");
    }

    function test_consentWords_packsEpochAndRetired() public {
        uint256 a = registerAs(owner, rootOf(1));
        uint256 b = registerAs(owner, rootOf(2));
        vm.startPrank(owner);
        registry.transferFrom(owner, other, a);
        registry.retire(b);
        vm.stopPrank();
        uint256[] memory ids = new uint256[](3);
        ids[0] = a;
        ids[1] = b;
        ids[2] = uint256(rootOf(3));
        uint256[] memory words = registry.consentWords(ids);
        assertEq(words.length, 3, "one word per id");
        assertEq(words[0], 1, "epoch 1, live");
        assertEq(words[1], registry.RETIRED_BIT(), "epoch 0, retired");
        assertEq(words[2], 0, "unknown");
    }

    function test_supportsInterface() public view {
        assertTrue(registry.supportsInterface(type(IDatasetRegistry).interfaceId), "IDatasetRegistry");
        assertTrue(registry.supportsInterface(type(IERC721).interfaceId), "IERC721");
        assertFalse(registry.supportsInterface(0xffffffff), "not 0xffffffff");
    }
}
