// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {DatasetRegistry} from "../../DatasetRegistry.sol";
import {TrainingLedger} from "../../TrainingLedger.sol";
import {UsageGrants} from "../../UsageGrants.sol";
import {IDatasetRegistry} from "../../interfaces/IDatasetRegistry.sol";
import {IUsageGrants} from "../../interfaces/IUsageGrants.sol";
import {TestBase} from "./TestBase.sol";

/// @title The deployed system plus the actors and helpers most tests share
abstract contract Fixture is TestBase {
    uint256 internal constant OWNER_KEY = 0xA11CE;
    uint256 internal constant OTHER_KEY = 0xB0B;
    uint64 internal constant START = 1_700_000_000;

    DatasetRegistry internal registry;
    UsageGrants internal grants;
    TrainingLedger internal ledger;

    address internal owner;
    address internal other;
    address internal operator = address(0x0BE7);
    address internal coordinator = address(0xC0);
    address internal relayer = address(0x5E1A);

    bytes32 internal trainingPurpose;

    function setUp() public virtual {
        vm.warp(START);
        owner = vm.addr(OWNER_KEY);
        other = vm.addr(OTHER_KEY);
        registry = new DatasetRegistry();
        grants = new UsageGrants(registry);
        ledger = new TrainingLedger(IDatasetRegistry(address(registry)), IUsageGrants(address(grants)));
        trainingPurpose = grants.AI_TRAINING();
    }

    function rootOf(uint256 i) internal pure returns (bytes32) {
        return keccak256(abi.encode("dataset", i));
    }

    function registerAs(address who, bytes32 root) internal returns (uint256 datasetId) {
        vm.prank(who);
        datasetId = registry.register(root, 0, "");
    }

    function grantAs(address who, uint256 datasetId, address grantee, uint64 notBefore, uint64 expiresAt) internal {
        vm.prank(who);
        grants.issueGrant(datasetId, grantee, trainingPurpose, notBefore, expiresAt);
    }

    /// @dev All-zero terms: what `issueGrant` without terms stores.
    IUsageGrants.GrantTerms internal noTerms;

    function grantDigest(
        uint256 datasetId,
        address grantee,
        bytes32 purpose,
        uint64 notBefore,
        uint64 expiresAt,
        uint256 nonce,
        uint256 deadline
    ) internal view returns (bytes32) {
        return grantDigest(datasetId, grantee, purpose, notBefore, expiresAt, noTerms, nonce, deadline);
    }

    /// @dev The EIP-712 digest of a v2 `Grant`, spelled out here independently of the contract.
    function grantDigest(
        uint256 datasetId,
        address grantee,
        bytes32 purpose,
        uint64 notBefore,
        uint64 expiresAt,
        IUsageGrants.GrantTerms memory terms,
        uint256 nonce,
        uint256 deadline
    ) internal view returns (bytes32) {
        bytes memory head = abi.encode(
            keccak256(
                "Grant(uint256 datasetId,address grantee,bytes32 purpose,uint64 notBefore,uint64 expiresAt,uint16 epsilonHundredths,uint8 deltaNegExponent,uint8 minParticipants,uint16 maxRounds,uint256 nonce,uint256 deadline)"
            ),
            datasetId,
            grantee,
            purpose,
            notBefore,
            expiresAt
        );
        bytes memory tail = abi.encode(
            terms.epsilonHundredths, terms.deltaNegExponent, terms.minParticipants, terms.maxRounds, nonce, deadline
        );
        bytes32 structHash = keccak256(bytes.concat(head, tail));
        return keccak256(abi.encodePacked("\x19\x01", grants.DOMAIN_SEPARATOR(), structHash));
    }

    function termsOf(uint16 epsilonHundredths, uint8 deltaNegExponent, uint8 minParticipants, uint16 maxRounds)
        internal
        pure
        returns (IUsageGrants.GrantTerms memory)
    {
        return IUsageGrants.GrantTerms(epsilonHundredths, deltaNegExponent, minParticipants, maxRounds);
    }

    function grantWithTermsAs(
        address who,
        uint256 datasetId,
        address grantee,
        uint64 notBefore,
        uint64 expiresAt,
        IUsageGrants.GrantTerms memory terms
    ) internal {
        vm.prank(who);
        grants.issueGrant(datasetId, grantee, trainingPurpose, notBefore, expiresAt, terms);
    }

    function signDigest(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev `count` registered datasets owned by `who`, ascending ids, each granted to the coordinator.
    function grantedDatasets(address who, uint256 count, uint256 salt) internal returns (uint256[] memory ids) {
        bytes32[] memory roots = new bytes32[](count);
        for (uint256 i; i < count; ++i) roots[i] = keccak256(abi.encode(salt, i));
        // insertion sort: small lists only
        for (uint256 i = 1; i < count; ++i) {
            bytes32 key = roots[i];
            uint256 j = i;
            while (j > 0 && roots[j - 1] > key) {
                roots[j] = roots[j - 1];
                --j;
            }
            roots[j] = key;
        }
        ids = new uint256[](count);
        for (uint256 i; i < count; ++i) {
            ids[i] = registerAs(who, roots[i]);
            grantAs(who, ids[i], coordinator, 0, type(uint64).max);
        }
    }
}
