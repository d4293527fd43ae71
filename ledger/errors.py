"""The exception tree of `ledger`.

Every error raised by `ledger` derives from `LedgerError`; each subclass also inherits
the builtin it means, so callers can catch narrowly (`GrantExpiredError`), by kind
(`PermissionError`) or broadly (`LedgerError`). Contract reverts are decoded into
`ContractRevertError` subclasses carrying the Solidity error name and arguments.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error raised by `ledger`."""


class ConfigurationError(LedgerError, ValueError):
    """Settings, deployment manifest or data directory are missing or inconsistent."""


class UnreachableError(LedgerError, ConnectionError):
    """A chain RPC endpoint or an IPFS node did not answer; the message names its URL."""


class ContentStoreError(LedgerError):
    """Root of content-store failures."""


class InvalidCIDError(ContentStoreError, ValueError):
    """A string is not a valid CID."""


class ContentNotFoundError(ContentStoreError, LookupError):
    """The store holds no block for a CID."""


class ContentIntegrityError(ContentStoreError):
    """Bytes read for a CID do not hash to that CID; they are never returned."""


# --------------------------------------------------------------------------------------
# Chain: transport, transactions, keys, purposes, signed grants, devnet and deployment
# --------------------------------------------------------------------------------------


class RPCError(LedgerError, RuntimeError):
    """A JSON-RPC node answered with an error that is not a contract revert."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        code: int | None = None,
        url: str = "",
        error: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.code = code
        self.url = url
        self.error: dict[str, object] = dict(error or {})


class InsufficientFundsError(RPCError):
    """The sending account cannot pay for gas; fund it or use another account."""


class InvalidArgumentError(LedgerError, ValueError):
    """An argument cannot be sent to the contracts as given (checked before any RPC)."""


class TransactionFailedError(LedgerError, RuntimeError):
    """A mined transaction failed (status 0) and the node gave no revert reason to decode."""


class TransactionTimeoutError(LedgerError, TimeoutError):
    """No receipt appeared for a sent transaction within the wait limit."""


class KeystoreError(LedgerError):
    """Root of keystore failures."""


class UnknownAccountError(KeystoreError, LookupError):
    """No keystore file (and no dev account) has this alias."""


class AccountExistsError(KeystoreError, FileExistsError):
    """A keystore file for this alias already exists; it is never overwritten."""


class WrongPasswordError(KeystoreError, PermissionError):
    """The password does not decrypt the keystore file."""


class UnknownPurposeError(LedgerError, ValueError):
    """A purpose name or id is not in the vocabulary (the message suggests the closest one)."""


class SignedGrantFormatError(LedgerError, ValueError):
    """A signed grant document is malformed, for another type, or its signature does not recover."""


class SignedGrantVersionError(SignedGrantFormatError):
    """A signed grant was made for another version of the UsageGrants domain (v1: no terms)."""


class GrantTermsError(LedgerError, ValueError):
    """Grant terms that cannot be stored on chain as given (the message says what would be)."""


class DevnetError(LedgerError, RuntimeError):
    """The embedded devnet (anvil) or a test node could not be started or stopped."""


class DeploymentNotFoundError(ConfigurationError, FileNotFoundError):
    """No deployment manifest exists for the node's chain id; run `sov deploy`."""


class DeploymentMismatchError(ConfigurationError):
    """A deployment manifest does not describe the contracts on the node (chain id or code differ)."""


# --------------------------------------------------------------------------------------
# Contract reverts: one class per Solidity custom error, grouped by meaning
# --------------------------------------------------------------------------------------

_SECONDS_FIELDS = frozenset({"notBefore", "expiresAt", "now_", "deadline"})
_DATASET_FIELDS = frozenset({"datasetId", "parentId", "tokenId"})


