"""Attestations (EIP-712) and round manifests."""

from __future__ import annotations

import hashlib
import json

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from ledger.merkle import merkle_proof, verify_proof
from ledger.provenance import (
    Attestation,
    AttestationError,
    ManifestError,
    RoundManifest,
    SignedAttestation,
    attestation_leaf,
    attestation_typed_data,
    attestations_root,
    model_digest,
    recover_attestation_signer,
    sign_attestation,
)

LEDGER = "0x9fE46736679d2D9a65F0992F6F006FAbF1A05E5E"
CHAIN = 31337
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def nodes(count: int) -> list[SignedAttestation]:
    signed = []
    for i in range(count):
        account = Account.from_key(keccak(text=f"node{i}"))
        attestation = Attestation(
            job_id=3,
            round=7,
            dataset_id=2**255 + i * 2**200,
            update_digest=keccak(text=f"u{i}"),
            num_examples=10 + i,
        )
        signed.append(sign_attestation(account, CHAIN, LEDGER, attestation))
    return signed


def manifest(signed: list[SignedAttestation]) -> RoundManifest:
    return RoundManifest.from_attestations(
        purpose=keccak(text="ai-training"),
        spec_digest=keccak(text="spec"),
        parent_digest=keccak(text="parent"),
        model_digest=model_digest(b"model bytes"),
        model_cid=CID,
        signed_attestations=signed,
        metrics={"loss": 0.25, "accuracy": 0.875},
    )


def test_model_digest_is_sha256() -> None:
    assert model_digest(b"weights") == hashlib.sha256(b"weights").digest()


def test_leaf_is_the_eip712_digest_wallets_sign() -> None:
    account = Account.from_key(keccak(text="node"))
    attestation = Attestation(
        job_id=1, round=2, dataset_id=2**256 - 1, update_digest=keccak(text="u"), num_examples=5
    )
    typed = attestation_typed_data(CHAIN, LEDGER, attestation)
    wallet = Account.sign_typed_data(account.key, full_message=json.loads(json.dumps(typed)))
    assert bytes(wallet.message_hash) == attestation_leaf(CHAIN, LEDGER, attestation)
    signed = sign_attestation(account, CHAIN, LEDGER, attestation)
    assert signed.signature == "0x" + bytes(wallet.signature).hex()
    assert (
        Account.recover_message(encode_typed_data(full_message=typed), signature=signed.signature)
        == account.address
    )
    assert recover_attestation_signer(signed, CHAIN, LEDGER) == account.address == signed.signer


def test_a_signature_does_not_carry_over_to_another_domain_or_attestation() -> None:
    signed = nodes(1)[0]
    assert recover_attestation_signer(signed, CHAIN + 1, LEDGER) != signed.signer
    other = SignedAttestation(
        attestation=Attestation(3, 7, signed.attestation.dataset_id, signed.attestation.update_digest, 11),
        chain_id=CHAIN,
        ledger_address=LEDGER,
        signature=signed.signature,
        signer=signed.signer,
    )
    assert recover_attestation_signer(other, CHAIN, LEDGER) != signed.signer


def test_malformed_attestations_and_signatures_are_refused() -> None:
    with pytest.raises(AttestationError, match="update_digest must be 32 bytes"):
        Attestation(1, 1, 1, b"short", 1)
    with pytest.raises(
        AttestationError, match=r"round must be between 0 and 18446744073709551615; got 18446744073709551616"
    ):
        Attestation(1, 2**64, 1, bytes(32), 1)
    signed = nodes(1)[0]
    bad = SignedAttestation(signed.attestation, CHAIN, LEDGER, signed.signature[:-2], signed.signer)
    with pytest.raises(AttestationError, match="65 bytes"):
        recover_attestation_signer(bad, CHAIN, LEDGER)
    # The malleated twin (s -> n - s, v flipped) is refused, as OpenZeppelin's ECDSA does.
    raw = bytes.fromhex(signed.signature[2:])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = n - int.from_bytes(raw[32:64], "big")
    twin = "0x" + (raw[:32] + s.to_bytes(32, "big") + bytes([55 - raw[64]])).hex()
    with pytest.raises(AttestationError, match="lower half"):
        recover_attestation_signer(
            SignedAttestation(signed.attestation, CHAIN, LEDGER, twin, signed.signer), CHAIN, LEDGER
        )


