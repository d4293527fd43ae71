"""Provenance record formats: model digests, node attestations and round manifests.

These are the records an auditor re-derives a model's lineage from, without any
federated-learning code:

- `model_digest`: sha256 of the serialised model file; the value the chain hash-chains.
- `Attestation`: what a node signs after training, as EIP-712 typed data
  `ATTESTATION_TYPE` = `Attestation(uint256 jobId,uint64 round,uint256 datasetId,bytes32 baseDigest,`
  `bytes32 specDigest,bytes32 updateDigest,uint64 numExamples)` (one string, no spaces after commas)
  under the domain {name "TrainingLedger", version "2", chainId, verifyingContract = the
  TrainingLedger address}. It binds the whole context of the node's work: the job, round
  and dataset, the digest of the base model it trained on (the job's last committed
  digest, which the node checked on chain), the job's spec digest (which the node checked
  against the spec it was sent), the sha256 of its update file and its example count. A
  node signs only after checking each of these itself. The EIP-712 digest is also the
  attestation's leaf in the round's Merkle tree (`ledger.merkle`), whose root
  `commitRound` puts on chain. The signature is the node key's 65-byte ECDSA signature
  over that digest; the dataset's owner is either that key's address or an EIP-1271
  contract wallet whose `isValidSignature` accepts it (checked on chain by verifiers).
  A node that trained with DP-SGD signs `PRIVATE_ATTESTATION_TYPE` instead: the same fields
  followed by the round's noise multiplier, clipping norm, sampling rate, steps and the
  dataset's cumulative epsilon after the round (`PrivacyClaim`; same domain, the contract
  never hashes attestations, so its EIP-712 version stays "2").
- `RoundManifest` (schema `sovereign-ledger/round-manifest/v2`): the JSON document stored
  in the content store whose CID `commitRound` records. Each participant lists its
  update's CID (`update_cid`, CIDv1 base32 of the update file in the lab's content
  store, whose sha256 is `update_digest`), so an auditor given those bytes (in a CAR)
  recomputes the FedAvg with `ledger.aggregation.aggregate_updates` and compares the
  result's digest with `model_digest`. `parent_digest` is every attestation's
  `base_digest` and `spec_digest` every attestation's `spec_digest`. It is written as
  canonical JSON (sorted keys, no whitespace, UTF-8) so the same manifest always has the
  same bytes and CID. A DP participant carries a `privacy` object (`ParticipantPrivacy`); a
  non-private one has none, so manifests without DP keep their bytes. v1 manifests (no
  update CIDs, attestations without base and spec digests) are refused by the parser: they
  predate verifiable aggregation.

JSON conventions: 32-byte values (digests, purpose, attestation root) and dataset ids are
`0x` + 64 lowercase hex digits (uint256 ids exceed the precision of JSON numbers in most
readers); addresses are EIP-55 checksummed; small counters are JSON integers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Any, Literal, Protocol, Self

from eth_keys.datatypes import Signature as _EcdsaSignature
from eth_keys.exceptions import BadSignature
from eth_utils.address import is_checksum_address, is_hex_address
from eth_utils.address import to_checksum_address as _checksum
from eth_utils.crypto import keccak
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from ledger.errors import LedgerError
from ledger.merkle import merkle_root
from ledger.privacy import DPRound, PrivacyError

MANIFEST_SCHEMA = "sovereign-ledger/round-manifest/v2"
MANIFEST_SCHEMA_V1 = "sovereign-ledger/round-manifest/v1"
DOMAIN_NAME = "TrainingLedger"
DOMAIN_VERSION = "2"
ATTESTATION_TYPE = (
    "Attestation(uint256 jobId,uint64 round,uint256 datasetId,bytes32 baseDigest,bytes32 specDigest,"
    "bytes32 updateDigest,uint64 numExamples)"
)
EIP712_DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
ATTESTATION_TYPEHASH = keccak(text=ATTESTATION_TYPE)
PRIVATE_ATTESTATION_TYPE = (
    "PrivateAttestation(uint256 jobId,uint64 round,uint256 datasetId,bytes32 baseDigest,bytes32 specDigest,"
    "bytes32 updateDigest,uint64 numExamples,uint64 noiseMultiplierE6,uint64 maxGradNormE6,"
    "uint64 sampleRateE9,uint64 steps,uint64 epsilonSpentE6)"
)
PRIVATE_ATTESTATION_TYPEHASH = keccak(text=PRIVATE_ATTESTATION_TYPE)
EIP712_DOMAIN_TYPEHASH = keccak(text=EIP712_DOMAIN_TYPE)


@functools.lru_cache(maxsize=4096)
def to_checksum_address(address: str) -> str:
    """EIP-55 form of an address, memoised: manifests repeat the same few addresses."""
    return str(_checksum(address))


# EIP-1271: `isValidSignature(bytes32,bytes)` returns its own selector when the wallet accepts.
EIP1271_MAGIC_VALUE = keccak(text="isValidSignature(bytes32,bytes)")[:4]

UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1
# Participants a manifest may list. A bitmask round holds at most 256; a large round (an open
# job's, committed in batches) has no fixed bound on chain, so this only bounds what an auditor
# parses (100,000 entries are ~40 MB of JSON).
MAX_MANIFEST_PARTICIPANTS = 100_000
# secp256k1 group order; signatures with s above half of it are malleated twins that
# OpenZeppelin's ECDSA (and so any Solidity verifier) rejects.
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
_CID_V1_BASE32 = re.compile(r"b[a-z2-7]{20,}")
WEIGHT_TOLERANCE = 1e-12


class AttestationError(LedgerError, ValueError):
    """An attestation field or signature is malformed."""


class ManifestError(LedgerError, ValueError):
    """A round manifest is malformed or inconsistent; the message names the field."""


class _Signer(Protocol):
    """What `sign_attestation` needs from an account (eth-account's `LocalAccount` fits)."""

    @property
    def address(self) -> str: ...

    def unsafe_sign_hash(self, message_hash: Any) -> Any: ...


# ---------------------------------------------------------------------------------------
# digests and attestations


def model_digest(model_bytes: bytes) -> bytes:
    """sha256 of a serialised model file: the 32-byte value the TrainingLedger hash-chains."""
    return hashlib.sha256(model_bytes).digest()


def _check_uint(name: str, value: object, maximum: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AttestationError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    if not minimum <= value <= maximum:
        raise AttestationError(f"{name} must be between {minimum} and {maximum}; got {value}")
    return value


def _check_address(name: str, value: object) -> str:
    if not isinstance(value, str) or not is_hex_address(value):
        raise AttestationError(f"{name} must be a 20-byte hex address; got {value!r}")
    return to_checksum_address(value)


@dataclass(frozen=True, slots=True)
class PrivacyClaim:
    """What a DP-SGD round attests: its parameters and the cumulative epsilon after it.

    `epsilon_spent_e6` is the dataset's cumulative epsilon (millionths, rounded up) for the
    grantee and purpose over every round it served under the grant, this one included, at the
    grant's delta (`ledger.privacy.cumulative_epsilon`).
    """

    dp: DPRound
    epsilon_spent_e6: int

    def __post_init__(self) -> None:
        if not isinstance(self.dp, DPRound):
            raise AttestationError(f"privacy.dp must be a DPRound; got {self.dp!r}")
        _check_uint("epsilon_spent_e6", self.epsilon_spent_e6, UINT64_MAX)

    @property
    def epsilon_spent(self) -> float:
        return self.epsilon_spent_e6 / 1_000_000


@dataclass(frozen=True, slots=True)
class Attestation:
    """A node's statement that it trained round `round` of `job_id` on `dataset_id`.

    `base_digest` is the digest of the model it trained on (the job's last committed
    digest, checked on chain), `spec_digest` the job's on-chain spec digest (checked
    against the spec it was sent), `update_digest` the sha256 of its serialised update
    and `num_examples` the number of local examples it trained on (FedAvg's weight).

    `privacy` is set when the node trained with DP-SGD: the round's parameters and the
    cumulative epsilon of the dataset for this grantee after the round. Such an attestation is
    signed as `PRIVATE_ATTESTATION_TYPE`; one without is the v2 `ATTESTATION_TYPE`, unchanged.
    """

    job_id: int
    round: int
    dataset_id: int
    base_digest: bytes
    spec_digest: bytes
    update_digest: bytes
    num_examples: int
    privacy: PrivacyClaim | None = None

    def __post_init__(self) -> None:
        _check_uint("job_id", self.job_id, UINT256_MAX)
        _check_uint("round", self.round, UINT64_MAX)
        _check_uint("dataset_id", self.dataset_id, UINT256_MAX)
        for name in ("base_digest", "spec_digest", "update_digest"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != 32:
                raise AttestationError(f"{name} must be 32 bytes; got {value!r}")
        _check_uint("num_examples", self.num_examples, UINT64_MAX)
        if self.privacy is not None and not isinstance(self.privacy, PrivacyClaim):
            raise AttestationError(f"privacy must be a PrivacyClaim or None; got {self.privacy!r}")

    def struct_hash(self) -> bytes:
        """EIP-712 `hashStruct` of this attestation.

        Integers are ABI words: 32 bytes, big-endian (`int.to_bytes`' default since Python 3.11).
        """
        body = (
            self.job_id.to_bytes(32)
            + self.round.to_bytes(32)
            + self.dataset_id.to_bytes(32)
            + self.base_digest
            + self.spec_digest
            + self.update_digest
            + self.num_examples.to_bytes(32)
        )
        if self.privacy is None:
            return keccak(ATTESTATION_TYPEHASH + body)
        dp = self.privacy.dp
        return keccak(
            PRIVATE_ATTESTATION_TYPEHASH
            + body
            + dp.noise_multiplier_e6.to_bytes(32)
            + dp.max_grad_norm_e6.to_bytes(32)
            + dp.sample_rate_e9.to_bytes(32)
            + dp.steps.to_bytes(32)
            + self.privacy.epsilon_spent_e6.to_bytes(32)
        )


@dataclass(frozen=True, slots=True)
class SignedAttestation:
    """An attestation with the domain it was signed under, its signature and claimed signer.

    `signer` is what the signing side reported; verifiers must use
    `recover_attestation_signer` and never trust this field.
    """

    attestation: Attestation
    chain_id: int
    ledger_address: str
    signature: str
    signer: str

    def leaf(self) -> bytes:
        """The EIP-712 digest under this record's own domain (its Merkle leaf)."""
        return attestation_leaf(self.chain_id, self.ledger_address, self.attestation)


@functools.lru_cache(maxsize=64)
def domain_separator(chain_id: int, ledger_address: str) -> bytes:
    """The EIP-712 domain separator of the TrainingLedger at `ledger_address` on `chain_id`."""
    _check_uint("chain_id", chain_id, UINT256_MAX)
    address = _check_address("ledger_address", ledger_address)
    return keccak(
        EIP712_DOMAIN_TYPEHASH
        + keccak(text=DOMAIN_NAME)
        + keccak(text=DOMAIN_VERSION)
        + chain_id.to_bytes(32)
        + bytes(12)
        + bytes.fromhex(address[2:])
    )


def attestation_leaf(chain_id: int, ledger_address: str, attestation: Attestation) -> bytes:
    """The EIP-712 digest `keccak256(0x1901 ++ domainSeparator ++ hashStruct(attestation))`.

    This is what the node signs and the leaf of the round's attestation Merkle tree.
    """
    return keccak(b"\x19\x01" + domain_separator(chain_id, ledger_address) + attestation.struct_hash())


def attestation_typed_data(chain_id: int, ledger_address: str, attestation: Attestation) -> dict[str, Any]:
    """The `eth_signTypedData_v4` JSON for `attestation`, for wallets and other libraries."""
    typed = _v2_typed_data(chain_id, ledger_address, attestation)
    if attestation.privacy is None:
        return typed
    fields = typed["types"].pop("Attestation")
    dp = attestation.privacy.dp
    private = {
        "noiseMultiplierE6": dp.noise_multiplier_e6,
        "maxGradNormE6": dp.max_grad_norm_e6,
        "sampleRateE9": dp.sample_rate_e9,
        "steps": dp.steps,
        "epsilonSpentE6": attestation.privacy.epsilon_spent_e6,
    }
    typed["types"]["PrivateAttestation"] = fields + [{"name": n, "type": "uint64"} for n in private]
    typed["primaryType"] = "PrivateAttestation"
    typed["message"].update(private)
    return typed


def _v2_typed_data(chain_id: int, ledger_address: str, attestation: Attestation) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Attestation": [
                {"name": "jobId", "type": "uint256"},
                {"name": "round", "type": "uint64"},
                {"name": "datasetId", "type": "uint256"},
                {"name": "baseDigest", "type": "bytes32"},
                {"name": "specDigest", "type": "bytes32"},
                {"name": "updateDigest", "type": "bytes32"},
                {"name": "numExamples", "type": "uint64"},
            ],
        },
        "primaryType": "Attestation",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": _check_address("ledger_address", ledger_address),
        },
        "message": {
            "jobId": attestation.job_id,
            "round": attestation.round,
            "datasetId": attestation.dataset_id,
            "baseDigest": "0x" + attestation.base_digest.hex(),
            "specDigest": "0x" + attestation.spec_digest.hex(),
            "updateDigest": "0x" + attestation.update_digest.hex(),
            "numExamples": attestation.num_examples,
        },
    }


