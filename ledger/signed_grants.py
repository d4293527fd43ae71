"""Off-chain grants: EIP-712 `Grant` typed data, signed by the dataset owner, redeemed by anyone.

The type (domain `UsageGrants`, version `2`, chainId, verifyingContract = the UsageGrants
contract) is exactly

    Grant(uint256 datasetId,address grantee,bytes32 purpose,uint64 notBefore,uint64 expiresAt,
          uint16 epsilonHundredths,uint8 deltaNegExponent,uint8 minParticipants,uint16 maxRounds,
          uint256 nonce,uint256 deadline)

(one line, no spaces after commas). The four terms fields are the grant's `GrantTerms` in their
on-chain encoding: epsilon in hundredths (300 = 3.00), delta = 10**-deltaNegExponent, minimum
participants per round and maximum rounds, 0 meaning none. Version 1 (the same type without
the terms, domain version "1") is refused with `SignedGrantVersionError`: its signatures verify
only against the previous contract, and a grant signed without terms must not be redeemed as
one that has none, so the owner signs again.

The document is what a wallet's `eth_signTypedData_v4` takes (`types`, optionally including
`EIP712Domain`, `primaryType`, `domain`, `message`) plus the `signature`, so a grant signed by
any standard wallet or library can be redeemed. Every integer form those produce is read:
JSON numbers, decimal strings and 0x-hex strings (ethers writes `domain.chainId` as
`"0x7a69"`). The digest is always computed from the parsed values, which are exactly what
`UsageGrants` hashes on chain, never from the document's spelling of them.

Signatures: an EOA owner's is 65 bytes (r, s, v; v 0/1 is read as 27/28) or 64 bytes
(EIP-2098 compact), sent on as 65 bytes. A contract owner (EIP-1271: a Safe, a smart account)
defines its own format and length, so its signature is sent exactly as given and judged by the
wallet on chain. Which of the two applies depends on who holds the deed, so the length check
happens in `grant_authority`, once the owner is known.

This module is pure (no chain access); `LedgerClient` looks the owner up and calls it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_checksum_address, to_checksum_address
from eth_utils.crypto import keccak

from ledger.chain.types import NO_TERMS, GrantTerms
from ledger.errors import GrantTermsError, SignedGrantFormatError, SignedGrantVersionError
from ledger.purposes import purpose_id

DOMAIN_NAME = "UsageGrants"
DOMAIN_VERSION = "2"
GRANT_TYPE = (
    "Grant(uint256 datasetId,address grantee,bytes32 purpose,uint64 notBefore,uint64 expiresAt,"
    "uint16 epsilonHundredths,uint8 deltaNegExponent,uint8 minParticipants,uint16 maxRounds,"
    "uint256 nonce,uint256 deadline)"
)
EIP712_DOMAIN_FIELDS: list[dict[str, str]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
GRANT_FIELDS: list[dict[str, str]] = [
    {"name": "datasetId", "type": "uint256"},
    {"name": "grantee", "type": "address"},
    {"name": "purpose", "type": "bytes32"},
    {"name": "notBefore", "type": "uint64"},
    {"name": "expiresAt", "type": "uint64"},
    {"name": "epsilonHundredths", "type": "uint16"},
    {"name": "deltaNegExponent", "type": "uint8"},
    {"name": "minParticipants", "type": "uint8"},
    {"name": "maxRounds", "type": "uint16"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
# The version-1 type (domain version "1"), recognised only to refuse it with a clear message.
V1_GRANT_FIELDS: list[tuple[str, str]] = [
    ("datasetId", "uint256"),
    ("grantee", "address"),
    ("purpose", "bytes32"),
    ("notBefore", "uint64"),
    ("expiresAt", "uint64"),
    ("nonce", "uint256"),
    ("deadline", "uint256"),
]
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
# Integers past this lose precision as JavaScript numbers (and as JSON floats).
_EXACT_FLOAT_LIMIT = 2**53


@dataclass(frozen=True)
class SignedGrant:
    """The arguments of `UsageGrants.issueGrantBySig`, parsed from a signed document.

    `signature` is the document's, byte for byte (empty for an unsigned document); `terms` the
    signed terms (empty when all four fields are 0).
    """

    chain_id: int
    verifying_contract: str
    dataset_id: int
    grantee: str
    purpose: bytes
    not_before: int
    expires_at: int
    nonce: int
    deadline: int
    signature: bytes
    terms: GrantTerms = NO_TERMS

    def typed_data(self) -> dict[str, Any]:
        """The canonical `eth_signTypedData_v4` document of these values (unsigned)."""
        return grant_typed_data(
            self.chain_id,
            self.verifying_contract,
            self.dataset_id,
            self.grantee,
            self.purpose,
            self.not_before,
            self.expires_at,
            self.nonce,
            self.deadline,
            self.terms,
        )

    @property
    def digest(self) -> bytes:
        """The EIP-712 digest the owner signs (what `UsageGrants` recomputes on chain)."""
        signable = encode_typed_data(full_message=self.typed_data())
        return bytes(keccak(b"\x19" + signable.version + signable.header + signable.body))


@dataclass(frozen=True)
class GrantAuthority:
    """Who authorises a signed grant, and the signature bytes to submit for it.

    `owner` is the deed's holder: the account whose authority `UsageGrants` checks (a Safe,
    not one of its signers). `signer` is the EOA the signature recovers to, only when the owner
    is itself an EOA (for a valid grant it equals `owner`); for a contract owner it is None,
    because an EIP-1271 signature is not an ECDSA signature of the grant digest.
    """

    owner: str
    owner_is_contract: bool
    signer: str | None
    signature: bytes

    @property
    def owner_kind(self) -> str:
        """`contract` (EIP-1271 wallet) or `account` (EOA)."""
        return "contract" if self.owner_is_contract else "account"


def grant_typed_data(
    chain_id: int,
    verifying_contract: str,
    dataset_id: int,
    grantee: str,
    purpose: bytes | str,
    not_before: int,
    expires_at: int,
    nonce: int,
    deadline: int,
    terms: GrantTerms | None = None,
) -> dict[str, Any]:
    """The `eth_signTypedData_v4` document of a grant (unsigned), with `terms` (none by default).

    uint256 values are written as decimal strings (JavaScript numbers lose precision past
    2**53); uint64 timestamps, the terms' small integers and the chain id as numbers.
    """
    epsilon, delta, min_participants, max_rounds = (terms or NO_TERMS).to_chain()
    return {
        "types": {"EIP712Domain": copy.deepcopy(EIP712_DOMAIN_FIELDS), "Grant": copy.deepcopy(GRANT_FIELDS)},
        "primaryType": "Grant",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": int(chain_id),
            "verifyingContract": to_checksum_address(verifying_contract),
        },
        "message": {
            "datasetId": str(int(dataset_id)),
            "grantee": to_checksum_address(grantee),
            "purpose": "0x" + purpose_id(purpose).hex(),
            "notBefore": int(not_before),
            "expiresAt": int(expires_at),
            "epsilonHundredths": epsilon,
            "deltaNegExponent": delta,
            "minParticipants": min_participants,
            "maxRounds": max_rounds,
            "nonce": str(int(nonce)),
            "deadline": str(int(deadline)),
        },
    }


# ------------------------------------------------------------------ field parsers


def _uint(value: object, field: str, bits: int) -> int:
    """A uintN from a JSON number, a decimal string or a 0x-hex string."""
    expected = f"expected a uint{bits} as a JSON number, a decimal string or a 0x-hex string"
    number: int
    if isinstance(value, bool):
        raise SignedGrantFormatError(f"{field} is {value!r}: {expected}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise SignedGrantFormatError(f"{field} is {value!r}, not an integer: {expected}")
        if abs(value) > _EXACT_FLOAT_LIMIT:
            raise SignedGrantFormatError(
                f"{field} is the JSON number {value!r}, too large to be exact (over 2**53); "
                "write it as a decimal or 0x-hex string"
            )
        number = int(value)
    elif isinstance(value, str):
        text = value
        if text[:2] in ("0x", "0X"):
            digits = text[2:]
            if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise SignedGrantFormatError(f"{field} is {value!r}, not a valid 0x-hex number: {expected}")
            number = int(digits, 16)
        elif text and all(c in "0123456789" for c in text):
            number = int(text)
        else:
            raise SignedGrantFormatError(f"{field} is {value!r}: {expected}")
    else:
        raise SignedGrantFormatError(f"{field} is {type(value).__name__} {value!r}: {expected}")
    if not 0 <= number < 2**bits:
        raise SignedGrantFormatError(f"{field} is {number}, out of range for uint{bits} (0 to 2**{bits} - 1)")
    return number


def _address(value: object, field: str) -> str:
    """A 20-byte 0x address; a mixed-case one must carry a valid EIP-55 checksum."""
    if not isinstance(value, str) or len(value) != 42 or value[:2] not in ("0x", "0X"):
        raise SignedGrantFormatError(f"{field} is {value!r}: expected a 0x-prefixed 20-byte hex address")
    digits = value[2:]
    if any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise SignedGrantFormatError(f"{field} is {value!r}: not hex")
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
        raise SignedGrantFormatError(
            f"{field} {value} has an invalid EIP-55 checksum (did you mean {to_checksum_address(value)}?)"
        )
    return str(to_checksum_address(value.lower()))


def _bytes32(value: object, field: str) -> bytes:
    if not isinstance(value, str) or value[:2] not in ("0x", "0X"):
        raise SignedGrantFormatError(f"{field} is {value!r}: expected 0x-hex bytes32")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise SignedGrantFormatError(f"{field} is {value!r}: not hex") from None
    if len(raw) != 32:
        raise SignedGrantFormatError(f"{field} is {len(raw)} bytes, expected 32")
    return raw


def _signature(document: dict[str, Any]) -> bytes:
    raw = document.get("signature")
    if not isinstance(raw, str) or raw[:2] not in ("0x", "0X"):
        raise SignedGrantFormatError(
            "the document has no 0x-hex `signature`; sign it first (`sov grant sign`)"
        )
    try:
        return bytes.fromhex(raw[2:])
    except ValueError:
        raise SignedGrantFormatError(
            "`signature` is not hex (an even number of 0-9a-f digits after 0x)"
        ) from None


def _check_types(document: dict[str, Any]) -> None:
    """The document's types and domain are the UsageGrants Grant under the contract's domain."""
    types, domain = document["types"], document["domain"]
    if (
        not isinstance(types, dict)
        or not isinstance(domain, dict)
        or not isinstance(document["message"], dict)
    ):
        raise SignedGrantFormatError("types, domain and message must be JSON objects")
    primary = document["primaryType"]
    if primary != "Grant":
        raise SignedGrantFormatError(f"primaryType is {primary!r}, expected 'Grant'")

    def fields(entry: object) -> list[tuple[object, object]]:
        if not isinstance(entry, list) or not all(isinstance(f, dict) for f in entry):
            return []
        return [(f.get("name"), f.get("type")) for f in entry]

    grant_fields = fields(types.get("Grant"))
    if str(domain.get("version")) == "1" or grant_fields == V1_GRANT_FIELDS:
        raise SignedGrantVersionError(
            f"this grant was signed for UsageGrants version 1 (domain version {domain.get('version')!r}, "
            "a Grant without terms); UsageGrants is now version 2, whose Grant carries terms (DP budget, "
            "minimum participants, maximum rounds), so version-1 signatures are not accepted: the "
            "dataset owner must sign the grant again (`sov grant sign`)"
        )
    if grant_fields != [(f["name"], f["type"]) for f in GRANT_FIELDS]:
        raise SignedGrantFormatError(f"types.Grant is not {GRANT_TYPE}")
    standard = [(f["name"], f["type"]) for f in EIP712_DOMAIN_FIELDS]
    # The domain's type hash follows the listed order: any other list is another digest.
    if "EIP712Domain" in types and fields(types["EIP712Domain"]) != standard:
        raise SignedGrantFormatError(
            "types.EIP712Domain must be name (string), version (string), chainId (uint256), "
            "verifyingContract (address), in that order: the UsageGrants contract's domain"
        )
    extra = sorted(set(domain) - {"name", "version", "chainId", "verifyingContract"})
    if extra:
        raise SignedGrantFormatError(
            f"domain has {', '.join(extra)}, which the UsageGrants domain does not (it has name, version, "
            "chainId, verifyingContract)"
        )
    if domain.get("name") != DOMAIN_NAME or str(domain.get("version")) != DOMAIN_VERSION:
        raise SignedGrantFormatError(
            f"domain is {domain.get('name')!r} version {domain.get('version')!r}, expected "
            f"{DOMAIN_NAME!r} version {DOMAIN_VERSION!r}"
        )


def parse_grant(document: object, *, signed: bool = True) -> SignedGrant:
    """Parse an (optionally signed) `eth_signTypedData_v4` grant document.

    Raises `SignedGrantFormatError` naming the first field that is missing or malformed.
    With `signed=False` the signature is not required (the result carries b"").
    """
    if not isinstance(document, dict):
        raise SignedGrantFormatError(f"a signed grant is a JSON object, not {type(document).__name__}")
    missing_keys = [k for k in ("types", "primaryType", "domain", "message") if k not in document]
    if missing_keys:
        raise SignedGrantFormatError(
            "a signed grant needs the keys types, primaryType, domain, message and signature; "
            f"missing {', '.join(missing_keys)}"
        )
    _check_types(document)
    domain, message = document["domain"], document["message"]
    missing = [f["name"] for f in GRANT_FIELDS if f["name"] not in message]
    if missing:
        raise SignedGrantFormatError(f"message lacks {', '.join(missing)}")
    for key in ("chainId", "verifyingContract"):
        if key not in domain:
            raise SignedGrantFormatError(f"domain lacks {key}")
    encoded = (
        _uint(message["epsilonHundredths"], "message.epsilonHundredths", 16),
        _uint(message["deltaNegExponent"], "message.deltaNegExponent", 8),
        _uint(message["minParticipants"], "message.minParticipants", 8),
        _uint(message["maxRounds"], "message.maxRounds", 16),
    )
    try:
        terms = GrantTerms.from_chain(*encoded)
    except GrantTermsError as error:
        raise SignedGrantFormatError(
            f"message.epsilonHundredths and message.deltaNegExponent: {error}"
        ) from None
    return SignedGrant(
        chain_id=_uint(domain["chainId"], "domain.chainId", 256),
        verifying_contract=_address(domain["verifyingContract"], "domain.verifyingContract"),
        dataset_id=_uint(message["datasetId"], "message.datasetId", 256),
        grantee=_address(message["grantee"], "message.grantee"),
        purpose=_bytes32(message["purpose"], "message.purpose"),
        not_before=_uint(message["notBefore"], "message.notBefore", 64),
        expires_at=_uint(message["expiresAt"], "message.expiresAt", 64),
        nonce=_uint(message["nonce"], "message.nonce", 256),
        deadline=_uint(message["deadline"], "message.deadline", 256),
        signature=_signature(document) if signed else b"",
        terms=terms,
    )


def grant_from_signed(signed: object) -> SignedGrant:
    """Parse a signed document into the arguments of `issueGrantBySig` (signature as given)."""
    return parse_grant(signed, signed=True)


def grant_digest(document: dict[str, Any]) -> bytes:
    """The EIP-712 digest the owner signs (what `UsageGrants` recomputes on chain)."""
    return parse_grant(document, signed=False).digest


def sign_grant(account: LocalAccount, typed_data: dict[str, Any]) -> dict[str, Any]:
    """The document with the owner's 65-byte signature (r, s, v) added as `signature`."""
    grant = parse_grant(typed_data, signed=False)
    signed = account.sign_message(encode_typed_data(full_message=grant.typed_data()))
    out = {k: copy.deepcopy(typed_data[k]) for k in ("types", "primaryType", "domain", "message")}
    out["signature"] = "0x" + bytes(signed.signature).hex()
    return out


