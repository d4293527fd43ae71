// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Purpose-scoped, time-limited, revocable usage rights on datasets
/// @notice A grant is keyed by (datasetId, grantee, purpose). It authorises while
/// `notBefore <= block.timestamp <= expiresAt` (both ends inclusive), it is not revoked,
/// the dataset is not retired and the deed has not changed hands since it was issued.
/// A grant may carry terms (`GrantTerms`): a differential-privacy budget the owner's node
/// spends, a minimum number of participants per round and a maximum round number, the last
/// two enforced by `requireRoundAuthorized` at every round commit.
interface IUsageGrants {
    /// @notice Why a (dataset, grantee, purpose) is or is not authorised now.
    enum Status {
        Authorized,
        NoGrant,
        NotYetValid,
        Expired,
        Revoked,
        DatasetRetired,
        OwnerChanged,
        UnknownDataset
    }

    /// @notice The terms of a grant; all zero = no terms (the default of `issueGrant` without terms).
    /// @dev Encoded to fit the 48 bits left in the grant's slot, so terms cost no extra storage:
    /// - `epsilonHundredths`: the privacy budget epsilon in hundredths (300 = epsilon 3.00;
    ///   0.01 to 655.35). 0 = differential privacy not required.
    /// - `deltaNegExponent`: delta = 10**-deltaNegExponent (5 = delta 1e-5). 0 = no DP. Epsilon
    ///   and delta are both zero or both non-zero (`UsageGrantsInvalidTerms` otherwise).
    ///   The budget is spent by the owner's node across every job under this grant (the chain
    ///   cannot see DP noise); the chain only records it.
    /// - `minParticipants`: a round using this grant must have at least this many participating
    ///   datasets (0 or 1 = no minimum). Counted in datasets: the chain cannot tell whose they are.
    /// - `maxRounds`: a job may use this grant in rounds 1 to `maxRounds` only (0 = no limit).
    struct GrantTerms {
        uint16 epsilonHundredths;
        uint8 deltaNegExponent;
        uint8 minParticipants;
        uint16 maxRounds;
    }

    /// @notice A grant as stored: one slot (bits, low to high: notBefore 0-63, expiresAt 64-127,
    /// epoch 128-159, revoked 160-167, revokedOnce 168-175, revokedEpoch 176-207,
    /// epsilonHundredths 208-223, deltaNegExponent 224-231, minParticipants 232-239,
    /// maxRounds 240-255). The terms fields are those of `GrantTerms`, replaced at every issue.
    /// @dev `revoked` is cleared when the owner issues the grant again directly. `revokedOnce`
    /// is sticky: every revoke or renounce sets it, with the deed epoch it happened in
    /// (`revokedEpoch`), and nothing clears it. While the deed is still in that epoch no signed
    /// grant can (re-)create this key, so a revocation cannot be undone by a signature the
    /// owner gave out earlier. After a transfer of the deed the new owner's signatures work.
    struct Grant {
        uint64 notBefore;
        uint64 expiresAt;
        uint32 epoch;
        bool revoked;
        bool revokedOnce;
        uint32 revokedEpoch;
        uint16 epsilonHundredths;
        uint8 deltaNegExponent;
        uint8 minParticipants;
        uint16 maxRounds;
    }

    /// @notice No deed exists for `datasetId`.
    error UsageGrantsUnknownDataset(uint256 datasetId);
    /// @notice Only the dataset's owner or an operator it approved may do this.
    error UsageGrantsNotOwnerOrOperator(uint256 datasetId, address caller, address owner);
    /// @notice The dataset was retired; it cannot be granted and no grant on it authorises.
    error UsageGrantsDatasetRetired(uint256 datasetId);
    /// @notice The grantee is the zero address.
    error UsageGrantsInvalidGrantee(address grantee);
    /// @notice The purpose is zero.
    error UsageGrantsInvalidPurpose(bytes32 purpose);
    /// @notice The window is empty (`expiresAt < notBefore`) or already over (`expiresAt < now`).
    error UsageGrantsInvalidWindow(uint64 notBefore, uint64 expiresAt, uint256 now_);
    /// @notice There is no grant for this key.
    error UsageGrantsNoGrant(uint256 datasetId, address grantee, bytes32 purpose);
    /// @notice The grant's window has not started.
    error UsageGrantsNotYetValid(uint256 datasetId, address grantee, bytes32 purpose, uint64 notBefore);
    /// @notice The grant's window is over.
    error UsageGrantsExpired(uint256 datasetId, address grantee, bytes32 purpose, uint64 expiresAt);
    /// @notice The grant was revoked by the owner or renounced by the grantee.
    error UsageGrantsRevoked(uint256 datasetId, address grantee, bytes32 purpose);
    /// @notice The grant was issued by an earlier holder of the deed.
    error UsageGrantsOwnerChanged(uint256 datasetId, address grantee, bytes32 purpose);
    /// @notice The signed grant's deadline passed.
    error UsageGrantsSignatureExpired(uint256 deadline, uint256 now_);
    /// @notice The signature is not the dataset owner's (EOA or EIP-1271 wallet).
    error UsageGrantsInvalidSignature(uint256 datasetId, address owner);
    /// @notice The signed nonce is not the owner's next nonce (replayed, cancelled or out of order).
    error UsageGrantsInvalidNonce(address owner, uint256 expected, uint256 given);
    /// @notice The grant was revoked or renounced in the deed's current epoch: a signature
    /// cannot re-create it. The owner can still issue it directly with `issueGrant`.
    error UsageGrantsRevocationFinal(uint256 datasetId, address grantee, bytes32 purpose);
    /// @notice `invalidateNonces(upTo)` must move the caller's nonce forward: `upTo` must be at
    /// least its current nonce `current` (and below 2**256 - 1).
    error UsageGrantsNonceNotAhead(address owner, uint256 current, uint256 upTo);