def test_attestations_root_commits_to_every_attestation() -> None:
    signed = nodes(5)
    root = attestations_root(signed)
    leaves = [s.leaf() for s in signed]
    assert all(verify_proof(leaf, merkle_proof(leaves, i), root) for i, leaf in enumerate(leaves))
    assert attestations_root(list(reversed(signed))) == root
    assert attestations_root(signed[:4]) != root
    mixed = [
        *signed[:4],
        SignedAttestation(signed[4].attestation, CHAIN + 1, LEDGER, signed[4].signature, signed[4].signer),
    ]
    with pytest.raises(ManifestError, match="share one EIP-712 domain"):
        attestations_root(mixed)


def test_manifest_round_trips_through_canonical_bytes() -> None:
    m = manifest(nodes(4))
    data = m.to_bytes()
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    parsed = RoundManifest.from_bytes(data)
    assert parsed == m and parsed.to_bytes() == data
    document = json.loads(data)
    assert document["schema"] == "sovereign-ledger/round-manifest/v1"
    assert document["participants"][0]["dataset_id"] == f"0x{2**255:064x}"
    assert sum(p["weight"] for p in document["participants"]) == pytest.approx(1.0)
    parsed.check_weights()
    parsed.check_attestations_root()
    for p, s in zip(parsed.signed_attestations(), nodes(4), strict=True):
        assert recover_attestation_signer(p, CHAIN, LEDGER) == s.signer


def _edit(data: bytes, change: object) -> bytes:
    document = json.loads(data)
    change(document)  # type: ignore[operator]
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["participants"][0].update(dataset_id=12),
            "participants.0.dataset_id: Value error, expected 0x followed by 64 hex digits",
        ),
        (
            lambda d: d.update(parent_digest="0x12"),
            "parent_digest: Value error, expected 0x followed by 64 hex digits",
        ),
        (lambda d: d.update(job_id="3"), "job_id: Input should be a valid integer"),
        (lambda d: d.update(aggregation="median"), "aggregation: Input should be 'fedavg'"),
        (lambda d: d.update(extra=1), "extra: Extra inputs are not permitted"),
        (lambda d: d.update(model_cid="QmNotV1"), "model_cid: Value error, expected a CIDv1 in base32"),
        (lambda d: d["participants"].reverse(), "strictly ascending dataset_id order"),
        (lambda d: d.update(training_ledger=LEDGER.lower().replace("fe", "FE")), "invalid EIP-55 checksum"),
    ],
)
def test_from_bytes_names_the_bad_field(change: object, message: str) -> None:
    data = manifest(nodes(3)).to_bytes()
    with pytest.raises(
        ManifestError, match="invalid round manifest: .*" + message.replace("(", r"\(").replace(".", r"\.")
    ):
        RoundManifest.from_bytes(_edit(data, change))
    assert RoundManifest.from_bytes(data).to_bytes() == data


def test_from_bytes_refuses_non_utf8() -> None:
    with pytest.raises(ManifestError, match="not UTF-8"):
        RoundManifest.from_bytes(b"\xff{}")


def test_weight_and_root_checks_name_the_round_and_participant() -> None:
    data = manifest(nodes(3)).to_bytes()
    tampered = RoundManifest.from_bytes(_edit(data, lambda d: d["participants"][1].update(weight=0.5)))
    dataset = tampered.participants[1].dataset_id
    with pytest.raises(
        ManifestError,
        match=f"job 3 round 7: participant 0x{dataset:064x} has weight 0.5 but attests 11 of 33",
    ):
        tampered.check_weights()
    forged = RoundManifest.from_bytes(_edit(data, lambda d: d["participants"][2].update(num_examples=99)))
    pattern = r"job 3 round 7: attestations_root 0x[0-9a-f]{64} does not match"
    with pytest.raises(ManifestError, match=pattern):
        forged.check_attestations_root()


def test_from_attestations_refuses_mixed_rounds() -> None:
    signed = nodes(2)
    other = sign_attestation(
        Account.from_key(keccak(text="x")), CHAIN, LEDGER, Attestation(3, 8, 5, bytes(32), 1)
    )
    with pytest.raises(ManifestError, match="is for job 3 round 8; expected job 3 round 7"):
        manifest([*signed, other])