# ------------------------------------------------------------------ EOA signatures


def eoa_signature(signature: bytes) -> bytes:
    """An EOA signature as the 65 bytes (r, s, v with v 27/28) the contract's ECDSA check takes.

    Accepts 65 bytes (v 0/1 becomes 27/28) and 64-byte EIP-2098 compact signatures (r, yParity
    and s packed in `vs`); raises `SignedGrantFormatError` for any other length. Other values
    of v or s are left for the contract to refuse (`UsageGrantsInvalidSignature`).
    """
    if len(signature) == 64:
        r, vs = signature[:32], int.from_bytes(signature[32:], "big")
        s, parity = vs & ((1 << 255) - 1), vs >> 255
        return r + s.to_bytes(32, "big") + bytes([27 + parity])
    if len(signature) != 65:
        raise SignedGrantFormatError(
            f"`signature` is {len(signature)} bytes; an account (EOA) owner's signature is 65 bytes "
            "(r, s, v) or 64 bytes (EIP-2098 compact)"
        )
    v = signature[64]
    return signature[:64] + bytes([27 + v]) if v in (0, 1) else signature


def recover_grant_signer(signed: dict[str, Any]) -> str:
    """The EOA whose ECDSA signature this is (65- or 64-byte signatures only).

    Meaningful only when the deed's owner is an EOA: a contract owner's EIP-1271 signature is
    checked by the wallet on chain and does not recover to anyone (see `grant_authority`).
    """
    grant = grant_from_signed(signed)
    return _recover(grant, eoa_signature(grant.signature))


