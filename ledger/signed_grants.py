"""Off-chain grants: EIP-712 `Grant` typed data, signed by the dataset owner, redeemed by anyone.

The document is exactly what a wallet's `eth_signTypedData_v4` takes (`types` including
`EIP712Domain`, `primaryType`, `domain`, `message`) plus the 65-byte `signature`, so a grant
signed by any standard wallet or library can be redeemed. uint256 values are written as
decimal strings (JavaScript numbers lose precision past 2**53); uint64 timestamps as numbers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ledger.errors import SignedGrantFormatError
from ledger.purposes import purpose_id

DOMAIN_NAME = "UsageGrants"
DOMAIN_VERSION = "1"
GRANT_TYPE = (
    "Grant(uint256 datasetId,address grantee,bytes32 purpose,uint64 notBefore,uint64 expiresAt,"
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
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


@dataclass(frozen=True)
class SignedGrant:
    """The arguments of `UsageGrants.issueGrantBySig`, parsed from a signed document."""

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
) -> dict[str, Any]:
    """The `eth_signTypedData_v4` document of a grant (unsigned)."""
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
            "nonce": str(int(nonce)),
            "deadline": str(int(deadline)),
        },
    }


def _unsigned(document: dict[str, Any]) -> dict[str, Any]:
    """The typed-data part of a (possibly signed) document, checked to be a UsageGrants Grant."""
    try:
        types = document["types"]
        domain = document["domain"]
        message = document["message"]
        primary = document["primaryType"]
    except (KeyError, TypeError):
        raise SignedGrantFormatError(
            "a signed grant needs the keys types, primaryType, domain, message and signature"
        ) from None
    if primary != "Grant":
        raise SignedGrantFormatError(f"primaryType is {primary!r}, expected 'Grant'")
    grant_fields = [(f.get("name"), f.get("type")) for f in types.get("Grant", [])]
    if grant_fields != [(f["name"], f["type"]) for f in GRANT_FIELDS]:
        raise SignedGrantFormatError(f"types.Grant is not {GRANT_TYPE}")
    if domain.get("name") != DOMAIN_NAME or str(domain.get("version")) != DOMAIN_VERSION:
        raise SignedGrantFormatError(
            f"domain is {domain.get('name')!r} version {domain.get('version')!r}, expected "
            f"{DOMAIN_NAME!r} version {DOMAIN_VERSION!r}"
        )
    missing = [f["name"] for f in GRANT_FIELDS if f["name"] not in message]
    if missing:
        raise SignedGrantFormatError(f"message lacks {', '.join(missing)}")
    return {"types": types, "primaryType": primary, "domain": domain, "message": message}


def grant_digest(document: dict[str, Any]) -> bytes:
    """The EIP-712 digest the owner signs (what `UsageGrants` recomputes on chain)."""
    signable = encode_typed_data(full_message=_unsigned(document))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_grant(account: LocalAccount, typed_data: dict[str, Any]) -> dict[str, Any]:
    """The document with the owner's 65-byte signature (r, s, v) added as `signature`."""
    unsigned = _unsigned(typed_data)
    signed = account.sign_message(encode_typed_data(full_message=unsigned))
    out = copy.deepcopy(unsigned)
    out["signature"] = "0x" + bytes(signed.signature).hex()
    return out


def _signature(document: dict[str, Any]) -> bytes:
    raw = document.get("signature")
    if not isinstance(raw, str) or not raw.startswith("0x"):
        raise SignedGrantFormatError(
            "the document has no 0x-hex `signature`; sign it first (`sov grant sign`)"
        )
    try:
        signature = bytes.fromhex(raw[2:])
    except ValueError:
        raise SignedGrantFormatError("`signature` is not hex") from None
    if len(signature) != 65:
        raise SignedGrantFormatError(f"`signature` is {len(signature)} bytes, expected 65 (r, s, v)")
    return signature


def recover_grant_signer(signed: dict[str, Any]) -> str:
    """The address that signed the grant (EOA signatures; contract wallets are checked on chain)."""
    signature = _signature(signed)
    try:
        address: str = Account.recover_message(
            encode_typed_data(full_message=_unsigned(signed)), signature=signature
        )
    except (ValueError, TypeError) as error:
        raise SignedGrantFormatError(f"the signature does not recover to an address: {error}") from None
    return address


def grant_from_signed(signed: dict[str, Any]) -> SignedGrant:
    """Parse a signed document into the arguments of `issueGrantBySig`."""
    unsigned = _unsigned(signed)
    message, domain = unsigned["message"], unsigned["domain"]
    try:
        return SignedGrant(
            chain_id=int(domain["chainId"]),
            verifying_contract=to_checksum_address(domain["verifyingContract"]),
            dataset_id=int(message["datasetId"]),
            grantee=to_checksum_address(message["grantee"]),
            purpose=purpose_id(str(message["purpose"])),
            not_before=int(message["notBefore"]),
            expires_at=int(message["expiresAt"]),
            nonce=int(message["nonce"]),
            deadline=int(message["deadline"]),
            signature=_signature(signed),
        )
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, SignedGrantFormatError):
            raise
        raise SignedGrantFormatError(f"the grant message has an invalid field: {error}") from None
