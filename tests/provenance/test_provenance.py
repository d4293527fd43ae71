"""Attestations (EIP-712) and round manifests."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from ledger.merkle import merkle_proof, verify_proof
from ledger.provenance import (
    ATTESTATION_TYPE,
    DOMAIN_VERSION,
    EIP1271_MAGIC_VALUE,
    Attestation,
    AttestationError,
    ManifestError,
    RoundManifest,
    SignedAttestation,
    attestation_leaf,
    attestation_typed_data,
    attestations_root,
    eip1271_accepts,
    eip1271_call_data,
    model_digest,
    recover_attestation_signer,
    sign_attestation,
)

LEDGER = "0x9fE46736679d2D9a65F0992F6F006FAbF1A05E5E"
CHAIN = 31337
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
PARENT = keccak(text="parent")
SPEC = keccak(text="spec")


def update_cid(i: int) -> str:
    return "bafkrei" + "abcdefghijklmnopqrstuvwxyz234567"[i % 32] * 52


def nodes(count: int) -> list[SignedAttestation]:
    signed = []
    for i in range(count):
        account = Account.from_key(keccak(text=f"node{i}"))
        attestation = Attestation(
            job_id=3,
            round=7,
            dataset_id=2**255 + i * 2**200,
            base_digest=PARENT,
            spec_digest=SPEC,
            update_digest=keccak(text=f"u{i}"),
            num_examples=10 + i,
        )
        signed.append(sign_attestation(account, CHAIN, LEDGER, attestation))
    return signed


def cids_for(signed: list[SignedAttestation]) -> dict[int, str]:
    return {s.attestation.dataset_id: update_cid(i) for i, s in enumerate(signed)}


def manifest(signed: list[SignedAttestation], cids: dict[int, str] | None = None) -> RoundManifest:
    return RoundManifest.from_attestations(
        purpose=keccak(text="ai-training"),
        spec_digest=SPEC,
        parent_digest=PARENT,
        model_digest=model_digest(b"model bytes"),
        model_cid=CID,
        signed_attestations=signed,
        update_cids=cids_for(signed) if cids is None else cids,
        metrics={"loss": 0.25, "accuracy": 0.875},
    )


def att(job: int, rnd: int, dataset: int, update: bytes, n: int, **digests: bytes) -> Attestation:
    return Attestation(job, rnd, dataset, digests.get("base", PARENT), digests.get("spec", SPEC), update, n)


def test_model_digest_is_sha256() -> None:
    assert model_digest(b"weights") == hashlib.sha256(b"weights").digest()


def test_leaf_is_the_eip712_digest_wallets_sign() -> None:
    account = Account.from_key(keccak(text="node"))
    attestation = att(2**256 - 1 - 2**255, 2**64 - 1, 2**256 - 1, keccak(text="u"), 5)
    typed = attestation_typed_data(CHAIN, LEDGER, attestation)
    assert typed["domain"]["version"] == "2"
    assert [f["name"] for f in typed["types"]["Attestation"]] == [
        "jobId",
        "round",
        "datasetId",
        "baseDigest",
        "specDigest",
        "updateDigest",
        "numExamples",
    ]
    wallet = Account.sign_typed_data(account.key, full_message=json.loads(json.dumps(typed)))
    assert bytes(wallet.message_hash) == attestation_leaf(CHAIN, LEDGER, attestation)
    signed = sign_attestation(account, CHAIN, LEDGER, attestation)
    assert signed.signature == "0x" + bytes(wallet.signature).hex()
    assert (
        Account.recover_message(encode_typed_data(full_message=typed), signature=signed.signature)
        == account.address
    )
    assert recover_attestation_signer(signed, CHAIN, LEDGER) == account.address == signed.signer


def test_type_string_and_struct_hash_are_the_v2_format() -> None:
    assert ATTESTATION_TYPE == (
        "Attestation(uint256 jobId,uint64 round,uint256 datasetId,bytes32 baseDigest,"
        "bytes32 specDigest,bytes32 updateDigest,uint64 numExamples)"
    )
    assert DOMAIN_VERSION == "2"
    a = att(3, 7, 9, keccak(text="u"), 11)
    expected = keccak(
        keccak(text=ATTESTATION_TYPE)
        + encode(
            ["uint256", "uint64", "uint256", "bytes32", "bytes32", "bytes32", "uint64"],
            [3, 7, 9, PARENT, SPEC, keccak(text="u"), 11],
        )
    )
    assert a.struct_hash() == expected


@pytest.mark.parametrize(
    "change",
    [
        {"round": 8},
        {"num_examples": 12},
        {"base_digest": keccak(text="another base")},
        {"spec_digest": keccak(text="another spec")},
        {"update_digest": keccak(text="another update")},
    ],
)
def test_a_signature_does_not_carry_over_to_another_domain_or_attestation(change: dict[str, object]) -> None:
    signed = nodes(1)[0]
    assert recover_attestation_signer(signed, CHAIN + 1, LEDGER) != signed.signer
    assert recover_attestation_signer(signed, CHAIN, LEDGER) == signed.signer
    other = SignedAttestation(
        attestation=replace(signed.attestation, **change),  # type: ignore[arg-type]
        chain_id=CHAIN,
        ledger_address=LEDGER,
        signature=signed.signature,
        signer=signed.signer,
    )
    assert recover_attestation_signer(other, CHAIN, LEDGER) != signed.signer


def test_malformed_attestations_and_signatures_are_refused() -> None:
    with pytest.raises(AttestationError, match="update_digest must be 32 bytes"):
        att(1, 1, 1, b"short", 1)
    with pytest.raises(AttestationError, match="base_digest must be 32 bytes"):
        att(1, 1, 1, bytes(32), 1, base=b"short")
    with pytest.raises(AttestationError, match="spec_digest must be 32 bytes"):
        att(1, 1, 1, bytes(32), 1, spec=bytes(31))
    with pytest.raises(
        AttestationError, match=r"round must be between 0 and 18446744073709551615; got 18446744073709551616"
    ):
        att(1, 2**64, 1, bytes(32), 1)
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
    assert document["schema"] == "sovereign-ledger/round-manifest/v2"
    assert document["participants"][0]["dataset_id"] == f"0x{2**255:064x}"
    assert [p["update_cid"] for p in document["participants"]] == [update_cid(i) for i in range(4)]
    assert parsed.update_cids() == [update_cid(i) for i in range(4)]
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
        (
            lambda d: d["participants"][1].update(update_cid="QmNotV1"),
            "participants.1.update_cid: Value error, expected a CIDv1 in base32",
        ),
        (lambda d: d["participants"][0].pop("update_cid"), "participants.0.update_cid: Field required"),
        (lambda d: d.update(schema="sovereign-ledger/round-manifest/v3"), "schema: Input should be"),
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


def test_v1_manifests_are_refused_as_predating_verifiable_aggregation() -> None:
    document = json.loads(manifest(nodes(2)).to_bytes())
    document["schema"] = "sovereign-ledger/round-manifest/v1"
    for p in document["participants"]:
        del p["update_cid"]
    with pytest.raises(ManifestError, match="v1 manifests predate verifiable aggregation") as raised:
        RoundManifest.from_bytes(json.dumps(document).encode())
    assert "sovereign-ledger/round-manifest/v2" in str(raised.value)


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
    other = sign_attestation(Account.from_key(keccak(text="x")), CHAIN, LEDGER, att(3, 8, 5, bytes(32), 1))
    with pytest.raises(ManifestError, match="is for job 3 round 8; expected job 3 round 7"):
        manifest([*signed, other])


@pytest.mark.parametrize(
    ("digests", "message"),
    [
        (
            {"base": keccak(text="stale")},
            "names base model 0x{base}; the round's parent digest is 0x{parent}",
        ),
        ({"spec": keccak(text="other")}, "names spec digest 0x{spec}; the job's spec digest is 0x{job_spec}"),
    ],
)
def test_from_attestations_refuses_another_base_or_spec(digests: dict[str, bytes], message: str) -> None:
    signed = nodes(2)
    odd = sign_attestation(
        Account.from_key(keccak(text="x")), CHAIN, LEDGER, att(3, 7, 5, bytes(32), 1, **digests)
    )
    expected = message.format(
        base=digests.get("base", b"").hex(),
        spec=digests.get("spec", b"").hex(),
        parent=PARENT.hex(),
        job_spec=SPEC.hex(),
    )
    with pytest.raises(ManifestError, match=f"attestation for dataset 0x{5:064x} " + expected):
        manifest([*signed, odd], {**cids_for(signed), 5: update_cid(9)})


def test_from_attestations_needs_exactly_one_update_cid_per_attestation() -> None:
    signed = nodes(3)
    cids = cids_for(signed)
    missing = dict(cids)
    del missing[signed[1].attestation.dataset_id]
    with pytest.raises(
        ManifestError, match=f"no update CID given for dataset 0x{signed[1].attestation.dataset_id:064x}"
    ):
        manifest(signed, missing)
    with pytest.raises(
        ManifestError, match=f"update CIDs given for dataset\\(s\\) \\['0x{7:064x}'\\] that no attestation"
    ):
        manifest(signed, {**cids, 7: update_cid(5)})


def test_eip1271_call_data_is_the_abi_encoding() -> None:
    digest = keccak(text="d")
    for signature in ("0x" + "11" * 65, "0x" + "22" * 130, "0x"):
        raw = bytes.fromhex(signature[2:])
        expected = keccak(text="isValidSignature(bytes32,bytes)")[:4] + encode(
            ["bytes32", "bytes"], [digest, raw]
        )
        assert eip1271_call_data(digest, signature) == "0x" + expected.hex()
    assert eip1271_accepts(EIP1271_MAGIC_VALUE + bytes(28))
    assert not eip1271_accepts(bytes.fromhex("ffffffff") + bytes(28))
    assert not eip1271_accepts(EIP1271_MAGIC_VALUE + bytes(27) + b"\x01")
    assert not eip1271_accepts(b"")
    with pytest.raises(AttestationError, match="signature must be 0x-prefixed hex bytes"):
        eip1271_call_data(digest, "0x123")
