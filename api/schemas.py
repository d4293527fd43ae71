"""Request and response models of the HTTP API, and the validated scalar types they use.

uint256 values (dataset ids, nonces) travel as strings: decimal or 0x-hex on input, decimal on
output, because JSON numbers lose precision past 2**53 in every browser. Addresses are checked
against their EIP-55 checksum when written in mixed case and always returned checksummed.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, Literal, TypeVar

from eth_utils.address import is_checksum_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

T = TypeVar("T")

UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_UINT_DEC = re.compile(r"^[0-9]{1,78}$")
_UINT_HEX = re.compile(r"^0x[0-9a-fA-F]{1,64}$")
_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}$")


def _shorten(value: str, limit: int = 80) -> str:
    """Echo user input back without letting a huge value flood the message."""
    return value if len(value) <= limit else value[:limit] + "..."


def parse_address(value: object) -> str:
    """A 20-byte address as its EIP-55 checksummed form; mixed case must match the checksum."""
    if not isinstance(value, str) or not _HEX_ADDRESS.match(value):
        raise ValueError(f"{_shorten(str(value))!r} is not an address: expected 0x followed by 40 hex digits")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ValueError(
            f"{value!r} fails its EIP-55 checksum (mixed case); did you mean {to_checksum_address(value)}?"
        )
    return str(to_checksum_address(value))


def parse_uint256(value: object, *, what: str = "id", allow_zero: bool = False) -> int:
    """A uint256 written in decimal or 0x-hex (a JSON integer is accepted too)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _UINT_DEC.match(value):
        number = int(value, 10)
    elif isinstance(value, str) and _UINT_HEX.match(value):
        number = int(value, 16)
    else:
        raise ValueError(
            f"{_shorten(str(value))!r} is not a valid {what}: "
            "expected a uint256 in decimal or 0x-hex (at most 64 hex digits)"
        )
    if number < 0 or number > UINT256_MAX:
        raise ValueError(f"{what} {_shorten(str(value))} is outside 0..2**256-1")
    if number == 0 and not allow_zero:
        raise ValueError(f"{what} 0 does not exist: ids are non-zero uint256 values")
    return number


def parse_bytes32(value: object) -> bytes:
    """A 32-byte value written as 0x followed by 64 hex digits."""
    if not isinstance(value, str) or not _BYTES32.match(value):
        raise ValueError(f"{_shorten(str(value))!r} is not 32 bytes: expected 0x followed by 64 hex digits")
    return bytes.fromhex(value[2:])


def parse_cid(value: object) -> str:
    """A CIDv1 whose multihash is sha2-256 (the only kind the ledger anchors)."""
    from ledger.store import content_root  # the store owns CID parsing

    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError(f"{_shorten(str(value))!r} is not a CID: expected a CIDv1 string (base32, 'b...')")
    try:
        content_root(value)
    except ValueError as exc:
        raise ValueError(f"{_shorten(value)!r} is not a valid sha2-256 CIDv1: {exc}") from None
    return value


def parse_purpose(value: object) -> bytes:
    """A purpose name from the vocabulary or its 0x-hex bytes32 id, as the 32-byte id."""
    from ledger.purposes import purpose_id

    if not isinstance(value, str) or not value or len(value) > 66:
        raise ValueError(f"{_shorten(str(value))!r} is not a purpose name or 0x bytes32 id")
    try:
        return purpose_id(value)
    except (ValueError, LookupError) as exc:
        raise ValueError(str(exc)) from None


def _uint_of(what: str, *, allow_zero: bool = False) -> PlainValidator:
    return PlainValidator(lambda v: parse_uint256(v, what=what, allow_zero=allow_zero))


UINT_PATTERN = r"^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$"
ADDRESS_PATTERN = r"^0x[0-9a-f]{40}$"  # lowercase always valid; mixed case must be EIP-55
# CIDv1, base32, sha2-256: raw leaves ("bafkrei...") or dag-pb ("bafybei..."). The 8th character
# carries the last 2 bits of the digest length (zero), the last one 3 bits of padding (zero).
CID_PATTERN = r"^ba(fkrei|fybei)[a-h][a-z2-7]{50}[aiqy]$"