def sign_attestation(
    account: _Signer, chain_id: int, ledger_address: str, attestation: Attestation
) -> SignedAttestation:
    """Signs `attestation` as EIP-712 typed data with a node's local account."""
    digest = attestation_leaf(chain_id, ledger_address, attestation)
    signed = account.unsafe_sign_hash(digest)
    signature = "0x" + bytes(signed.signature).hex()
    return SignedAttestation(
        attestation=attestation,
        chain_id=chain_id,
        ledger_address=to_checksum_address(ledger_address),
        signature=signature,
        signer=to_checksum_address(account.address),
    )


def recover_signer(digest: bytes, signature: str) -> str:
    """The address whose key produced the 65-byte `signature` over `digest` (low-s only)."""
    if not isinstance(signature, str) or not _HEX_SIGNATURE.fullmatch(signature):
        raise AttestationError(f"signature must be 0x + 130 hex digits (65 bytes); got {signature!r}")
    raw = bytes.fromhex(signature[2:])
    r = int.from_bytes(raw[:32])
    s = int.from_bytes(raw[32:64])
    v = raw[64] - 27 if raw[64] >= 27 else raw[64]
    if v not in (0, 1):
        raise AttestationError(f"signature recovery id v must be 27 or 28; got {raw[64]}")
    if not (0 < r < _SECP256K1_N and 0 < s <= _SECP256K1_N // 2):
        raise AttestationError("signature is malleable or out of range (s must be in the lower half)")
    try:
        public_key = _EcdsaSignature(vrs=(v, r, s)).recover_public_key_from_msg_hash(digest)
    except (BadSignature, ValueError) as error:
        raise AttestationError(f"signature does not recover a public key: {error}") from error
    return str(public_key.to_checksum_address())


def eip1271_call_data(digest: bytes, signature: str) -> str:
    """Calldata (0x-hex) of `isValidSignature(digest, signature)` for an `eth_call` to a wallet.

    Verifiers run it against the dataset owner's contract (at the block they trust) and
    accept the signature when `eip1271_accepts` holds for the returned bytes.
    """
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise AttestationError(f"digest must be 32 bytes; got {digest!r}")
    if not isinstance(signature, str) or not re.fullmatch(r"0x(?:[0-9a-fA-F]{2})*", signature):
        raise AttestationError(f"signature must be 0x-prefixed hex bytes; got {signature!r}")
    raw = bytes.fromhex(signature[2:])
    padded = raw + bytes(-len(raw) % 32)
    # abi.encode(bytes32, bytes): the digest, the offset of the dynamic part (64), its length, its data.
    body = digest + (64).to_bytes(32) + len(raw).to_bytes(32) + padded
    return "0x" + (EIP1271_MAGIC_VALUE + body).hex()


def eip1271_accepts(return_data: bytes) -> bool:
    """Whether an `isValidSignature` answer is the EIP-1271 magic value (left-aligned bytes4)."""
    return len(return_data) == 32 and return_data[:4] == EIP1271_MAGIC_VALUE and not any(return_data[4:])


def recover_attestation_signer(signed: SignedAttestation, chain_id: int, ledger_address: str) -> str:
    """The address that signed `signed.attestation` under the given (trusted) domain.

    The domain comes from the verifier (the deployment it trusts), not from the record, so
    a signature made for another chain or contract recovers a different address.
    """
    return recover_signer(attestation_leaf(chain_id, ledger_address, signed.attestation), signed.signature)


def attestations_root(signed_attestations: Sequence[SignedAttestation]) -> bytes:
    """The Merkle root (`ledger.merkle.merkle_root`) over the attestations' EIP-712 digests."""
    if not signed_attestations:
        raise ManifestError("a round needs at least one attestation; got none")
    domains = {(s.chain_id, to_checksum_address(s.ledger_address)) for s in signed_attestations}
    if len(domains) != 1:
        raise ManifestError(f"attestations of one round must share one EIP-712 domain; got {sorted(domains)}")
    return merkle_root([s.leaf() for s in signed_attestations])


# ---------------------------------------------------------------------------------------
# JSON field types: python callers pass ints/bytes, JSON carries fixed-width hex strings


def _parse_bytes32(value: object, info: ValidationInfo) -> bytes:
    if isinstance(value, bytes) and info.mode == "python":
        if len(value) != 32:
            raise ValueError(f"expected 32 bytes, got {len(value)}")
        return value
    if isinstance(value, str) and _HEX32.fullmatch(value):
        return bytes.fromhex(value[2:])
    raise ValueError(f"expected 0x followed by 64 hex digits, got {value!r}")


def _parse_uint256_id(value: object, info: ValidationInfo) -> int:
    if info.mode == "python" and isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= UINT256_MAX:
            raise ValueError(f"expected a uint256, got {value}")
        return value
    if isinstance(value, str) and _HEX32.fullmatch(value):
        return int(value[2:], 16)
    raise ValueError(f"expected 0x followed by 64 hex digits (a uint256 id), got {value!r}")


def _parse_address(value: object) -> str:
    if not isinstance(value, str) or not is_hex_address(value):
        raise ValueError(f"expected a 20-byte hex address, got {value!r}")
    # Mixed case claims an EIP-55 checksum; a wrong one means a typo.
    if value[2:] != value[2:].lower() and value[2:] != value[2:].upper() and not is_checksum_address(value):
        raise ValueError(f"address {value} has an invalid EIP-55 checksum")
    return str(to_checksum_address(value))


def _parse_signature(value: object) -> str:
    if not isinstance(value, str) or not _HEX_SIGNATURE.fullmatch(value):
        raise ValueError(f"expected 0x followed by 130 hex digits (a 65-byte signature), got {value!r}")
    return value.lower()


def _parse_cid(value: object) -> str:
    if not isinstance(value, str) or not _CID_V1_BASE32.fullmatch(value):
        raise ValueError(f"expected a CIDv1 in base32 (lowercase, starting with 'b'), got {value!r}")
    return value


Bytes32 = Annotated[
    bytes, BeforeValidator(_parse_bytes32), PlainSerializer(lambda v: "0x" + v.hex(), return_type=str)
]
Uint256Id = Annotated[
    int, BeforeValidator(_parse_uint256_id), PlainSerializer(lambda v: f"0x{v:064x}", return_type=str)
]
Address = Annotated[str, BeforeValidator(_parse_address)]
Signature = Annotated[str, BeforeValidator(_parse_signature)]
CidV1 = Annotated[str, BeforeValidator(_parse_cid)]
Uint64 = Annotated[int, Field(ge=0, le=UINT64_MAX)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class ParticipantPrivacy(BaseModel):
    """A participant's attested DP-SGD parameters (fixed point, see `ledger.privacy`)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    noise_multiplier_e6: Annotated[int, Field(ge=1, le=UINT64_MAX)]
    max_grad_norm_e6: Annotated[int, Field(ge=1, le=UINT64_MAX)]
    sample_rate_e9: Annotated[int, Field(ge=1, le=1_000_000_000)]
    steps: Annotated[int, Field(ge=1, le=UINT64_MAX)]
    epsilon_spent_e6: Uint64

    @classmethod
    def of(cls, claim: PrivacyClaim) -> ParticipantPrivacy:
        dp = claim.dp
        return cls(
            noise_multiplier_e6=dp.noise_multiplier_e6,
            max_grad_norm_e6=dp.max_grad_norm_e6,
            sample_rate_e9=dp.sample_rate_e9,
            steps=dp.steps,
            epsilon_spent_e6=claim.epsilon_spent_e6,
        )


class Participant(BaseModel):
    """One dataset's contribution to a round, with its node's signed attestation.

    `node` is the address whose key signed the attestation: the dataset's owner, or a key
    the owner's EIP-1271 wallet accepts. `update_cid` locates the update file (sha256 =
    `update_digest`) in the lab's content store.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    dataset_id: Uint256Id
    node: Address
    num_examples: Annotated[int, Field(ge=1, le=UINT64_MAX)]
    weight: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    update_digest: Bytes32
    update_cid: CidV1
    signature: Signature
    privacy: ParticipantPrivacy | None = None

    def privacy_claim(self) -> PrivacyClaim | None:
        """The attested DP parameters and cumulative epsilon, or None for a non-private round."""
        if self.privacy is None:
            return None
        p = self.privacy
        try:
            dp = DPRound(p.noise_multiplier_e6, p.max_grad_norm_e6, p.sample_rate_e9, p.steps)
        except PrivacyError as error:
            raise ManifestError(f"participant 0x{self.dataset_id:064x}: privacy: {error}") from None
        return PrivacyClaim(dp, p.epsilon_spent_e6)

    def attestation(
        self, job_id: int, round_number: int, *, base_digest: bytes, spec_digest: bytes
    ) -> Attestation:
        """The attestation this participant's node signed for round `round_number` of `job_id`.

        `base_digest` and `spec_digest` are the round's (the manifest's `parent_digest` and
        `spec_digest`; `RoundManifest.attestation_of` fills them in).
        """
        return Attestation(
            job_id=job_id,
            round=round_number,
            dataset_id=self.dataset_id,
            base_digest=base_digest,
            spec_digest=spec_digest,
            update_digest=self.update_digest,
            num_examples=self.num_examples,
            privacy=self.privacy_claim(),
        )


class RoundManifest(BaseModel):
    """The round manifest (v2): what `commitRound`'s manifest CID points at."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["sovereign-ledger/round-manifest/v2"] = Field(
        default="sovereign-ledger/round-manifest/v2", alias="schema"
    )
    job_id: Annotated[int, Field(ge=1, le=UINT256_MAX)]
    round: Annotated[int, Field(ge=1, le=UINT64_MAX)]
    chain_id: Annotated[int, Field(ge=1)]
    training_ledger: Address
    purpose: Bytes32
    spec_digest: Bytes32
    parent_digest: Bytes32
    model_digest: Bytes32
    model_cid: CidV1
    aggregation: Literal["fedavg"] = "fedavg"
    participants: Annotated[list[Participant], Field(min_length=1, max_length=MAX_MANIFEST_PARTICIPANTS)]
    attestations_root: Bytes32
    metrics: dict[str, FiniteFloat] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _participants_ascending(self) -> Self:
        # Same order as the job's dataset list on chain; also rules out duplicates.
        ids = [p.dataset_id for p in self.participants]
        for position, (previous, current) in enumerate(pairwise(ids), start=1):
            if current <= previous:
                raise ValueError(
                    f"participants must be in strictly ascending dataset_id order; participant {position} "
                    f"(0x{current:064x}) does not follow 0x{previous:064x}"
                )
        return self

    @classmethod
    def from_attestations(
        cls,
        *,
        purpose: bytes,
        spec_digest: bytes,
        parent_digest: bytes,
        model_digest: bytes,
        model_cid: str,
        signed_attestations: Sequence[SignedAttestation],
        update_cids: Mapping[int, str],
        metrics: Mapping[str, float] | None = None,
    ) -> RoundManifest:
        """Builds a manifest from the round's signed attestations and their updates' CIDs.

        Job, round, chain and ledger come from the attestations (which must agree); every
        attestation must name `parent_digest` as its base and `spec_digest` as its spec;
        `update_cids` maps each attested dataset id to its update's CID. Weights are
        `num_examples / total` and the attestation root is computed here, so a coordinator
        cannot get them out of step.
        """
        if not signed_attestations:
            raise ManifestError("a round needs at least one signed attestation; got none")
        first = signed_attestations[0]
        for signed in signed_attestations:
            a = signed.attestation
            if (a.job_id, a.round) != (first.attestation.job_id, first.attestation.round):
                raise ManifestError(
                    f"attestation for dataset 0x{a.dataset_id:064x} is for job {a.job_id} round {a.round}; "
                    f"expected job {first.attestation.job_id} round {first.attestation.round}"
                )
            if a.base_digest != parent_digest:
                raise ManifestError(
                    f"attestation for dataset 0x{a.dataset_id:064x} names base model "
                    f"0x{a.base_digest.hex()}; the round's parent digest is 0x{parent_digest.hex()}"
                )
            if a.spec_digest != spec_digest:
                raise ManifestError(
                    f"attestation for dataset 0x{a.dataset_id:064x} names spec digest "
                    f"0x{a.spec_digest.hex()}; the job's spec digest is 0x{spec_digest.hex()}"
                )
            if a.dataset_id not in update_cids:
                raise ManifestError(f"no update CID given for dataset 0x{a.dataset_id:064x}")
        attested = {s.attestation.dataset_id for s in signed_attestations}
        extra = sorted(set(update_cids) - attested)
        if extra:
            raise ManifestError(
                f"update CIDs given for dataset(s) {[f'0x{d:064x}' for d in extra]} that no attestation names"
            )
        root = attestations_root(signed_attestations)
        total = sum(s.attestation.num_examples for s in signed_attestations)
        ordered = sorted(signed_attestations, key=lambda s: s.attestation.dataset_id)
        try:
            return cls(
                job_id=first.attestation.job_id,
                round=first.attestation.round,
                chain_id=first.chain_id,
                training_ledger=first.ledger_address,
                purpose=purpose,
                spec_digest=spec_digest,
                parent_digest=parent_digest,
                model_digest=model_digest,
                model_cid=model_cid,
                participants=[
                    Participant(
                        dataset_id=s.attestation.dataset_id,
                        node=s.signer,
                        num_examples=s.attestation.num_examples,
                        weight=s.attestation.num_examples / total,
                        update_digest=s.attestation.update_digest,
                        update_cid=update_cids[s.attestation.dataset_id],
                        signature=s.signature,
                        privacy=None
                        if s.attestation.privacy is None
                        else ParticipantPrivacy.of(s.attestation.privacy),
                    )
                    for s in ordered
                ],
                attestations_root=root,
                metrics=dict(metrics or {}),
            )
        except ValidationError as error:
            raise ManifestError(_describe(error)) from None

    def to_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, no whitespace, UTF-8; same manifest -> same bytes."""
        # exclude_none: only `privacy` is ever None, and a non-private manifest keeps its v2 bytes.
        return json.dumps(
            self.model_dump(mode="json", by_alias=True, exclude_none=True),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> RoundManifest:
        """Parses and validates a manifest; raises `ManifestError` naming every bad field.

        A v1 manifest is refused with its own message: it lists no update CIDs and its
        attestations do not bind the base model and spec, so its aggregation cannot be
        recomputed.
        """
        try:
            text = data.decode()
        except UnicodeDecodeError as error:
            raise ManifestError(f"round manifest is not UTF-8: {error}") from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as error:
            if _schema_of(text) == MANIFEST_SCHEMA_V1:
                raise ManifestError(
                    f"round manifest has schema {MANIFEST_SCHEMA_V1!r}: v1 manifests predate verifiable "
                    f"aggregation (no update CIDs, attestations without base and spec digests); "
                    f"expected {MANIFEST_SCHEMA!r}"
                ) from None
            raise ManifestError(_describe(error)) from None

    def attestation_of(self, participant: Participant) -> Attestation:
        """The attestation `participant` signed: this round's job, round, parent and spec digests."""
        return participant.attestation(
            self.job_id, self.round, base_digest=self.parent_digest, spec_digest=self.spec_digest
        )

    def update_cids(self) -> list[str]:
        """The participants' update CIDs in manifest order (ascending dataset id)."""
        return [p.update_cid for p in self.participants]

    def signed_attestations(self) -> list[SignedAttestation]:
        """The participants' attestations with the signer each one claims, under this manifest's domain."""
        return [
            SignedAttestation(
                attestation=self.attestation_of(p),
                chain_id=self.chain_id,
                ledger_address=self.training_ledger,
                signature=p.signature,
                signer=p.node,
            )
            for p in self.participants
        ]

    def computed_attestations_root(self) -> bytes:
        """The attestation root recomputed from the participants (compare with the committed one)."""
        return attestations_root(self.signed_attestations())

    def check_attestations_root(self) -> None:
        """Raises `ManifestError` unless `attestations_root` matches the participants."""
        computed = self.computed_attestations_root()
        if computed != self.attestations_root:
            raise ManifestError(
                f"job {self.job_id} round {self.round}: attestations_root 0x{self.attestations_root.hex()} "
                f"does not match the participants' attestations (0x{computed.hex()})"
            )

    def check_weights(self) -> None:
        """Raises `ManifestError` unless every weight is `num_examples / total` (FedAvg)."""
        total = sum(p.num_examples for p in self.participants)
        for p in self.participants:
            expected = p.num_examples / total
            if not math.isclose(p.weight, expected, rel_tol=0.0, abs_tol=WEIGHT_TOLERANCE):
                raise ManifestError(
                    f"job {self.job_id} round {self.round}: participant 0x{p.dataset_id:064x} has weight "
                    f"{p.weight!r} but attests {p.num_examples} of {total} examples (expected {expected!r})"
                )


def _schema_of(text: str) -> object:
    """The `schema` member of a JSON object, or None when `text` is not one."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document.get("schema") if isinstance(document, dict) else None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "(document)"
        problems.append(f"{where}: {item['msg']}")
    return "invalid round manifest: " + "; ".join(problems)
