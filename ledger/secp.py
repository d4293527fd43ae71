"""secp256k1 over 32-byte digests through libsecp256k1 (coincurve), without eth-keys' objects.

eth-account rebuilds the private key object, and derives its public key twice, on every
`unsafe_sign_hash`; eth-keys wraps every recovery in validated objects. A round signs and
recovers one attestation per node, so `DigestSigner` keeps the key object made once and
`fast_recover` recovers with one library call. Both give the same bytes and addresses as
eth-account and eth-keys (RFC 6979 nonces, low-s signatures, v = 27 + recovery id).
"""

from __future__ import annotations

from typing import Any

from coincurve import PrivateKey, PublicKey
from eth_account.datastructures import SignedMessage
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from ledger.provenance import to_checksum_address

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class DigestSigner(LocalAccount):
    """A `LocalAccount` whose `unsafe_sign_hash` uses a key object made once.

    Everything else (transactions, messages, `address`, `key`) is eth-account's own.
    """

    def __init__(self, account: LocalAccount) -> None:
        super().__init__(account._key_obj, account._publicapi)
        self._secp = PrivateKey(bytes(account.key))

    def unsafe_sign_hash(self, message_hash: Any) -> SignedMessage:
        """The 65-byte `r ++ s ++ v` signature of a 32-byte hash, as eth-account's."""
        digest = bytes(HexBytes(message_hash))
        if len(digest) != 32:
            raise ValueError("The message hash must be exactly 32-bytes")
        raw = self._secp.sign_recoverable(digest, hasher=None)
        v = raw[64] + 27
        return SignedMessage(
            message_hash=HexBytes(digest),
            r=int.from_bytes(raw[:32], "big"),
            s=int.from_bytes(raw[32:64], "big"),
            v=v,
            signature=HexBytes(raw[:64] + bytes([v])),
        )


def fast_recover(digest: bytes, signature: str) -> str | None:
    """The checksummed signer of a well-formed low-s `0x` + 65-byte signature over `digest`.

    None for anything else: the caller then runs `ledger.provenance.recover_signer`, which
    says what is wrong (or recovers what this path does not take).
    """
    if not isinstance(signature, str) or len(signature) != 132 or not signature.startswith("0x"):
        return None
    try:
        raw = bytes.fromhex(signature[2:])
    except ValueError:
        return None
    if len(raw) != 65:  # fromhex skips whitespace
        return None
    v = raw[64] - 27 if raw[64] >= 27 else raw[64]
    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:64], "big")
    if v not in (0, 1) or not (0 < r < _SECP256K1_N and 0 < s <= _SECP256K1_N // 2):
        return None
    try:
        public = PublicKey.from_signature_and_message(raw[:64] + bytes([v]), digest, hasher=None)
    except ValueError:
        return None
    return to_checksum_address("0x" + keccak(public.format(compressed=False)[1:])[-20:].hex())
