// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {DatasetRegistry} from "./DatasetRegistry.sol";
import {IUsageGrants} from "./interfaces/IUsageGrants.sol";

/// @title Usage grants on registered datasets
/// @notice Purpose-scoped, time-limited, revocable rights. A grant is one storage slot keyed
/// by keccak256(datasetId, grantee, purpose). A grant only authorises within the deed epoch
/// it was issued in: after a transfer of the deed the new owner must grant again. A revocation
/// is final for signatures: a key revoked or renounced in the deed's current epoch can be
/// issued again only directly by the owner, never by a signature given out before. Terms
/// (`GrantTerms`) live in the same slot; a round commit checks them where it checks the grant.
contract UsageGrants is EIP712, IUsageGrants {
    /// @notice Training a model on the data (ERC-7517 / CAWG `ai-training`).
    bytes32 public constant AI_TRAINING = keccak256("ai-training");
    /// @notice Using the data as model input at inference time (`ai-inference`).
    bytes32 public constant AI_INFERENCE = keccak256("ai-inference");
    /// @notice Text and data mining (`data-mining`).
    bytes32 public constant DATA_MINING = keccak256("data-mining");
    /// @notice Statistical analysis without model training (`analytics`).
    bytes32 public constant ANALYTICS = keccak256("analytics");

    /// @notice The EIP-712 struct type of an off-chain grant (domain version 2: with terms).
    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(uint256 datasetId,address grantee,bytes32 purpose,uint64 notBefore,uint64 expiresAt,uint16 epsilonHundredths,uint8 deltaNegExponent,uint8 minParticipants,uint16 maxRounds,uint256 nonce,uint256 deadline)"
    );

    uint256 private constant _RETIRED_BIT = 1 << 32;

    DatasetRegistry private immutable _registry;

    mapping(bytes32 grantKey => Grant) private _grants;
    mapping(address owner => uint256) private _nonces;

    constructor(DatasetRegistry registry_) EIP712("UsageGrants", "2") {
        _registry = registry_;
    }

    /// @notice The DatasetRegistry whose deeds these grants are about.
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc IUsageGrants
    function issueGrant(uint256 datasetId, address grantee, bytes32 purpose, uint64 notBefore, uint64 expiresAt)
        external
    {
        (address owner, uint32 epoch, bool retired) = _registry.datasetState(datasetId);
        _requireOwnerOrOperator(datasetId, owner);
        _requireIssuable(datasetId, retired, grantee, purpose, notBefore, expiresAt);
        Grant storage grant = _grants[_grantKey(datasetId, grantee, purpose)];
        _issue(grant, datasetId, grantee, purpose, notBefore, expiresAt, epoch, 0);
    }

    /// @inheritdoc IUsageGrants
    function issueGrant(
        uint256 datasetId,
        address grantee,
        bytes32 purpose,
        uint64 notBefore,
        uint64 expiresAt,
        GrantTerms calldata terms
    ) external {
        (address owner, uint32 epoch, bool retired) = _registry.datasetState(datasetId);
        _requireOwnerOrOperator(datasetId, owner);
        _requireIssuable(datasetId, retired, grantee, purpose, notBefore, expiresAt);
        uint48 packed = _packTerms(terms);
        Grant storage grant = _grants[_grantKey(datasetId, grantee, purpose)];
        _issue(grant, datasetId, grantee, purpose, notBefore, expiresAt, epoch, packed);
    }

    /// @inheritdoc IUsageGrants
    function issueGrantBySig(
        uint256 datasetId,
        address grantee,
        bytes32 purpose,
        uint64 notBefore,
        uint64 expiresAt,
        GrantTerms calldata terms,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external {
        // The deadline bounds the signature, not the grant; it is inclusive like expiresAt.
        if (block.timestamp > deadline) revert UsageGrantsSignatureExpired(deadline, block.timestamp);
        uint32 epoch;
        {
            // Scoped: the eleven arguments leave little stack. Every later check reverts the
            // whole call, so consuming the nonce here is undone with it.
            address owner;
            bool retired;
            (owner, epoch, retired) = _registry.datasetState(datasetId);
            if (owner == address(0)) revert UsageGrantsUnknownDataset(datasetId);
            {
                uint256 expected = _nonces[owner];
                if (nonce != expected) revert UsageGrantsInvalidNonce(owner, expected, nonce);
                bytes32 digest = _hashTypedDataV4(_grantStructHash());
                if (!SignatureChecker.isValidSignatureNowCalldata(owner, digest, signature)) {
                    revert UsageGrantsInvalidSignature(datasetId, owner);
                }
            }
            _useNonce(owner);
            _requireIssuable(datasetId, retired, grantee, purpose, notBefore, expiresAt);
        }
        Grant storage grant = _grants[_grantKey(datasetId, grantee, purpose)];
        // The sticky record outlives a direct re-issue, so a signature from before the
        // revocation can neither re-create the grant nor overwrite the re-issued one.
        if (grant.revokedOnce && grant.revokedEpoch == epoch) {
            revert UsageGrantsRevocationFinal(datasetId, grantee, purpose);
        }
        _issue(grant, datasetId, grantee, purpose, notBefore, expiresAt, epoch, _packTerms(terms));
    }

    /// @inheritdoc IUsageGrants
    /// @dev A grant only exists on a registered dataset (deeds are never burnt), so the
    /// grant is looked up first; the deed's current epoch is recorded with the revocation.
    function revokeGrant(uint256 datasetId, address grantee, bytes32 purpose) external {
        Grant storage grant = _requireRevocable(datasetId, grantee, purpose);
        (address owner, uint32 epoch,) = _registry.datasetState(datasetId);
        _requireOwnerOrOperator(datasetId, owner);
        _revoke(datasetId, grantee, purpose, grant, epoch);
    }

    /// @inheritdoc IUsageGrants
    function renounceGrant(uint256 datasetId, bytes32 purpose) external {
        Grant storage grant = _requireRevocable(datasetId, msg.sender, purpose);
        (, uint32 epoch,) = _registry.datasetState(datasetId);
        _revoke(datasetId, msg.sender, purpose, grant, epoch);
    }

    /// @inheritdoc IUsageGrants
    function invalidateNonces(uint256 upTo) external {
        uint256 current = _nonces[msg.sender];
        // upTo = 2**256 - 1 would wrap the next nonce to zero and revive every used signature.
        if (upTo < current || upTo == type(uint256).max) {
            revert UsageGrantsNonceNotAhead(msg.sender, current, upTo);
        }
        _invalidateNonces(msg.sender, upTo + 1);
    }

    /// @inheritdoc IUsageGrants
    function isAuthorized(uint256 datasetId, address grantee, bytes32 purpose) external view returns (bool) {
        (Status status,) = _statusOf(datasetId, grantee, purpose);
        return status == Status.Authorized;
    }

    /// @inheritdoc IUsageGrants
    function authorizationStatus(uint256 datasetId, address grantee, bytes32 purpose)
        external
        view
        returns (Status status)
    {
        (status,) = _statusOf(datasetId, grantee, purpose);
    }

    /// @inheritdoc IUsageGrants
    /// @dev One registry call for the whole list (this runs once per round commit, for up
    /// to 256 datasets): per dataset it costs the grant slot and the consent slot.
    function requireAuthorized(uint256[] calldata datasetIds, address grantee, bytes32 purpose) external view {
        // No round: a count no minimum exceeds and round 0, which no maximum forbids.
        _requireAuthorized(datasetIds, grantee, purpose, type(uint256).max, 0);
    }

    /// @inheritdoc IUsageGrants
    /// @dev The terms are read from the word the authorisation check already loaded: two
    /// shifts and compares per participant, no extra storage read.
    function requireRoundAuthorized(uint256[] calldata datasetIds, address grantee, bytes32 purpose, uint64 round)
        external
        view
    {
        _requireAuthorized(datasetIds, grantee, purpose, datasetIds.length, round);
    }

    /// @inheritdoc IUsageGrants
    /// @dev The loop of `_requireAuthorized` with the participant minimum tracked instead of
    /// checked. The fast-path test is repeated rather than shared: an internal call per
    /// participant would add gas to every bitmask round as well.
    function requireBatchAuthorized(uint256[] calldata datasetIds, address grantee, bytes32 purpose, uint64 round)
        external
        view
        returns (uint8 minParticipants, uint256 strictestDatasetId)
    {
        uint256[] memory consent = _registry.consentWords(datasetIds);
        for (uint256 i; i < datasetIds.length; ++i) {
            uint256 datasetId = datasetIds[i];
            Grant storage stored = _grants[_grantKey(datasetId, grantee, purpose)];
            uint256 word;
            assembly ("memory-safe") {
                word := sload(stored.slot)
            }
            // The raw-slot test of `_requireAuthorized`.
            if (
                uint64(word >> 64) != 0 && uint8(word >> 160) == 0 && uint32(word >> 128) == consent[i]
                    && _timeStatus(uint64(word), uint64(word >> 64)) == Status.Authorized
            ) {
                uint16 maxRounds = uint16(word >> 240);
                if (maxRounds != 0 && round > maxRounds) {
                    revert UsageGrantsRoundLimitExceeded(datasetId, grantee, purpose, maxRounds, round);
                }
                uint8 required = uint8(word >> 232);
                if (required > minParticipants) {
                    minParticipants = required;
                    strictestDatasetId = datasetId;
                }
                continue;
            }
            Grant memory grant = stored;
            _revertWith(_status(datasetId, grant, consent[i]), datasetId, grantee, purpose, grant);
        }
    }

    /// @dev The loop of `requireAuthorized` and `requireRoundAuthorized`.
    function _requireAuthorized(
        uint256[] calldata datasetIds,
        address grantee,
        bytes32 purpose,
        uint256 participants,
        uint64 round
    ) private view {
        uint256[] memory consent = _registry.consentWords(datasetIds);
        for (uint256 i; i < datasetIds.length; ++i) {
            uint256 datasetId = datasetIds[i];
            Grant storage stored = _grants[_grantKey(datasetId, grantee, purpose)];
            uint256 word;
            assembly ("memory-safe") {
                word := sload(stored.slot)
            }
            // Fast path on the raw slot (notBefore | expiresAt << 64 | epoch << 128 | revoked << 160
            // | revokedOnce << 168 | revokedEpoch << 176 | terms << 208): authorised iff issued, not
            // revoked, and epoch equal to the consent word, which also excludes retirement (bit 32 of
            // the consent word never fits in an epoch). The sticky record does not affect authorisation.
            if (
                uint64(word >> 64) != 0 && uint8(word >> 160) == 0 && uint32(word >> 128) == consent[i]
                    && _timeStatus(uint64(word), uint64(word >> 64)) == Status.Authorized
            ) {
                uint8 minParticipants = uint8(word >> 232);
                if (minParticipants > participants) {
                    revert UsageGrantsTooFewParticipants(datasetId, grantee, purpose, minParticipants, participants);
                }
                uint16 maxRounds = uint16(word >> 240);
                if (maxRounds != 0 && round > maxRounds) {
                    revert UsageGrantsRoundLimitExceeded(datasetId, grantee, purpose, maxRounds, round);
                }
                continue;
            }
            Grant memory grant = stored;
            _revertWith(_status(datasetId, grant, consent[i]), datasetId, grantee, purpose, grant);
        }
    }

    /// @inheritdoc IUsageGrants
    function getGrant(uint256 datasetId, address grantee, bytes32 purpose) external view returns (Grant memory) {
        return _grants[_grantKey(datasetId, grantee, purpose)];
    }

    /// @inheritdoc IUsageGrants
    function nonces(address owner) external view returns (uint256) {
        return _nonces[owner];
    }

    /// @inheritdoc IUsageGrants
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- policy

    /// @dev THE time policy: a window `[notBefore, expiresAt]` is open at `block.timestamp`
    /// with both ends inclusive. Issuance and every authorisation check go through here.
    function _timeStatus(uint64 notBefore, uint64 expiresAt) private view returns (Status) {
        if (block.timestamp < notBefore) return Status.NotYetValid;
        if (block.timestamp > expiresAt) return Status.Expired;
        return Status.Authorized;
    }

    /// @dev Why (datasetId, grantee, purpose) does or does not authorise now.
    function _statusOf(uint256 datasetId, address grantee, bytes32 purpose)
        private
        view
        returns (Status status, Grant memory grant)
    {
        grant = _grants[_grantKey(datasetId, grantee, purpose)];
        uint256[] memory ids = new uint256[](1);
        ids[0] = datasetId;
        status = _status(datasetId, grant, grant.expiresAt == 0 ? 0 : _registry.consentWords(ids)[0]);
    }

    /// @dev The authorisation rule, given the grant and the dataset's consent word (see
    /// `DatasetRegistry.consentWords`). The owner is looked up only to tell an unknown
    /// dataset from a missing grant, which is off the hot path.
    function _status(uint256 datasetId, Grant memory grant, uint256 consent) private view returns (Status) {
        // Issuance requires expiresAt >= block.timestamp > 0, so zero means "never issued".
        if (grant.expiresAt == 0) {
            // Only existence matters on this (failure) path: there is no grant to compare an epoch with.
            // slither-disable-next-line unused-return,calls-loop
            (address owner,,) = _registry.datasetState(datasetId);
            return owner == address(0) ? Status.UnknownDataset : Status.NoGrant;
        }
        if (consent & _RETIRED_BIT != 0) return Status.DatasetRetired;
        if (grant.revoked) return Status.Revoked;
        if (grant.epoch != uint32(consent)) return Status.OwnerChanged;
        return _timeStatus(grant.notBefore, grant.expiresAt);
    }

    function _revertWith(Status status, uint256 datasetId, address grantee, bytes32 purpose, Grant memory grant)
        private
        pure
    {
        if (status == Status.UnknownDataset) revert UsageGrantsUnknownDataset(datasetId);
        if (status == Status.NoGrant) revert UsageGrantsNoGrant(datasetId, grantee, purpose);
        if (status == Status.DatasetRetired) revert UsageGrantsDatasetRetired(datasetId);
        if (status == Status.Revoked) revert UsageGrantsRevoked(datasetId, grantee, purpose);
        if (status == Status.OwnerChanged) revert UsageGrantsOwnerChanged(datasetId, grantee, purpose);
        if (status == Status.NotYetValid) revert UsageGrantsNotYetValid(datasetId, grantee, purpose, grant.notBefore);
        revert UsageGrantsExpired(datasetId, grantee, purpose, grant.expiresAt);
    }

    function _requireOwnerOrOperator(uint256 datasetId, address owner) private view {
        if (owner == address(0)) revert UsageGrantsUnknownDataset(datasetId);
        if (msg.sender != owner && !_registry.isApprovedForAll(owner, msg.sender)) {
            revert UsageGrantsNotOwnerOrOperator(datasetId, msg.sender, owner);
        }
    }

    function _requireIssuable(
        uint256 datasetId,
        bool retired,
        address grantee,
        bytes32 purpose,
        uint64 notBefore,
        uint64 expiresAt
    ) private view {
        if (retired) revert UsageGrantsDatasetRetired(datasetId);
        if (grantee == address(0)) revert UsageGrantsInvalidGrantee(grantee);
        if (purpose == bytes32(0)) revert UsageGrantsInvalidPurpose(purpose);
        if (expiresAt < notBefore || _timeStatus(notBefore, expiresAt) == Status.Expired) {
            revert UsageGrantsInvalidWindow(notBefore, expiresAt, block.timestamp);
        }
    }

    /// @dev EIP-712 `hashStruct` of the v2 `Grant` being redeemed by `issueGrantBySig`. Its eleven
    /// fields are, in type order, exactly the first eleven words of that call's calldata (the
    /// static `GrantTerms` is encoded in place), so they are copied from there: passing them would
    /// not fit the stack. The ABI decoder has checked the plain arguments; the terms' words are
    /// range-checked by `_packTerms`, which every accepting path runs, so a dirty word reverts.
    function _grantStructHash() private pure returns (bytes32 structHash) {
        bytes32 typeHash = GRANT_TYPEHASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typeHash)
            calldatacopy(add(ptr, 0x20), 4, 0x160)
            structHash := keccak256(ptr, 0x180)
        }
    }

    /// @dev The terms as the slot's top 48 bits (epsilonHundredths | deltaNegExponent << 16 |
    /// minParticipants << 24 | maxRounds << 32), checked: epsilon and delta both set or both zero.
    function _packTerms(GrantTerms calldata terms) private pure returns (uint48) {
        uint16 epsilon = terms.epsilonHundredths;
        uint8 delta = terms.deltaNegExponent;
        if ((epsilon == 0) != (delta == 0)) revert UsageGrantsInvalidTerms(epsilon, delta);
        return uint48(epsilon) | (uint48(delta) << 16) | (uint48(terms.minParticipants) << 24)
            | (uint48(terms.maxRounds) << 32);
    }

    /// @dev keccak256(abi.encode(datasetId, grantee, purpose)), hashed in unallocated
    /// memory so the per-dataset loop of `requireAuthorized` does not grow memory.
    function _grantKey(uint256 datasetId, address grantee, bytes32 purpose) private pure returns (bytes32 key) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, datasetId)
            mstore(add(ptr, 0x20), and(grantee, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(ptr, 0x40), purpose)
            key := keccak256(ptr, 0x60)
        }
    }

    // ----------------------------------------------------------- transitions

    /// @dev Issue (or replace) a grant with packed terms `terms` (see `_packTerms`): write, then
    /// emit. The sticky revocation record (`revokedOnce`, `revokedEpoch`) is kept; one SSTORE.
    function _issue(
        Grant storage grant,
        uint256 datasetId,
        address grantee,
        bytes32 purpose,
        uint64 notBefore,
        uint64 expiresAt,
        uint32 epoch,
        uint48 terms
    ) private {
        assembly ("memory-safe") {
            let word := sload(grant.slot)
            // Keep bits 168-207 (revokedOnce, revokedEpoch); revoked (160-167) becomes false.
            let sticky := and(word, shl(168, 0xffffffffff))
            let window := or(shl(64, and(expiresAt, 0xffffffffffffffff)), and(notBefore, 0xffffffffffffffff))
            word := or(or(sticky, shl(208, and(terms, 0xffffffffffff))), or(shl(128, and(epoch, 0xffffffff)), window))
            sstore(grant.slot, word)
        }
        emit GrantIssued(
            datasetId,
            grantee,
            purpose,
            notBefore,
            expiresAt,
            uint16(terms),
            uint8(terms >> 16),
            uint8(terms >> 24),
            uint16(terms >> 32)
        );
    }

    /// @dev A grant that exists and is not yet revoked (guard for revoke and renounce).
    function _requireRevocable(uint256 datasetId, address grantee, bytes32 purpose)
        private
        view
        returns (Grant storage grant)
    {
        grant = _grants[_grantKey(datasetId, grantee, purpose)];
        if (grant.expiresAt == 0) revert UsageGrantsNoGrant(datasetId, grantee, purpose);
        if (grant.revoked) revert UsageGrantsRevoked(datasetId, grantee, purpose);
    }

    /// @dev Revoke (owner, operator) or renounce (grantee) a grant in deed epoch `epoch`:
    /// write, then emit.
    function _revoke(uint256 datasetId, address grantee, bytes32 purpose, Grant storage grant, uint32 epoch)
        private
    {
        grant.revoked = true;
        grant.revokedOnce = true;
        grant.revokedEpoch = epoch;
        emit GrantRevoked(datasetId, grantee, purpose);
    }

    /// @dev Consume the owner's current nonce: write (no event; the GrantIssued that
    /// follows in the same transaction records the use). Checked: `invalidateNonces` can
    /// bring a nonce to 2**256 - 1, and a wrap to zero would revive used signatures.
    function _useNonce(address owner) private {
        ++_nonces[owner];
    }

    /// @dev Cancel the owner's signed grants below `newNonce`: write, then emit.
    function _invalidateNonces(address owner, uint256 newNonce) private {
        _nonces[owner] = newNonce;
        emit NoncesInvalidated(owner, newNonce);
    }
}