def _recover(grant: SignedGrant, signature: bytes) -> str:
    if signature[64] not in (27, 28):
        raise SignedGrantFormatError(
            f"the signature has v = {signature[64]}; an ECDSA signature's v is 27 or 28"
        )
    if int.from_bytes(signature[32:64], "big") > _SECP256K1_HALF_N:
        raise SignedGrantFormatError(
            "the signature's s is in the upper half of the curve order "
            "(a malleable form the contract refuses)"
        )
    try:
        address: str = Account.recover_message(
            encode_typed_data(full_message=grant.typed_data()), signature=signature
        )
    except (ValueError, TypeError) as error:
        raise SignedGrantFormatError(f"the signature does not recover to an address: {error}") from None
    return address


def grant_authority(grant: SignedGrant, owner: str, owner_is_contract: bool) -> GrantAuthority:
    """Who authorises `grant` given the deed's current `owner`, and the bytes to submit.

    A contract owner's signature goes through unchanged, whatever its length (a 2-of-3 Safe
    signs with 130 bytes, a pre-approved Safe message with none). An EOA owner's must be an
    ECDSA signature (65 or 64 bytes); it is normalised to 65 bytes and its signer recovered
    (None when it recovers to no one: the contract then refuses it). An unregistered dataset
    (zero owner) passes the signature through for the contract to refuse with its own error.
    """
    owner = to_checksum_address(owner)
    if owner_is_contract:
        return GrantAuthority(owner, True, None, grant.signature)
    if owner == ZERO_ADDRESS:
        return GrantAuthority(owner, False, None, grant.signature)
    signature = eoa_signature(grant.signature)
    try:
        signer: str | None = _recover(grant, signature)
    except SignedGrantFormatError:
        signer = None
    return GrantAuthority(owner, False, signer, signature)