    /// @notice Epsilon and delta must both be zero (no DP) or both non-zero.
    error UsageGrantsInvalidTerms(uint16 epsilonHundredths, uint8 deltaNegExponent);
    /// @notice The round has `participants` datasets but this participant's grant requires at least
    /// `minParticipants`.
    error UsageGrantsTooFewParticipants(
        uint256 datasetId, address grantee, bytes32 purpose, uint8 minParticipants, uint256 participants
    );
    /// @notice Round `round` is past the `maxRounds` this participant's grant allows a job.
    error UsageGrantsRoundLimitExceeded(
        uint256 datasetId, address grantee, bytes32 purpose, uint16 maxRounds, uint64 round
    );

    /// @notice A grant was issued (or re-issued, replacing the previous one and its terms).
    /// The last four fields are the grant's `GrantTerms` (all zero: no terms).
    event GrantIssued(
        uint256 indexed datasetId,
        address indexed grantee,
        bytes32 indexed purpose,
        uint64 notBefore,
        uint64 expiresAt,
        uint16 epsilonHundredths,
        uint8 deltaNegExponent,
        uint8 minParticipants,
        uint16 maxRounds
    );
    /// @notice A grant was revoked by the owner or an operator, or renounced by the grantee.
    event GrantRevoked(uint256 indexed datasetId, address indexed grantee, bytes32 indexed purpose);
    /// @notice `owner` cancelled its unredeemed signed grants: only nonce `newNonce` and later redeem.
    event NoncesInvalidated(address indexed owner, uint256 newNonce);

    /// @notice Issues a grant without terms. Caller: the dataset's owner or an approved operator.
    function issueGrant(uint256 datasetId, address grantee, bytes32 purpose, uint64 notBefore, uint64 expiresAt)
        external;

    /// @notice Issues a grant with `terms`. Caller: the dataset's owner or an approved operator.
    function issueGrant(
        uint256 datasetId,
        address grantee,
        bytes32 purpose,
        uint64 notBefore,
        uint64 expiresAt,
        GrantTerms calldata terms
    ) external;

    /// @notice Issues a grant the owner signed off-chain as EIP-712 `Grant` typed data (domain
    /// `UsageGrants` version `2`); anyone may submit it. The signed struct is
    /// `Grant(uint256 datasetId,address grantee,bytes32 purpose,uint64 notBefore,uint64 expiresAt,uint16 epsilonHundredths,uint8 deltaNegExponent,uint8 minParticipants,uint16 maxRounds,uint256 nonce,uint256 deadline)`.
    /// EIP-1271 contract-wallet owners are supported. Reverts with `UsageGrantsRevocationFinal`
    /// when this key was revoked or renounced in the deed's current epoch.
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
    ) external;

    /// @notice Revokes a grant. Caller: the dataset's owner or an approved operator.
    function revokeGrant(uint256 datasetId, address grantee, bytes32 purpose) external;

    /// @notice The grantee gives up its own grant.
    function renounceGrant(uint256 datasetId, bytes32 purpose) external;

    /// @notice Cancels every unredeemed signed grant of the caller with a nonce up to `upTo`:
    /// the caller's next nonce becomes `upTo + 1`. Reverts with `UsageGrantsNonceNotAhead` when
    /// that would not move the nonce forward.
    function invalidateNonces(uint256 upTo) external;

    /// @notice The one view every check uses.
    function isAuthorized(uint256 datasetId, address grantee, bytes32 purpose) external view returns (bool);

    /// @notice Like `isAuthorized`, with the reason.
    function authorizationStatus(uint256 datasetId, address grantee, bytes32 purpose) external view returns (Status);

    /// @notice Reverts with the specific `UsageGrants*` error of the first dataset that is not authorised.
    function requireAuthorized(uint256[] calldata datasetIds, address grantee, bytes32 purpose) external view;

    /// @notice `requireAuthorized` for one training round: `datasetIds` are the round's participants
    /// and every participant's grant terms must allow `datasetIds.length` participants and round
    /// number `round` (else `UsageGrantsTooFewParticipants` / `UsageGrantsRoundLimitExceeded`).
    function requireRoundAuthorized(uint256[] calldata datasetIds, address grantee, bytes32 purpose, uint64 round)
        external
        view;

    /// @notice `requireRoundAuthorized` for one batch of a round committed in several transactions:
    /// every grant must authorise and allow round `round`; the participant minimum cannot be
    /// checked before the round's size is known, so the strictest one is returned instead.
    /// @return minParticipants The largest `minParticipants` term in the batch (0 when none).
    /// @return strictestDatasetId The first dataset of the batch with that term (0 when none).
    function requireBatchAuthorized(uint256[] calldata datasetIds, address grantee, bytes32 purpose, uint64 round)
        external
        view
        returns (uint8 minParticipants, uint256 strictestDatasetId);

    /// @notice The stored grant (all zero when none).
    function getGrant(uint256 datasetId, address grantee, bytes32 purpose) external view returns (Grant memory);

    /// @notice The next nonce a signed grant of `owner` must carry.
    function nonces(address owner) external view returns (uint256);

    /// @notice The EIP-712 domain separator (name `UsageGrants`, version `2`).
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32);
}