def _format_arg(name: str, abi_type: str, value: object) -> str:
    """Render one revert argument for people: dataset ids as hex, purposes by name, times as UTC."""
    import datetime as _dt

    if abi_type == "address" and isinstance(value, str):
        return value
    if abi_type == "bytes32" and isinstance(value, bytes | bytearray):
        if name == "purpose":
            from ledger.purposes import describe_purpose

            return describe_purpose(bytes(value))
        return "0x" + bytes(value).hex()
    if isinstance(value, int) and not isinstance(value, bool):
        if name in _DATASET_FIELDS:
            return f"0x{value:064x}"
        if name in _SECONDS_FIELDS:
            try:
                when = _dt.datetime.fromtimestamp(value, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            except (OverflowError, OSError, ValueError):
                return str(value)
            return f"{value} ({when})"
        if name == "participantMask":
            return hex(value)
        return str(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value)


class ContractRevertError(LedgerError):
    """A contract call or transaction reverted; `error_name` and `args_by_name` say why.

    Subclasses set `template`, a sentence with `{argName}` fields filled from the decoded
    arguments. The message ends with the raw Solidity error so it can be searched for.
    """

    error_name: str = ""
    template: str = ""

    def __init__(
        self,
        error_name: str,
        args_by_name: dict[str, object] | None = None,
        *,
        arg_types: dict[str, str] | None = None,
        action: str = "",
    ) -> None:
        self.error_name = error_name
        self.args_by_name: dict[str, object] = dict(args_by_name or {})
        self.arg_types: dict[str, str] = dict(arg_types or {})
        self.action = action
        super().__init__(self._render())

    def _render(self) -> str:
        shown = {
            name: _format_arg(name, self.arg_types.get(name, ""), value)
            for name, value in self.args_by_name.items()
        }
        raw = f"{self.error_name}({', '.join(f'{k}={v}' for k, v in shown.items())})"
        sentence = ""
        if self.template:
            try:
                sentence = self.template.format(**shown)
            except (KeyError, IndexError):
                sentence = ""
        prefix = f"{self.action}: " if self.action else ""
        if not self.args_by_name and self.error_name == "revert":
            return f"{prefix}the contract reverted without a reason"
        if sentence:
            return f"{prefix}{sentence} [{raw}]"
        return f"{prefix}the contract reverted with {raw}"


class ContractPanicError(ContractRevertError):
    """The contract hit a Solidity panic (assert, overflow, division by zero...): a contract bug."""

    template = "the contract panicked with code {code}"


# --- grouping classes (catch a family of errors at once) -------------------------------


class NotOwnerError(ContractRevertError, PermissionError):
    """The caller does not hold the dataset's deed (`DatasetRegistryNotOwner`)."""

    template = (
        "only the owner of dataset {datasetId} ({owner}) or an approved operator may do this; "
        "caller is {caller}"
    )


class UnknownDatasetError(ContractRevertError, LookupError):
    """No deed exists for the dataset (`DatasetRegistryUnknownDataset`)."""

    template = "dataset {datasetId} is not registered"


class NotAuthorizedError(ContractRevertError, PermissionError):
    """A (dataset, grantee, purpose) is not authorised now; subclasses say why."""


class InvalidPurposeError(ContractRevertError, ValueError):
    """The purpose is zero (`UsageGrantsInvalidPurpose`)."""

    template = "purpose {purpose} is not a purpose id; use keccak256 of a purpose name such as ai-training"


class GrantSignatureRejectedError(ContractRevertError, ValueError):
    """The contract refused a signed grant; subclasses say why."""


# --- DatasetRegistry --------------------------------------------------------------------


class DatasetAlreadyRegisteredError(ContractRevertError, FileExistsError):
    """The content root is already registered (`DatasetRegistryAlreadyRegistered`); names its owner."""

    template = "dataset {datasetId} is already registered; its deed is held by {owner}"


class UnknownParentError(ContractRevertError, LookupError):
    """The parent dataset of a new version is not registered (`DatasetRegistryUnknownParent`)."""

    template = "parent dataset {parentId} is not registered; register it first or pass parent 0"


class ZeroContentRootError(ContractRevertError, ValueError):
    """A zero content root is not a content hash (`DatasetRegistryZeroRoot`)."""

    template = "a content root of zero is not a content hash; compute it from the dataset's CID"


class DatasetAlreadyRetiredError(ContractRevertError, ValueError):
    """The dataset was already retired (`DatasetRegistryAlreadyRetired`)."""

    template = "dataset {datasetId} is already retired; retirement is irreversible"


# --- UsageGrants ------------------------------------------------------------------------


class GrantUnknownDatasetError(UnknownDatasetError):
    """`UsageGrantsUnknownDataset`: no deed exists for the dataset of a grant."""

    template = "dataset {datasetId} is not registered; register it before granting usage"


class NotOwnerOrOperatorError(NotOwnerError):
    """`UsageGrantsNotOwnerOrOperator`: only the owner or its operator grants and revokes."""

    template = (
        "only the owner of dataset {datasetId} ({owner}) or an operator it approved may grant or revoke; "
        "caller is {caller}"
    )


class DatasetRetiredError(NotAuthorizedError):
    """`UsageGrantsDatasetRetired`: consent was withdrawn; no grant on the dataset authorises."""

    template = "dataset {datasetId} is retired (consent withdrawn); it cannot be granted or used"


class InvalidGranteeError(ContractRevertError, ValueError):
    """`UsageGrantsInvalidGrantee`: the grantee is the zero address."""

    template = "grantee {grantee} is not a valid grantee address"


class InvalidGrantWindowError(ContractRevertError, ValueError):
    """`UsageGrantsInvalidWindow`: the window is empty or already over."""

    template = (
        "grant window from {notBefore} to {expiresAt} is empty or already over (now {now_}); "
        "expiresAt must be >= notBefore and >= now"
    )


class NoGrantError(NotAuthorizedError, LookupError):
    """`UsageGrantsNoGrant`: no grant exists for the key."""

    template = "{grantee} holds no grant on dataset {datasetId} for {purpose}"


class GrantNotYetValidError(NotAuthorizedError):
    """`UsageGrantsNotYetValid`: the grant window has not started."""

    template = "the grant of dataset {datasetId} to {grantee} for {purpose} is valid only from {notBefore}"


class GrantExpiredError(NotAuthorizedError):
    """`UsageGrantsExpired`: the grant window is over."""

    template = "the grant of dataset {datasetId} to {grantee} for {purpose} expired at {expiresAt}"


class GrantRevokedError(NotAuthorizedError):
    """`UsageGrantsRevoked`: the grant was revoked by the owner or renounced by the grantee."""

    template = "the grant of dataset {datasetId} to {grantee} for {purpose} was revoked"


class GrantOwnerChangedError(NotAuthorizedError):
    """`UsageGrantsOwnerChanged`: the grant was issued by an earlier holder of the deed."""

    template = (
        "the grant of dataset {datasetId} to {grantee} for {purpose} was issued by an earlier owner "
        "of the deed; the current owner must grant again"
    )


class SignedGrantExpiredError(GrantSignatureRejectedError):
    """`UsageGrantsSignatureExpired`: the signed grant's deadline passed."""

    template = "the signed grant's deadline {deadline} has passed (now {now_}); ask the owner to sign again"


class InvalidGrantSignatureError(GrantSignatureRejectedError):
    """`UsageGrantsInvalidSignature`: the signature is not the dataset owner's."""

    template = "the signature is not that of {owner}, the owner of dataset {datasetId}"


class InvalidGrantNonceError(GrantSignatureRejectedError):
    """`UsageGrantsInvalidNonce`: the signed nonce is not the owner's next one."""

    template = (
        "the signed grant carries nonce {given} but {owner}'s next nonce is {expected} "
        "(already redeemed, cancelled by the owner, or signed out of order)"
    )


class GrantRevocationFinalError(GrantSignatureRejectedError, PermissionError):
    """`UsageGrantsRevocationFinal`: the key was revoked or renounced in the deed's current epoch."""

    template = (
        "the grant of dataset {datasetId} to {grantee} for {purpose} was revoked or renounced since "
        "the deed's last transfer, and a revocation cannot be undone by a signature; the owner can "
        "issue it directly with `sov grant issue`"
    )


class NonceNotAheadError(ContractRevertError, ValueError):
    """`UsageGrantsNonceNotAhead`: cancelling signatures must move the nonce forward."""

    template = (
        "{owner}'s next nonce is already {current}: nonces up to {upTo} are used or cancelled; "
        "pass --up-to {current} or more (below 2**256 - 1)"
    )


class InvalidGrantTermsError(ContractRevertError, ValueError):
    """`UsageGrantsInvalidTerms`: epsilon and delta must both be zero or both be set."""

    template = (
        "grant terms with epsilonHundredths {epsilonHundredths} and deltaNegExponent {deltaNegExponent}: "
        "epsilon and delta must both be set for a DP budget, or both be 0 (DP not required)"
    )


class GrantTermsViolatedError(NotAuthorizedError):
    """A round the grant's terms forbid (too few participants, past the maximum rounds)."""


class TooFewParticipantsError(GrantTermsViolatedError):
    """`UsageGrantsTooFewParticipants`: the round has fewer participants than the grant requires."""

    template = (
        "the grant of dataset {datasetId} to {grantee} for {purpose} requires at least "
        "{minParticipants} participants per round; this round has {participants}"
    )


class RoundLimitExceededError(GrantTermsViolatedError):
    """`UsageGrantsRoundLimitExceeded`: the round number is past the grant's maximum rounds."""

    template = (
        "the grant of dataset {datasetId} to {grantee} for {purpose} allows rounds 1 to {maxRounds} "
        "of a job; this is round {round}"
    )


# --- TrainingLedger ---------------------------------------------------------------------


class UnknownJobError(ContractRevertError, LookupError):
    """`TrainingLedgerUnknownJob`: no job has this id."""

    template = "job {jobId} does not exist"


class NotCoordinatorError(ContractRevertError, PermissionError):
    """`TrainingLedgerNotCoordinator`: only the job's coordinator commits rounds."""

    template = "only job {jobId}'s coordinator {coordinator} may commit rounds; caller is {caller}"


class RoundOutOfOrderError(ContractRevertError, ValueError):
    """`TrainingLedgerRoundOutOfOrder`: rounds are consecutive."""

    template = "job {jobId} expects round {expected} next, not round {given}"


class ParentDigestMismatchError(ContractRevertError, ValueError):
    """`TrainingLedgerParentMismatch`: the round does not build on the last committed model."""

    template = "job {jobId}'s last committed model digest is {expected}, but the round builds on {given}"


class JobDatasetsMismatchError(ContractRevertError, ValueError):
    """`TrainingLedgerDatasetsMismatch`: the dataset list does not hash to the job's list."""

    template = "the dataset list hashes to {given}, but job {jobId}'s dataset list hashes to {expected}"


class InvalidParticipantsError(ContractRevertError, ValueError):
    """`TrainingLedgerInvalidParticipants`: empty mask or a bit past the job's dataset count."""

    template = (
        "participant mask {participantMask} of job {jobId} selects no dataset or one past its "
        "{datasetCount} datasets"
    )


class InvalidDatasetCountError(ContractRevertError, ValueError):
    """`TrainingLedgerInvalidDatasetCount`: a job needs 1 to 256 datasets."""

    template = "a job needs between 1 and 256 datasets, not {count}"


class DatasetsNotSortedError(ContractRevertError, ValueError):
    """`TrainingLedgerDatasetsNotSorted`: job datasets must be strictly ascending."""

    template = (
        "job datasets must be strictly ascending without duplicates; "
        "dataset {datasetId} at index {index} breaks the order"
    )


class JobUnknownDatasetError(UnknownDatasetError):
    """`TrainingLedgerUnknownDataset`: a job's dataset is not registered."""

    template = "job dataset {datasetId} is not registered"


class JobInvalidPurposeError(InvalidPurposeError):
    """`TrainingLedgerInvalidPurpose`: the job's purpose is zero."""


class ZeroModelDigestError(ContractRevertError, ValueError):
    """`TrainingLedgerZeroDigest`: a model digest of zero is not a digest."""

    template = "a model digest of zero is not a digest; pass the sha256 of the serialised model"


class NotOpenJobError(ContractRevertError, ValueError):
    """`TrainingLedgerNotOpenJob`: large rounds are for open jobs; a listed job uses commitRound."""

    template = (
        "job {jobId} has a dataset list: commit its rounds with the participant mask, not as a large round"
    )


class LargeRoundOpenError(ContractRevertError, ValueError):
    """`TrainingLedgerLargeRoundOpen`: the job already has a large round open."""

    template = "job {jobId} already has large round {round} open: finalize or abort it first"


class NoLargeRoundError(ContractRevertError, ValueError):
    """`TrainingLedgerNoLargeRound`: no large round with this number is open."""

    template = "job {jobId} has no large round {given} open (open round: {open}, 0 = none)"


class EmptyBatchError(ContractRevertError, ValueError):
    """`TrainingLedgerEmptyBatch`: a batch of participants is empty."""

    template = "a batch of participants for job {jobId} round {round} is empty"


class ParticipantsNotAscendingError(ContractRevertError, ValueError):
    """`TrainingLedgerParticipantsNotAscending`: participants must be strictly ascending across the round."""

    template = (
        "job {jobId} round {round}: participant {datasetId} does not come after {previous} "
        "(ascending across all batches, no dataset twice)"
    )


class NoParticipantsError(ContractRevertError, ValueError):
    """`TrainingLedgerNoParticipants`: a large round needs at least one participant."""

    template = "job {jobId} round {round} has no participant to commit"


class ParticipantsMismatchError(ContractRevertError, ValueError):
    """`TrainingLedgerParticipantsMismatch`: the finalized set is not the one the batches added."""

    template = (
        "job {jobId} round {round}: the batches added {addedCount} participant(s) hashing to {addedHash}, "
        "not {givenCount} hashing to {givenHash}"
    )


# --- OpenZeppelin ERC-721 errors the registry inherits (IERC6093) -----------------------


class DeedNonexistentError(UnknownDatasetError):
    """`ERC721NonexistentToken`: no deed exists for the token id."""

    template = "dataset {tokenId} is not registered"


class DeedIncorrectOwnerError(NotOwnerError):
    """`ERC721IncorrectOwner`: the sender does not own the deed."""

    template = "{sender} does not hold the deed of dataset {tokenId}; {owner} does"


class DeedInsufficientApprovalError(NotOwnerError):
    """`ERC721InsufficientApproval`: the caller may not move the deed."""

    template = "{operator} is neither the owner nor approved for the deed of dataset {tokenId}"


class DeedInvalidReceiverError(ContractRevertError, ValueError):
    """`ERC721InvalidReceiver`: the deed cannot be sent to this address."""

    template = (
        "{receiver} cannot receive a dataset deed (zero address or a contract without onERC721Received)"
    )


class DeedInvalidOperatorError(ContractRevertError, ValueError):
    """`ERC721InvalidOperator`: the operator address is invalid."""

    template = "{operator} cannot be an operator"


# Solidity error name -> the class that represents it. Errors not listed here still decode,
# into a plain `ContractRevertError` carrying their name and arguments.
REVERT_ERRORS: dict[str, type[ContractRevertError]] = {
    "DatasetRegistryAlreadyRegistered": DatasetAlreadyRegisteredError,
    "DatasetRegistryUnknownDataset": UnknownDatasetError,
    "DatasetRegistryUnknownParent": UnknownParentError,
    "DatasetRegistryZeroRoot": ZeroContentRootError,
    "DatasetRegistryNotOwner": NotOwnerError,
    "DatasetRegistryAlreadyRetired": DatasetAlreadyRetiredError,
    "UsageGrantsUnknownDataset": GrantUnknownDatasetError,
    "UsageGrantsNotOwnerOrOperator": NotOwnerOrOperatorError,
    "UsageGrantsDatasetRetired": DatasetRetiredError,
    "UsageGrantsInvalidGrantee": InvalidGranteeError,
    "UsageGrantsInvalidPurpose": InvalidPurposeError,
    "UsageGrantsInvalidWindow": InvalidGrantWindowError,
    "UsageGrantsNoGrant": NoGrantError,
    "UsageGrantsNotYetValid": GrantNotYetValidError,
    "UsageGrantsExpired": GrantExpiredError,
    "UsageGrantsRevoked": GrantRevokedError,
    "UsageGrantsOwnerChanged": GrantOwnerChangedError,
    "UsageGrantsSignatureExpired": SignedGrantExpiredError,
    "UsageGrantsInvalidSignature": InvalidGrantSignatureError,
    "UsageGrantsInvalidNonce": InvalidGrantNonceError,
    "UsageGrantsRevocationFinal": GrantRevocationFinalError,
    "UsageGrantsNonceNotAhead": NonceNotAheadError,
    "UsageGrantsInvalidTerms": InvalidGrantTermsError,
    "UsageGrantsTooFewParticipants": TooFewParticipantsError,
    "UsageGrantsRoundLimitExceeded": RoundLimitExceededError,
    "TrainingLedgerUnknownJob": UnknownJobError,
    "TrainingLedgerNotCoordinator": NotCoordinatorError,
    "TrainingLedgerRoundOutOfOrder": RoundOutOfOrderError,
    "TrainingLedgerParentMismatch": ParentDigestMismatchError,
    "TrainingLedgerDatasetsMismatch": JobDatasetsMismatchError,
    "TrainingLedgerInvalidParticipants": InvalidParticipantsError,
    "TrainingLedgerInvalidDatasetCount": InvalidDatasetCountError,
    "TrainingLedgerDatasetsNotSorted": DatasetsNotSortedError,
    "TrainingLedgerUnknownDataset": JobUnknownDatasetError,
    "TrainingLedgerInvalidPurpose": JobInvalidPurposeError,
    "TrainingLedgerZeroDigest": ZeroModelDigestError,
    "TrainingLedgerNotOpenJob": NotOpenJobError,
    "TrainingLedgerLargeRoundOpen": LargeRoundOpenError,
    "TrainingLedgerNoLargeRound": NoLargeRoundError,
    "TrainingLedgerEmptyBatch": EmptyBatchError,
    "TrainingLedgerParticipantsNotAscending": ParticipantsNotAscendingError,
    "TrainingLedgerNoParticipants": NoParticipantsError,
    "TrainingLedgerParticipantsMismatch": ParticipantsMismatchError,
    "ERC721NonexistentToken": DeedNonexistentError,
    "ERC721IncorrectOwner": DeedIncorrectOwnerError,
    "ERC721InsufficientApproval": DeedInsufficientApprovalError,
    "ERC721InvalidReceiver": DeedInvalidReceiverError,
    "ERC721InvalidOperator": DeedInvalidOperatorError,
    "Panic": ContractPanicError,
}
