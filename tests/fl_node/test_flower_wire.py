"""The attestation as it travels in a Flower reply: every v2 field, and a missing one named."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from fl_node.flower import wire
from ledger.provenance import Attestation, SignedAttestation, recover_attestation_signer, sign_attestation

LEDGER = "0x9fE46736679d2D9a65F0992F6F006FAbF1A05E5E"


def _signed() -> tuple[SignedAttestation, Attestation]:
    attestation = Attestation(
        job_id=4,
        round=2,
        dataset_id=2**255 + 3,
        base_digest=keccak(text="base"),
        spec_digest=keccak(text="spec"),
        update_digest=keccak(text="update"),
        num_examples=42,
    )
    return sign_attestation(Account.from_key(keccak(text="node")), 31337, LEDGER, attestation), attestation


def test_attestation_round_trips_through_reply_metrics() -> None:
    signed, attestation = _signed()
    metrics = wire.attestation_to_metrics(signed)
    back = wire.attestation_from_metrics(metrics, job_id=4, round_number=2, num_examples=42)
    assert back.attestation == attestation
    assert recover_attestation_signer(back, 31337, LEDGER) == Account.from_key(keccak(text="node")).address


@pytest.mark.parametrize("key", [wire.BASE_DIGEST, wire.SPEC_DIGEST, wire.UPDATE_DIGEST])
def test_reply_without_a_bound_digest_is_refused(key: str) -> None:
    signed, _ = _signed()
    metrics = wire.attestation_to_metrics(signed)
    del metrics[key]
    with pytest.raises(wire.WireError, match=f"no '{key}' entry"):
        wire.attestation_from_metrics(metrics, job_id=4, round_number=2, num_examples=42)