_UINT_SCHEMA = {"type": "string", "pattern": UINT_PATTERN, "description": "uint256, decimal or 0x-hex"}

# The validators explain what is wrong; the published patterns tell clients (and fuzzers) the shape.
Address = Annotated[
    str,
    PlainValidator(parse_address),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": ADDRESS_PATTERN,
            "description": "0x address; EIP-55 checked if mixed case",
        }
    ),
]
DatasetId = Annotated[int, _uint_of("dataset id"), WithJsonSchema(_UINT_SCHEMA)]
JobId = Annotated[int, _uint_of("job id"), WithJsonSchema(_UINT_SCHEMA)]
ParentId = Annotated[int, _uint_of("parent_id", allow_zero=True), WithJsonSchema(_UINT_SCHEMA)]
Bytes32 = Annotated[
    bytes,
    PlainValidator(parse_bytes32),
    WithJsonSchema({"type": "string", "pattern": r"^0x[0-9a-fA-F]{64}$", "description": "32 bytes, 0x-hex"}),
]
Cid = Annotated[
    str,
    PlainValidator(parse_cid),
    WithJsonSchema({"type": "string", "pattern": CID_PATTERN, "description": "CIDv1, base32"}),
]
Purpose = Annotated[
    bytes,
    PlainValidator(parse_purpose),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": ["ai-training", "ai-inference", "data-mining", "analytics"]},
                {"type": "string", "pattern": r"^0x[0-9a-fA-F]{64}$"},
            ],
            "description": "purpose name from the vocabulary, or a 0x bytes32 purpose id",
        }
    ),
]
Timestamp = Annotated[int, Field(ge=0, le=UINT64_MAX, description="unix seconds", strict=True)]
Uri = Annotated[str, Field(max_length=2048)]


class _Strict(BaseModel):
    """Unknown fields are an error: a typo in a field name must not silently use a default."""

    model_config = ConfigDict(extra="forbid")


class RegisterDatasetRequest(_Strict):
    """Register a dataset by its content root or its CID (exactly one of them)."""

    content_root: Bytes32 | None = Field(default=None, description="0x + 64 hex: sha2-256 digest of the data")
    cid: Cid | None = Field(default=None, description="CIDv1 of the data (its digest becomes the id)")
    parent_id: ParentId = Field(default=0, description="the dataset this one is a new version of, or 0")
    uri: Uri = ""

    @model_validator(mode="after")
    def _one_source(self) -> RegisterDatasetRequest:
        if (self.content_root is None) == (self.cid is None):
            raise ValueError("give exactly one of content_root or cid")
        return self


class GrantTermsIn(_Strict):
    """A grant's terms; every field 0 (the default) = none. Checked by `ledger.chain.types.GrantTerms`:
    the chain stores epsilon in hundredths and delta as a negative power of ten."""

    epsilon: float = Field(default=0, ge=0, description="DP budget epsilon, up to two decimals (0 = no DP)")
    delta: float = Field(
        default=0, ge=0, lt=1, description="DP delta, a power of ten such as 1e-5 (0 = no DP)"
    )
    min_participants: int = Field(default=0, ge=0, le=255, description="datasets per round, at least")
    max_rounds: int = Field(
        default=0, ge=0, le=65535, description="a job's rounds 1 to N only (0 = no limit)"
    )


class GrantTermsOut(BaseModel):
    """A grant's terms as stored (0 = none / not required)."""

    epsilon: float
    delta: float
    min_participants: int
    max_rounds: int


class IssueGrantRequest(_Strict):
    """Grant `grantee` the use of a dataset for `purpose` from `not_before` until `expires_at`,
    with optional `terms`."""

    dataset_id: DatasetId
    grantee: Address
    purpose: Purpose
    not_before: Timestamp = Field(default=0, description="0 = from now")
    expires_at: Timestamp
    terms: GrantTermsIn | None = Field(
        default=None, description="DP budget, minimum participants, maximum rounds"
    )


class RevokeGrantRequest(_Strict):
    """Revoke the grant keyed by (dataset_id, grantee, purpose)."""

    dataset_id: DatasetId
    grantee: Address
    purpose: Purpose


