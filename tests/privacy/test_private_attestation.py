"""The DP attestation's EIP-712 form: what eth-account hashes is the leaf the node signs."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from ledger.privacy import DPRound
from ledger.provenance import (
    Attestation,
    AttestationError,
    PrivacyClaim,
    attestation_leaf,
    attestation_typed_data,
    recover_attestation_signer,
    sign_attestation,
)

CHAIN = 31337
LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DP = DPRound(noise_multiplier_e6=1_234_567, max_grad_norm_e6=1_000_000, sample_rate_e9=222_222_223, steps=5)


def _attestation(privacy: PrivacyClaim | None) -> Attestation:
    return Attestation(7, 3, 2**255 + 11, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, 144, privacy)


def test_private_attestation_typed_data_hashes_to_the_signed_leaf() -> None:
    attestation = _attestation(PrivacyClaim(DP, 2_500_001))
    typed = attestation_typed_data(CHAIN, LEDGER, attestation)
    assert typed["primaryType"] == "PrivateAttestation"
    signable = encode_typed_data(full_message=typed)
    digest = b"\x19" + signable.version + signable.header + signable.body
    from eth_utils.crypto import keccak

    assert keccak(digest) == attestation_leaf(CHAIN, LEDGER, attestation)
    account = Account.create()
    signed = sign_attestation(account, CHAIN, LEDGER, attestation)
    assert recover_attestation_signer(signed, CHAIN, LEDGER) == account.address


def test_privacy_fields_are_bound_by_the_signature() -> None:
    account = Account.create()
    signed = sign_attestation(account, CHAIN, LEDGER, _attestation(PrivacyClaim(DP, 2_500_001)))
    for other in (
        PrivacyClaim(DP, 2_400_000),  # a smaller cumulative epsilon
        PrivacyClaim(DPRound(2_000_000, DP.max_grad_norm_e6, DP.sample_rate_e9, DP.steps), 2_500_001),
        None,  # the DP fields dropped: the v2 type
    ):
        forged = type(signed)(
            _attestation(other), signed.chain_id, signed.ledger_address, signed.signature, signed.signer
        )
        assert recover_attestation_signer(forged, CHAIN, LEDGER) != account.address
    # without privacy the v2 leaf is unchanged
    plain = _attestation(None)
    assert attestation_typed_data(CHAIN, LEDGER, plain)["primaryType"] == "Attestation"


def test_privacy_must_be_a_claim() -> None:
    with pytest.raises(AttestationError, match="privacy must be a PrivacyClaim"):
        _attestation({"epsilon": 1})  # type: ignore[arg-type]
