"""`ledger.secp`: the same signatures as eth-account and the same signers as `recover_signer`."""

from __future__ import annotations

import random

import pytest
from eth_account import Account

from ledger.errors import LedgerError
from ledger.keys import dev_account
from ledger.provenance import recover_signer
from ledger.secp import DigestSigner, fast_recover

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_digest_signer_signs_as_eth_account_does() -> None:
    rng = random.Random(1)
    for index in range(3):
        account = dev_account(index)
        signer = DigestSigner(account)
        assert signer.address == account.address and signer.key == account.key
        for _ in range(50):
            digest = rng.randbytes(32)
            mine, theirs = signer.unsafe_sign_hash(digest), account.unsafe_sign_hash(digest)
            assert mine == theirs  # message_hash, r, s, v and signature bytes
            assert fast_recover(digest, "0x" + bytes(mine.signature).hex()) == account.address


def test_digest_signer_refuses_a_hash_that_is_not_32_bytes() -> None:
    with pytest.raises(ValueError, match="exactly 32-bytes"):
        DigestSigner(dev_account(0)).unsafe_sign_hash(b"\x01" * 31)


def _variants(signature: bytes) -> list[str]:
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    high_s = (N - s).to_bytes(32, "big")
    text = signature.hex()
    return [
        "0x" + text,
        "0x" + text.upper(),
        "0x" + (r + signature[32:64] + bytes([v - 27])).hex(),  # v as 0/1
        "0x" + (r + high_s + bytes([v ^ 1])).hex(),  # the malleable twin
        "0x" + (r + signature[32:64] + bytes([29])).hex(),
        "0x" + (bytes(32) + signature[32:]).hex(),  # r = 0
        "0x" + (N.to_bytes(32, "big") + signature[32:]).hex(),  # r = n
        "0x" + text[:-2],
        "0x" + text + "00",
        "0x" + text[:10] + " " + text[11:],
        text + "ab",
        "0x" + "zz" + text[2:],
    ]


def test_fast_recover_agrees_with_recover_signer_or_leaves_it_to_it() -> None:
    """For every input, the fast path gives recover_signer's answer, or None (never another address)."""
    rng = random.Random(2)
    account = Account.create("secp fast paths")
    seen_fast = seen_none = 0
    for _ in range(40):
        digest = rng.randbytes(32)
        signature = bytes(account.unsafe_sign_hash(digest).signature)
        for candidate in [*_variants(signature), "0x" + rng.randbytes(65).hex()]:
            fast = fast_recover(digest, candidate)
            try:
                slow: str | None = recover_signer(digest, candidate)
            except LedgerError:
                slow = None
            if fast is None:
                seen_none += 1
            else:
                seen_fast += 1
                assert fast == slow
    assert seen_fast and seen_none