# A signed grant's values are read by `ledger.signed_grants.parse_grant`, the parser `sov grant
# redeem` uses, so the service accepts exactly the documents the CLI does. These schemas publish
# the shapes wallets produce; the route names the offending field when the parser refuses one.
_SIGNED_UINT = {
    "oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": r"^(0[xX][0-9a-fA-F]+|[0-9]+)$"},
    ],
    "description": "unsigned integer: a JSON number (exact up to 2**53), a decimal or a 0x-hex string",
}
SignedUint = Annotated[Any, WithJsonSchema(_SIGNED_UINT)]
SignedAddress = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^0[xX][0-9a-fA-F]{40}$",
            "description": "0x address; EIP-55 checked if mixed case",
        }
    ),
]
SignedBytes32 = Annotated[
    Any,
    WithJsonSchema(
        {"type": "string", "pattern": r"^0[xX][0-9a-fA-F]{64}$", "description": "32 bytes, 0x-hex"}
    ),
]


class SignedGrantMessage(_Strict):
    """The `message` of the EIP-712 `Grant` typed data, as a wallet signed it.

    Keys other than the eleven signed ones are refused: a wallet signs only these, so any other
    value would not be covered by the signature. The four terms fields are required by the parser
    (UsageGrants version 2); they are optional here only so that a version-1 document reaches it
    and is refused with the message that the owner must sign again.
    """

    datasetId: SignedUint
    grantee: SignedAddress
    purpose: SignedBytes32
    notBefore: SignedUint
    expiresAt: SignedUint
    epsilonHundredths: SignedUint = Field(default=None, description="epsilon in hundredths (300 = 3.00)")
    deltaNegExponent: SignedUint = Field(default=None, description="delta = 10**-deltaNegExponent")
    minParticipants: SignedUint = None
    maxRounds: SignedUint = None
    nonce: SignedUint
    deadline: SignedUint


class TypedDataField(_Strict):
    """One member of an EIP-712 struct type."""

    name: str = Field(max_length=64)
    type: str = Field(max_length=64)


class SignedGrantDomain(_Strict):
    """The EIP-712 domain: `UsageGrants` version `2` on this chain and deployment (version `1`,
    before grants had terms, is refused: the owner signs again)."""

    name: Annotated[Any, WithJsonSchema({"type": "string", "enum": ["UsageGrants"]})]
    version: Annotated[
        Any,
        WithJsonSchema(
            {
                "oneOf": [{"type": "string", "enum": ["2"]}, {"type": "integer", "enum": [2]}],
                "description": "2 (a string, as EIP-712 types it; the number is accepted too)",
            }
        ),
    ]
    chainId: SignedUint
    verifyingContract: SignedAddress


class RedeemGrantRequest(_Strict):
    """An owner-signed grant: the eth_signTypedData_v4 JSON plus `signature` (0x-hex).

    Integers may be JSON numbers, decimal or 0x-hex strings (ethers writes `domain.chainId` as
    `"0x7a69"`). An account (EOA) owner's signature is 65 bytes (r, s, v) or 64 (EIP-2098); a
    contract owner's (EIP-1271: a Safe, a smart account) is any length its wallet accepts.
    """

    types: dict[
        Annotated[str, Field(max_length=64)], Annotated[list[TypedDataField], Field(max_length=16)]
    ] = Field(max_length=4)
    primaryType: Literal["Grant"]
    domain: SignedGrantDomain
    message: SignedGrantMessage
    signature: Annotated[
        Any,
        WithJsonSchema(
            {
                "type": "string",
                "pattern": r"^0[xX]([0-9a-fA-F]{2})*$",
                "description": "0x-hex; 65 or 64 bytes for an account owner, any length for a contract owner",
            }
        ),
    ]


class ReceiptOut(BaseModel):
    """Where a write landed."""

    tx_hash: str
    block_number: int
    gas_used: int


class DatasetOut(BaseModel):
    """A dataset as the chain and the index know it."""

    dataset_id: str
    dataset_id_hex: str
    owner: str | None
    epoch: int | None
    retired: bool | None
    parent_id: str | None = None
    uri: str | None = None
    registered_block: int | None = None


