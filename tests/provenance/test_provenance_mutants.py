"""Exact forms and boundaries of `ledger.provenance`: typed data, privacy claims, parsers, checks.

Fast cases for `make mutation`; the round-trip and refusal cases are in `test_provenance.py`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

from ledger.privacy import DPRound
from ledger.provenance import (
    EIP1271_MAGIC_VALUE,
    Attestation,
    AttestationError,
    ManifestError,
    ParticipantPrivacy,
    PrivacyClaim,
    RoundManifest,
    SignedAttestation,
    _check_address,
    _check_uint,
    _describe,
    _parse_address,
    _parse_bytes32,
    _parse_signature,
    _parse_uint256_id,
    _schema_of,
    attestation_leaf,
    attestation_typed_data,
    attestations_root,
    domain_separator,
    eip1271_accepts,
    eip1271_call_data,
    recover_signer,
    sign_attestation,
)

LEDGER = "0x9fe46736679D2d9a65f0992f6f006fabF1A05e5e"  # EIP-55
CHAIN = 31337
PARENT = keccak(text="parent")
SPEC = keccak(text="spec")
UPDATE = keccak(text="update")
DP = DPRound(noise_multiplier_e6=1_100_000, max_grad_norm_e6=2_000_000, sample_rate_e9=30_000_000, steps=12)


def _attestation(privacy: PrivacyClaim | None = None) -> Attestation:
    return Attestation(3, 7, 9, PARENT, SPEC, UPDATE, 11, privacy)


V2_TYPES = {
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
}
MESSAGE = {
    "jobId": 3,
    "round": 7,
    "datasetId": 9,
    "baseDigest": "0x" + PARENT.hex(),
    "specDigest": "0x" + SPEC.hex(),
    "updateDigest": "0x" + UPDATE.hex(),
    "numExamples": 11,
}
DOMAIN = {"name": "TrainingLedger", "version": "2", "chainId": CHAIN, "verifyingContract": LEDGER}


def test_v2_typed_data_is_exactly_the_documented_json() -> None:
    typed = attestation_typed_data(CHAIN, LEDGER.lower(), _attestation())
    assert typed == {"types": V2_TYPES, "primaryType": "Attestation", "domain": DOMAIN, "message": MESSAGE}
    signable = encode_typed_data(full_message=typed)
    assert keccak(b"\x19" + signable.version + signable.header + signable.body) == attestation_leaf(
        CHAIN, LEDGER, _attestation()
    )


def test_private_typed_data_appends_the_dp_fields() -> None:
    claim = PrivacyClaim(DP, 2_500_000)
    attestation = _attestation(claim)
    typed = attestation_typed_data(CHAIN, LEDGER, attestation)
    dp_fields = [
        {"name": name, "type": "uint64"}
        for name in ("noiseMultiplierE6", "maxGradNormE6", "sampleRateE9", "steps", "epsilonSpentE6")
    ]
    assert typed == {
        "types": {
            "EIP712Domain": V2_TYPES["EIP712Domain"],
            "PrivateAttestation": V2_TYPES["Attestation"] + dp_fields,
        },
        "primaryType": "PrivateAttestation",
        "domain": DOMAIN,
        "message": {
            **MESSAGE,
            "noiseMultiplierE6": 1_100_000,
            "maxGradNormE6": 2_000_000,
            "sampleRateE9": 30_000_000,
            "steps": 12,
            "epsilonSpentE6": 2_500_000,
        },
    }
    # a wallet signing this JSON signs the node's leaf
    account = Account.from_key(keccak(text="node"))
    wallet = Account.sign_typed_data(account.key, full_message=json.loads(json.dumps(typed)))
    assert bytes(wallet.message_hash) == attestation_leaf(CHAIN, LEDGER, attestation)
    assert (
        sign_attestation(account, CHAIN, LEDGER, attestation).signature
        == "0x" + bytes(wallet.signature).hex()
    )


def test_private_struct_hash_binds_every_dp_field() -> None:
    base = _attestation(PrivacyClaim(DP, 2_500_000))
    leaves = {attestation_leaf(CHAIN, LEDGER, base), attestation_leaf(CHAIN, LEDGER, _attestation())}
    for change in (
        {"noise_multiplier_e6": 1_100_001},
        {"max_grad_norm_e6": 2_000_001},
        {"sample_rate_e9": 30_000_001},
        {"steps": 13},
    ):
        dp = DPRound(**{**DP.__dict__, **change}) if hasattr(DP, "__dict__") else None
        if dp is None:
            fields = {
                f: getattr(DP, f)
                for f in ("noise_multiplier_e6", "max_grad_norm_e6", "sample_rate_e9", "steps")
            }
            dp = DPRound(**{**fields, **change})
        leaves.add(attestation_leaf(CHAIN, LEDGER, _attestation(PrivacyClaim(dp, 2_500_000))))
    leaves.add(attestation_leaf(CHAIN, LEDGER, _attestation(PrivacyClaim(DP, 2_500_001))))
    assert len(leaves) == 7


def test_privacy_claim_checks_its_fields() -> None:
    claim = PrivacyClaim(DP, 2**64 - 1)
    assert claim.epsilon_spent == (2**64 - 1) / 1_000_000
    assert PrivacyClaim(DP, 1_500_000).epsilon_spent == 1.5
    assert PrivacyClaim(DP, 0).epsilon_spent == 0.0
    with pytest.raises(AttestationError) as raised:
        PrivacyClaim("dp", 1)  # type: ignore[arg-type]
    assert str(raised.value) == "privacy.dp must be a DPRound; got 'dp'"
    with pytest.raises(AttestationError) as raised:
        PrivacyClaim(DP, 2**64)
    assert (
        str(raised.value)
        == "epsilon_spent_e6 must be between 0 and 18446744073709551615; got 18446744073709551616"
    )
    with pytest.raises(AttestationError) as raised:
        PrivacyClaim(DP, -1)
    assert str(raised.value) == "epsilon_spent_e6 must be between 0 and 18446744073709551615; got -1"
    with pytest.raises(AttestationError) as raised:
        _attestation("claim")  # type: ignore[arg-type]
    assert str(raised.value) == "privacy must be a PrivacyClaim or None; got 'claim'"


def test_participant_privacy_of_a_claim_copies_each_field() -> None:
    privacy = ParticipantPrivacy.of(PrivacyClaim(DP, 2_500_000))
    assert privacy.model_dump() == {
        "noise_multiplier_e6": 1_100_000,
        "max_grad_norm_e6": 2_000_000,
        "sample_rate_e9": 30_000_000,
        "steps": 12,
        "epsilon_spent_e6": 2_500_000,
    }


def test_uint_and_address_checks_name_the_field_and_the_range() -> None:
    assert _check_uint("n", 5, 10, 5) == 5
    assert _check_uint("n", 10, 10) == 10
    with pytest.raises(AttestationError) as raised:
        _check_uint("n", 4, 10, 5)
    assert str(raised.value) == "n must be between 5 and 10; got 4"
    with pytest.raises(AttestationError) as raised:
        _check_uint("n", True, 10)
    assert str(raised.value) == "n must be an integer; got bool True"
    with pytest.raises(AttestationError) as raised:
        _check_uint("n", "5", 10)
    assert str(raised.value) == "n must be an integer; got str '5'"
    assert _check_address("a", LEDGER.lower()) == LEDGER
    for bad in (5, "0x12", None):
        with pytest.raises(AttestationError) as raised:
            _check_address("ledger_address", bad)
        assert str(raised.value) == f"ledger_address must be a 20-byte hex address; got {bad!r}"
    with pytest.raises(AttestationError) as raised:
        attestation_typed_data(CHAIN, "0x12", _attestation())
    assert str(raised.value) == "ledger_address must be a 20-byte hex address; got '0x12'"
    with pytest.raises(AttestationError) as raised:
        domain_separator(-1, LEDGER)
    assert str(raised.value) == f"chain_id must be between 0 and {2**256 - 1}; got -1"


def test_recover_signer_boundaries() -> None:
    account = Account.from_key(keccak(text="node"))
    digest = keccak(text="digest")
    signature = "0x" + bytes(account.unsafe_sign_hash(digest).signature).hex()
    assert recover_signer(digest, signature) == account.address
    raw = bytes.fromhex(signature[2:])
    # v as 0/1 is accepted as well as 27/28
    assert recover_signer(digest, "0x" + (raw[:64] + bytes([raw[64] - 27])).hex()) == account.address
    for v in (2, 26, 29):
        with pytest.raises(AttestationError) as raised:
            recover_signer(digest, "0x" + (raw[:64] + bytes([v])).hex())
        assert str(raised.value) == f"signature recovery id v must be 27 or 28; got {v}"
    zero_r = "0x" + (bytes(32) + raw[32:]).hex()
    zero_s = "0x" + (raw[:32] + bytes(32) + raw[64:]).hex()
    for bad in (zero_r, zero_s):
        with pytest.raises(AttestationError) as raised:
            recover_signer(digest, bad)
        assert str(raised.value) == "signature is malleable or out of range (s must be in the lower half)"
    # r and s at the edges of their ranges: in range is not refused as malleable
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    for r_value, s_value in ((1, int.from_bytes(raw[32:64], "big")), (int.from_bytes(raw[:32], "big"), 1)):
        edge = "0x" + (r_value.to_bytes(32, "big") + s_value.to_bytes(32, "big") + raw[64:]).hex()
        try:
            recovered = recover_signer(digest, edge)
        except AttestationError as error:
            assert str(error).startswith("signature does not recover a public key"), str(error)
        else:
            assert recovered != account.address
    for r_value in (n, n + 1):
        edge = "0x" + (r_value.to_bytes(32, "big") + raw[32:]).hex()
        with pytest.raises(AttestationError) as raised:
            recover_signer(digest, edge)
        assert str(raised.value) == "signature is malleable or out of range (s must be in the lower half)"
    with pytest.raises(AttestationError) as raised:
        recover_signer(digest, 5)  # type: ignore[arg-type]
    assert str(raised.value) == "signature must be 0x + 130 hex digits (65 bytes); got 5"


def _manifest_json() -> dict[str, object]:
    account = Account.from_key(keccak(text="node"))
    signed = [sign_attestation(account, CHAIN, LEDGER, Attestation(3, 7, 9, PARENT, SPEC, UPDATE, 30))]
    second = Account.from_key(keccak(text="node 2"))
    signed.append(sign_attestation(second, CHAIN, LEDGER, Attestation(3, 7, 10, PARENT, SPEC, UPDATE, 70)))
    manifest = RoundManifest.from_attestations(
        purpose=keccak(text="ai-training"),
        spec_digest=SPEC,
        parent_digest=PARENT,
        model_digest=keccak(text="model"),
        model_cid="bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        signed_attestations=signed,
        update_cids={9: "bafkrei" + "a" * 52, 10: "bafkrei" + "b" * 52},
    )
    document: dict[str, object] = json.loads(manifest.to_bytes())
    return document


def _with_weights(first: float, second: float) -> RoundManifest:
    document = _manifest_json()
    participants = document["participants"]
    assert isinstance(participants, list)
    participants[0]["weight"] = first
    participants[1]["weight"] = second
    return RoundManifest.from_bytes(json.dumps(document).encode())


def test_manifest_bytes_carry_text_as_utf8_not_escapes() -> None:
    document = _manifest_json()
    document["metrics"] = {"précision": 0.9}
    manifest = RoundManifest.from_bytes(json.dumps(document).encode())
    data = manifest.to_bytes()
    assert '"metrics":{"précision":0.9}'.encode() in data and b"\\u00e9" not in data
    assert RoundManifest.from_bytes(data).to_bytes() == data


def test_weights_are_checked_to_an_absolute_1e_12() -> None:
    _with_weights(0.3, 0.7).check_weights()
    _with_weights(0.3 + 9e-13, 0.7 - 9e-13).check_weights()  # within the tolerance
    with pytest.raises(ManifestError) as raised:
        _with_weights(0.3 + 2e-12, 0.7).check_weights()
    assert str(raised.value) == (
        f"job 3 round 7: participant 0x{9:064x} has weight {0.3 + 2e-12!r} but attests 30 of 100 examples "
        "(expected 0.3)"
    )
    # 3e-10 relative to 0.7 is more than 1e-12: the tolerance is absolute only
    with pytest.raises(ManifestError, match=f"participant 0x{10:064x} has weight"):
        _with_weights(0.3, 0.7 * (1 + 3e-10)).check_weights()


def test_describe_lists_every_problem_with_its_location() -> None:
    document = _manifest_json()
    document["round"] = 0
    document["job_id"] = "x"
    with pytest.raises(ManifestError) as raised:
        RoundManifest.from_bytes(json.dumps(document).encode())
    message = str(raised.value)
    assert message.startswith("invalid round manifest: ")
    assert "; " in message and "http" not in message
    problems = message.removeprefix("invalid round manifest: ").split("; ")
    assert [p.split(":")[0] for p in problems] == ["job_id", "round"]
    with pytest.raises(ManifestError) as raised:
        RoundManifest.from_bytes(b"[1, 2]")
    assert str(raised.value).startswith("invalid round manifest: (document): ")
    try:
        RoundManifest.model_validate_json("[]")
    except Exception as error:
        assert _describe(error).startswith("invalid round manifest: (document): ")  # type: ignore[arg-type]


def test_schema_of_reads_only_json_objects() -> None:
    assert _schema_of('{"schema": "s"}') == "s"
    assert _schema_of("[1]") is None
    assert _schema_of('"schema"') is None
    assert _schema_of("{") is None


def test_eip1271_answers_and_call_data_bounds() -> None:
    assert eip1271_accepts(EIP1271_MAGIC_VALUE + bytes(28))
    # any non-zero byte after the selector (including the very first) is not the magic value
    for position in (4, 5, 31):
        answer = bytearray(EIP1271_MAGIC_VALUE + bytes(28))
        answer[position] = 1
        assert not eip1271_accepts(bytes(answer)), position
    digest = keccak(text="d")
    assert eip1271_call_data(digest, "0xABcd").endswith("abcd" + "00" * 30)  # hex digits of either case
    for bad in (bytes(31), "0x" + "00" * 32):
        with pytest.raises(AttestationError) as raised:
            eip1271_call_data(bad, "0x")  # type: ignore[arg-type]
        assert str(raised.value) == f"digest must be 32 bytes; got {bad!r}"


def _refusal_of_round(signed: list[SignedAttestation], **extra: Any) -> str:
    with pytest.raises(ManifestError) as raised:
        RoundManifest.from_attestations(
            purpose=keccak(text="purpose"),
            spec_digest=SPEC,
            parent_digest=PARENT,
            model_digest=keccak(text="model"),
            model_cid="bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
            signed_attestations=signed,
            update_cids={s.attestation.dataset_id: "bafkrei" + "a" * 52 for s in signed},
            **extra,
        )
    return str(raised.value)


def test_a_round_without_attestations_is_refused_by_name() -> None:
    with pytest.raises(ManifestError) as raised:
        attestations_root([])
    assert str(raised.value) == "a round needs at least one attestation; got none"
    assert _refusal_of_round([]) == "a round needs at least one signed attestation; got none"


def test_a_metric_that_is_not_a_finite_number_is_refused_by_name() -> None:
    account = Account.from_key(keccak(text="node"))
    signed = [sign_attestation(account, CHAIN, LEDGER, Attestation(3, 7, 9, PARENT, SPEC, UPDATE, 30))]
    assert _refusal_of_round(signed, metrics={"loss": float("nan")}) == (
        "invalid round manifest: metrics.loss: Input should be a finite number"
    )


def test_attestation_fields_are_named_when_out_of_range() -> None:
    for position, name, maximum in (
        (0, "job_id", 2**256 - 1),
        (2, "dataset_id", 2**256 - 1),
        (6, "num_examples", 2**64 - 1),
    ):
        values: list[object] = [3, 7, 9, PARENT, SPEC, UPDATE, 11]
        values[position] = -1
        with pytest.raises(AttestationError) as raised:
            Attestation(*values)  # type: ignore[arg-type]
        assert str(raised.value) == f"{name} must be between 0 and {maximum}; got -1"


class _Python:
    mode = "python"


def test_manifest_field_parsers_accept_each_form_and_name_what_is_wrong() -> None:
    info: Any = _Python()
    lower, upper = LEDGER.lower(), "0x" + LEDGER[2:].upper()
    assert _parse_address(lower) == _parse_address(upper) == _parse_address(LEDGER) == LEDGER
    typo = LEDGER[:-1] + ("E" if LEDGER[-1] == "e" else "e")
    for bad, message in (
        (typo, f"address {typo} has an invalid EIP-55 checksum"),
        ("0x12", "expected a 20-byte hex address, got '0x12'"),
    ):
        with pytest.raises(ValueError) as raised:
            _parse_address(bad)
        assert str(raised.value) == message
    assert _parse_uint256_id(0, info) == 0 and _parse_uint256_id(2**256 - 1, info) == 2**256 - 1
    for bad_id in (-1, 2**256):
        with pytest.raises(ValueError) as raised:
            _parse_uint256_id(bad_id, info)
        assert str(raised.value) == f"expected a uint256, got {bad_id}"
    with pytest.raises(ValueError) as raised:
        _parse_bytes32(bytes(31), info)
    assert str(raised.value) == "expected 32 bytes, got 31"
    with pytest.raises(ValueError) as raised:
        _parse_signature("0x1234")
    assert str(raised.value) == "expected 0x followed by 130 hex digits (a 65-byte signature), got '0x1234'"