class RegisterDatasetOut(BaseModel):
    """A registered dataset and the transaction that registered it."""

    dataset: DatasetOut
    receipt: ReceiptOut


class GrantOut(BaseModel):
    """A grant and whether it authorises now."""

    dataset_id: str
    grantee: str
    purpose: str
    purpose_id: str
    not_before: int
    expires_at: int
    epoch: int
    revoked: bool
    status: str
    authorized: bool
    block_number: int | None = None
    terms: GrantTermsOut | None = Field(default=None, description="the grant's terms (from the chain)")


class GrantWriteOut(BaseModel):
    """A grant after a write, and the transaction."""

    grant: GrantOut
    receipt: ReceiptOut


class RedeemGrantOut(GrantWriteOut):
    """A redeemed signed grant, the transaction, and the deed owner whose signature authorised it."""

    owner: str = Field(description="the deed's holder, whose authority the contract checked")
    owner_kind: Literal["account", "contract"] = Field(
        description="`contract`: an EIP-1271 wallet (a Safe, a smart account); `account`: an EOA"
    )
    signer: str | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="the EOA the signature recovers to; only for an account owner (then equal to owner)",
    )


class CheckOut(BaseModel):
    """The answer to "may `grantee` use `dataset_id` for `purpose` now?"."""

    authorized: bool
    reason: str
    grant: GrantOut | None
    block_number: int


# A round embeds at most this many participant ids: every standard round fits (a job lists at
# most 256 datasets); a larger large round pages the rest from `.../rounds/{round}/participants`.
ROUND_PARTICIPANTS_INLINE = 256


class RoundOut(BaseModel):
    """A committed round.

    `mode` is `standard` (`commitRound`: the participants are in its `RoundCommitted`) or `large`
    (an open job's round committed in batches: `RoundCommitted` lists none, the participants are
    the round's `RoundParticipantsAdded` batches, `participant_count` of them with hash chain
    `participants_hash`, from `LargeRoundCommitted`). `participants` holds at most
    ROUND_PARTICIPANTS_INLINE ids, ascending for a large round; `participants_truncated` says when
    there are more (then page them from `/v1/jobs/{job_id}/rounds/{round}/participants`).
    """

    job_id: str
    round: int
    parent_digest: str
    model_digest: str
    manifest_cid: str
    mode: Literal["standard", "large"] = "standard"
    participant_count: int = Field(description="every participating dataset of the round")
    participants: list[str] = Field(description=f"dataset ids, at most {ROUND_PARTICIPANTS_INLINE}")
    participants_truncated: bool = Field(
        default=False, description="more participants than listed: page them from .../participants"
    )
    participants_hash: str | None = Field(
        default=None, description="large rounds: the contract's hash chain over the ascending ids"
    )
    attestations_root: str
    block_number: int | None = None


class RoundParticipantOut(BaseModel):
    """A dataset of a committed round and where the contract checked its grant."""

    dataset_id: str
    dataset_id_hex: str
    checked_block: int = Field(description="the block of the batch (large round) or of the commit")
    checked_log_index: int = Field(description="that log's index in its block")


class JobOut(BaseModel):
    """A training job."""

    job_id: str
    coordinator: str
    purpose: str
    purpose_id: str
    last_round: int
    last_digest: str
    datasets: list[str] | None = None
    initial_model_digest: str | None = None
    spec_digest: str | None = None
    block_number: int | None = None


class JobDetailOut(JobOut):
    """A job with its rounds."""

    rounds: list[RoundOut] = Field(default_factory=list)


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    total: int
    offset: int
    limit: int
    indexed_block: int | None = None


class HealthComponent(BaseModel):
    """Whether one backing service answers."""

    ok: bool
    url: str
    detail: str


class HealthOut(BaseModel):
    """The service and what it depends on."""

    ok: bool
    chain: HealthComponent
    index: HealthComponent
    content_store: HealthComponent
    account: str | None
    chain_id: int | None
    writes_enabled: bool


class ErrorDetail(BaseModel):
    """The typed error."""

    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(BaseModel):
    """Every failure's body."""

    error: ErrorDetail
