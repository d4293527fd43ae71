"""One test per failure branch of every check in `ledger.audit.checks`, against real parts.

Each lie is committed on the `lab` chain by the lab's own key (the contract accepts any
hash-chained digest from the coordinator) or made in a copy of the lab's store or in the
auditor's index file; the job is audited and the failing check's name, round and message
(naming the round and the item) are asserted. Lies only a lying RPC node could tell (the
contract's views disagreeing with its own logs) are made by changing that one fact in a
lineage rebuilt from the real chain, then evaluating it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from ledger.audit import AuditReport, audit, evaluate, rebuild_lineage, resolve_target
from ledger.audit.chainlog import ChainLogs
from ledger.audit.lineage import Lineage
from ledger.chain.types import AuthorizationStatus, DatasetState
from ledger.keys import dev_account
from ledger.provenance import Participant, RoundManifest
from ledger.store import LocalBlockstore
from tests.audit.forge import (
    AI,
    Contribution,
    Hospital,
    Lab,
    commit,
    contributions,
    create_job,
    enrol_hospital,
    enrol_wallet_hospital,
    honest_round,
    weights,
    with_participant,
)

OTHER = hashlib.sha256(b"some other 32 bytes").digest()


def _index_path(tmp_path: Path) -> Path:
    return tmp_path / f"index-{len(list(tmp_path.glob('index-*')))}.sqlite"


def _audit(lab: Lab, target: str, tmp_path: Path, store: LocalBlockstore | None = None) -> AuditReport:
    return audit(target, client=lab.lab, index=lab.index(_index_path(tmp_path)), store=store or lab.store)


def _lineage(lab: Lab, job_id: int, tmp_path: Path) -> Lineage:
    index = lab.index(_index_path(tmp_path))
    index.sync()
    chain = ChainLogs(lab.lab)
    target = resolve_target(str(job_id), index, lab.store, chain)
    return rebuild_lineage(target, lab.lab, index, lab.store, chain=chain)


def _failures(report: AuditReport | list[Any]) -> list[tuple[str, int | None, str]]:
    checks = report.failures if isinstance(report, AuditReport) else [c for c in report if c.failed]
    return [(c.name, c.round, c.message) for c in checks]


def _only(report: AuditReport | list[Any], name: str) -> tuple[int | None, str]:
    found = [(r, m) for n, r, m in _failures(report) if n == name]
    assert len(found) == 1, _failures(report)
    return found[0]


def _ds(dataset_id: int) -> str:
    return f"0x{dataset_id:064x}"


def _store_copy(lab: Lab, path: Path) -> LocalBlockstore:
    shutil.copytree(lab.store.directory, path)
    return LocalBlockstore(path)


def _two_rounds(lab: Lab) -> Any:
    job = create_job(lab)
    honest_round(lab, job)
    return job


# ------------------------------------------------------------------------------ honest baseline


def test_honest_rounds_verify(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    honest_round(lab, job)
    report = _audit(lab, str(job.job_id), tmp_path)
    assert report.ok, [c.message for c in report.checks if not c.ok]
    assert report.verdict == "verified" and report.exit_code == 0
    assert report.summary().startswith(f"VERIFIED: job {job.job_id}")
    counts = report.counts()
    assert counts["aggregation"] == (2, 0, 0) and counts["update"] == (6, 0, 0)
    assert counts["grant"] == (6, 0, 0) and counts["attestation"] == (6, 0, 0)
    assert counts["index"] == (1, 0, 0) and counts["job"] == (1, 0, 0)
    assert report.lineage.chain_history
    doc = report.to_json()
    assert doc["verdict"] == "verified"
    assert doc["rounds"][1]["recomputed_model_digest"] == "0x" + job.last_digest.hex()


# ------------------------------------------------------------------------------ job (lying RPC)


def _record(lineage: Lineage, **changes: Any) -> Lineage:
    assert lineage.on_chain_job is not None
    return dataclasses.replace(lineage, on_chain_job=dataclasses.replace(lineage.on_chain_job, **changes))


JOB_LIES: dict[str, tuple[Callable[[Lineage], Lineage], str]] = {
    "unreadable": (
        lambda lin: dataclasses.replace(lin, on_chain_job=None, on_chain_job_error="execution reverted"),
        "the TrainingLedger cannot read it: execution reverted",
    ),
    "coordinator": (
        lambda lin: _record(lin, coordinator=dev_account(7).address),
        f"coordinator {dev_account(7).address} on chain but ",
    ),
    "purpose": (lambda lin: _record(lin, purpose=OTHER), f"purpose 0x{OTHER.hex()} on chain but "),
    "spec": (lambda lin: _record(lin, spec_digest=OTHER), f"spec digest 0x{OTHER.hex()} on chain but "),
    "last-round": (
        lambda lin: _record(lin, last_round=5),
        "the contract's last round is 5 but the chain has 1 RoundCommitted log(s)",
    ),
    "last-digest": (
        lambda lin: _record(lin, last_digest=OTHER),
        f"the contract's last digest 0x{OTHER.hex()} is not the last committed model",
    ),
    "round-numbers": (
        lambda lin: dataclasses.replace(
            lin, all_rounds=[dataclasses.replace(lin.all_rounds[0], round=2)], rounds=lin.rounds
        ),
        "the RoundCommitted logs carry rounds [2], not 1..1",
    ),
}


@pytest.mark.parametrize("lie", sorted(JOB_LIES))
def test_job_check_fails_when_the_contract_view_disagrees_with_its_logs(
    lab: Lab, tmp_path: Path, lie: str
) -> None:
    job = _two_rounds(lab)
    lineage = _lineage(lab, job.job_id, tmp_path)
    assert all(c.ok for c in evaluate(lineage))
    change, expected = JOB_LIES[lie]
    checks = evaluate(change(lineage))
    round_number, message = _only(checks, "job")
    assert round_number is None
    assert message.startswith(f"job {job.job_id}: ") and expected in message


# ------------------------------------------------------------------------------ index (edited cache)


def _edited_index(lab: Lab, tmp_path: Path, sql: str, params: tuple[Any, ...]) -> Any:
    path = _index_path(tmp_path)
    index = lab.index(path)
    index.sync()
    index.close()
    with sqlite3.connect(path) as db:
        db.execute(sql, params)
    return lab.index(path)


def _audit_with_index(lab: Lab, target: str, index: Any) -> AuditReport:
    return audit(target, client=lab.lab, index=index, store=lab.store)


def test_index_without_the_job_fails_the_index_check(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    index = _edited_index(lab, tmp_path, "DELETE FROM jobs WHERE job_id = ?", (job.job_id,))
    report = _audit_with_index(lab, str(job.job_id), index)
    assert _only(report, "index") == (
        None,
        f"job {job.job_id}: the index lacks the job created at block {report.lineage.job.block_number}; "
        "the local index does not match the chain (rebuild it with `sov index rebuild`)",
    )


def test_index_with_an_edited_job_fails_the_index_check(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    index = _edited_index(
        lab, tmp_path, "UPDATE jobs SET spec_digest = ? WHERE job_id = ?", ("0x" + OTHER.hex(), job.job_id)
    )
    report = _audit_with_index(lab, str(job.job_id), index)
    _, message = _only(report, "index")
    assert message.startswith(f"job {job.job_id}: the index says spec_digest 0x{OTHER.hex()} but JobCreated")


def test_index_missing_a_committed_round_fails_the_index_check(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    index = _edited_index(lab, tmp_path, "DELETE FROM rounds WHERE job_id = ? AND round = 1", (job.job_id,))
    report = _audit_with_index(lab, str(job.job_id), index)
    round_number, message = _only(report, "index")
    assert round_number == 1
    assert message.startswith("round 1: committed on chain at block ") and "missing from the index" in message


def test_index_with_an_edited_round_fails_the_index_check(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    index = _edited_index(
        lab,
        tmp_path,
        "UPDATE rounds SET manifest_cid = ? WHERE job_id = ? AND round = 1",
        ("bafkreiforgedmanifestcid", job.job_id),
    )
    report = _audit_with_index(lab, str(job.job_id), index)
    round_number, message = _only(report, "index")
    assert round_number == 1
    assert message.startswith("round 1: the index says manifest_cid bafkreiforgedmanifestcid but the chain's")
    # the audit read the manifest the chain names, not the index's
    assert all(c.ok for c in report.checks if c.name == "content")


# ------------------------------------------------------------------------------ content


def test_manifest_missing_from_the_store_fails_content_and_attestation(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    forged = honest_round(lab, job)
    store = _store_copy(lab, tmp_path / "blocks")
    store.block_path(forged.manifest_cid).unlink()
    report = _audit(lab, str(job.job_id), tmp_path, store)
    failures = _failures(report)
    assert (
        "content",
        2,
        f"round 2: manifest {forged.manifest_cid} does not resolve to verified bytes: "
        f"cannot read {forged.manifest_cid}: no block {forged.manifest_cid} in the local store at "
        f"{store.directory}",
    ) in failures
    assert (
        "content",
        2,
        "round 2: the model CID is unknown because the round manifest is unavailable",
    ) in failures
    attestation = [m for n, r, m in failures if n == "attestation"]
    assert attestation == [
        f"round 2: dataset {_ds(h.dataset_id)}: the attestation cannot be checked: the round manifest is "
        "unavailable"
        for h in lab.hospitals
    ]


def test_manifest_that_does_not_parse_fails_the_content_check(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    forged = commit(lab, job, contributions(lab.hospitals, 2), raw_manifest=b'{"schema": "nonsense"}')
    report = _audit(lab, str(job.job_id), tmp_path)
    assert (
        "content",
        2,
    ) in {(n, r) for n, r, _ in _failures(report)}
    message = next(m for n, r, m in _failures(report) if n == "content" and "manifest" in m)
    assert message.startswith(
        f"round 2: manifest {forged.manifest_cid} does not parse: invalid round manifest"
    )


def test_model_missing_from_the_store_fails_the_content_check(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    forged = honest_round(lab, job)
    store = _store_copy(lab, tmp_path / "blocks")
    store.block_path(forged.model_cid).unlink()
    report = _audit(lab, str(job.job_id), tmp_path, store)
    assert _only(report, "content") == (
        2,
        f"round 2: model {forged.model_cid} does not resolve to verified bytes: cannot read "
        f"{forged.model_cid}: no block {forged.model_cid} "
        f"in the local store at {store.directory}",
    )


def test_committed_digest_that_is_not_the_anchored_model_fails_content(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    lie = hashlib.sha256(b"a model nobody anchored").digest()
    forged = commit(lab, job, contributions(lab.hospitals, 2), committed_digest=lie)
    report = _audit(lab, str(job.job_id), tmp_path)
    round_number, message = _only(report, "content")
    assert round_number == 2
    assert message.startswith(f"round 2: model {forged.model_cid} bytes hash to 0x")
    assert message.endswith(f"but the committed model digest is 0x{lie.hex()}")
    # and the aggregate of the declared updates is not what was committed either
    assert _only(report, "aggregation")[1].startswith(
        "round 2: FedAvg of the 3 attested update(s) has digest"
    )


# ------------------------------------------------------------------------------ manifest


def _with(field: str, value: Any) -> Callable[[RoundManifest], RoundManifest]:
    return lambda m: m.model_copy(update={field: value})


MANIFEST_LIES: dict[str, tuple[Callable[[RoundManifest], RoundManifest], str]] = {
    "job_id": (_with("job_id", 999), "job_id 999 is not the committed job"),
    "round": (_with("round", 7), "round 7 is not the committed round 2"),
    "model_digest": (_with("model_digest", OTHER), f"model_digest 0x{OTHER.hex()} is not the committed"),
    "chain_id": (_with("chain_id", 5), "chain_id 5 is not this chain (31337)"),
    "training_ledger": (
        _with("training_ledger", dev_account(8).address),
        f"training_ledger {dev_account(8).address} is not the deployment's",
    ),
    "purpose": (_with("purpose", OTHER), "is not the job's ai-training"),
}


@pytest.mark.parametrize("lie", sorted(MANIFEST_LIES))
def test_manifest_field_that_is_not_what_the_chain_committed_fails(
    lab: Lab, tmp_path: Path, lie: str
) -> None:
    job = _two_rounds(lab)
    doctor, expected = MANIFEST_LIES[lie]
    forged = commit(lab, job, contributions(lab.hospitals, 2), doctor=doctor)
    report = _audit(lab, str(job.job_id), tmp_path)
    round_number, message = _only(report, "manifest")
    assert round_number == 2
    assert message.startswith(f"round 2: manifest {forged.manifest_cid}: {lie}") and expected in message


def test_manifest_with_a_root_other_than_the_committed_one_fails(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    forged = commit(lab, job, contributions(lab.hospitals, 2), committed_root=OTHER)
    report = _audit(lab, str(job.job_id), tmp_path)
    assert _only(report, "manifest")[1] == (
        f"round 2: manifest {forged.manifest_cid}: attestations_root "
        f"0x{forged.manifest.attestations_root.hex()} is not the committed 0x{OTHER.hex()}"
    )
    assert _only(report, "attestation-root") == (
        2,
        f"round 2: the manifest's attestations have Merkle root 0x{forged.manifest.attestations_root.hex()}, "
        f"but the committed attestationsRoot is 0x{OTHER.hex()}",
    )


def test_manifest_that_omits_a_committed_participant_fails(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    declared = contributions(lab.hospitals[:2], 2)
    hidden = lab.hospitals[2].dataset_id
    commit(lab, job, declared, on_chain=[*job.datasets])
    report = _audit(lab, str(job.job_id), tmp_path)
    assert f"participants omits {_ds(hidden)} that the chain recorded" in _only(report, "manifest")[1]
    assert _only(report, "attestation") == (
        2,
        f"round 2: dataset {_ds(hidden)} was committed on chain but has no attestation in the manifest",
    )


def test_spec_digest_other_than_the_jobs_fails_manifest_and_attestations(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    lied = [dataclasses.replace(c, spec_digest=OTHER) for c in contributions(lab.hospitals, 2)]
    commit(lab, job, lied)
    report = _audit(lab, str(job.job_id), tmp_path)
    assert (
        f"spec_digest 0x{OTHER.hex()} is not the job's 0x{job.spec_digest.hex()}"
        in _only(report, "manifest")[1]
    )
    attestation = [m for n, r, m in _failures(report) if n == "attestation"]
    assert attestation == [
        f"round 2: dataset {_ds(h.dataset_id)}: the attestation binds spec digest 0x{OTHER.hex()}, but job "
        f"{job.job_id}'s on-chain spec digest is 0x{job.spec_digest.hex()}"
        for h in lab.hospitals
    ]


# ------------------------------------------------------------------------------ digest chain


def test_manifest_parent_other_than_the_previous_model_fails_digest_chain(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    round1 = job.last_digest
    lied = [dataclasses.replace(c, base_digest=OTHER) for c in contributions(lab.hospitals, 2)]
    commit(lab, job, lied)
    report = _audit(lab, str(job.job_id), tmp_path)
    assert _only(report, "digest-chain") == (
        2,
        f"round 2: manifest parent_digest 0x{OTHER.hex()} is not round 1's model 0x{round1.hex()}",
    )
    attestation = [m for n, r, m in _failures(report) if n == "attestation"]
    assert attestation[0] == (
        f"round 2: dataset {_ds(lab.hospitals[0].dataset_id)}: the attestation binds base model "
        f"0x{OTHER.hex()}, but round 2 builds on 0x{round1.hex()} on chain (the node trained another model)"
    )


def test_committed_parent_other_than_the_previous_model_fails_digest_chain(lab: Lab, tmp_path: Path) -> None:
    # The contract refuses such a commitment; only a lying RPC node could report one.
    job = _two_rounds(lab)
    lineage = _lineage(lab, job.job_id, tmp_path)
    first = lineage.rounds[0]
    first.committed = dataclasses.replace(first.committed, parent_digest=OTHER)
    round_number, message = _only(evaluate(lineage), "digest-chain")
    assert round_number == 1
    assert message == (
        f"round 1: the committed parent digest 0x{OTHER.hex()} is not job {job.job_id}'s initial model "
        f"0x{lineage.job.initial_model_digest.hex()}"
    )


def test_target_digest_other_than_the_committed_one_fails(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    lineage = _lineage(lab, job.job_id, tmp_path)
    lineage.target = dataclasses.replace(
        lineage.target, kind="model-digest", text="0x" + OTHER.hex(), digest=OTHER
    )
    assert _only(evaluate(lineage), "digest-chain") == (
        1,
        f"round 1: target digest 0x{OTHER.hex()} is not the committed 0x{job.last_digest.hex()}",
    )
    lineage.target = dataclasses.replace(lineage.target, round=0)
    lineage.rounds = []
    assert _only(evaluate(lineage), "digest-chain") == (
        0,
        f"round 0: target digest 0x{OTHER.hex()} is not job {job.job_id}'s initial model "
        f"0x{lineage.job.initial_model_digest.hex()}",
    )


# ------------------------------------------------------------------------------ attestation


def test_attestation_signed_by_another_key_fails(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    declared = contributions(lab.hospitals, 2)
    victim = declared[1].hospital
    declared[1] = dataclasses.replace(declared[1], signer=dev_account(0))
    forged = commit(lab, job, declared)
    report = _audit(lab, str(job.job_id), tmp_path)
    assert _only(report, "attestation") == (
        2,
        f"round 2: dataset {_ds(victim.dataset_id)}: the attestation is signed by {dev_account(0).address}, "
        f"not by the dataset owner {victim.owner} at block {forged.receipt.block_number} "
        "(forged or signed by another node)",
    )


def test_manifest_naming_another_node_than_the_signer_fails(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    victim = lab.hospitals[0]
    commit(
        lab,
        job,
        contributions(lab.hospitals, 2),
        doctor=lambda m: with_participant(m, victim.dataset_id, node=dev_account(9).address),
    )
    report = _audit(lab, str(job.job_id), tmp_path)
    assert _only(report, "attestation") == (
        2,
        f"round 2: dataset {_ds(victim.dataset_id)}: the manifest names node {dev_account(9).address} but "
        f"the signature is {victim.owner}'s",
    )


def test_malleated_signature_fails_the_attestation_check(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    victim = lab.hospitals[2]
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

    def malleate(manifest: RoundManifest) -> RoundManifest:
        entry = next(p for p in manifest.participants if p.dataset_id == victim.dataset_id)
        raw = bytes.fromhex(entry.signature[2:])
        s = n - int.from_bytes(raw[32:64], "big")
        twin = raw[:32] + s.to_bytes(32, "big") + bytes([55 - raw[64]])
        return with_participant(manifest, victim.dataset_id, signature="0x" + twin.hex())

    commit(lab, job, contributions(lab.hospitals, 2), doctor=malleate)
    report = _audit(lab, str(job.job_id), tmp_path)
    round_number, message = _only(report, "attestation")
    assert round_number == 2
    assert message == (
        f"round 2: dataset {_ds(victim.dataset_id)}: the attestation signature is invalid: signature is "
        "malleable or out of range (s must be in the lower half)"
    )


def test_attestation_for_an_unregistered_dataset_fails(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    ghost = dataclasses.replace(lab.hospitals[0], dataset_id=int.from_bytes(OTHER, "big"))
    declared = [*contributions(lab.hospitals, 2), Contribution(ghost, weights(77), 10)]
    forged = commit(lab, job, declared)
    report = _audit(lab, str(job.job_id), tmp_path)
    messages = {n: m for n, r, m in _failures(report) if r == 2}
    assert messages["attestation"] == (
        f"round 2: dataset {_ds(ghost.dataset_id)} had no registered owner at block "
        f"{forged.receipt.block_number}; the attestation recovers {ghost.owner}"
    )
    assert (
        messages["grant"]
        == f"round 2: dataset {_ds(ghost.dataset_id)} is not one of job {job.job_id}'s datasets"
    )


def test_registry_owner_other_than_the_transfer_logs_fails(lab: Lab, tmp_path: Path) -> None:
    # A lying RPC node: `datasetState` at the round's block names someone the logs never did.
    job = _two_rounds(lab)
    lineage = _lineage(lab, job.job_id, tmp_path)
    p = lineage.rounds[0].participants[0]
    p.chain_state = DatasetState(dev_account(9).address, 0, False)
    assert _only(evaluate(lineage), "attestation") == (
        1,
        f"round 1: dataset {_ds(p.dataset_id)}: the registry says the deed holder at block "
        f"{lineage.rounds[0].committed.block_number} was {dev_account(9).address}, the chain's Transfer logs "
        f"say {p.owner}",
    )


def test_contract_wallet_owner_attestations_verify_through_eip1271(lab: Lab, tmp_path: Path) -> None:
    signer = dev_account(5)
    wallet_hospital = enrol_wallet_hospital(lab, signer, f"wallet {tmp_path.name}")
    members = [*lab.hospitals, wallet_hospital]
    job = create_job(lab, members)
    chosen = sorted(members, key=lambda h: h.dataset_id)
    commit(lab, job, contributions(chosen, 1))
    report = _audit(lab, str(job.job_id), tmp_path)
    assert report.ok, _failures(report)
    check = next(
        c for c in report.checks if c.name == "attestation" and c.dataset_id == wallet_hospital.dataset_id
    )
    assert f"owner wallet {wallet_hospital.wallet} accepts the signature" in check.message

    # a key the wallet does not accept: the wallet, asked at the round's block, rejects it
    declared = contributions(chosen, 2)
    at = next(i for i, c in enumerate(declared) if c.hospital is wallet_hospital)
    declared[at] = dataclasses.replace(declared[at], signer=dev_account(6))
    forged = commit(lab, job, declared)
    report = _audit(lab, str(job.job_id), tmp_path)
    assert _only(report, "attestation") == (
        2,
        f"round 2: dataset {_ds(wallet_hospital.dataset_id)}: owner wallet {wallet_hospital.wallet} rejects "
        f"the signature (isValidSignature at block {forged.receipt.block_number}): the attestation is not "
        "the owner's (forged or signed by another node)",
    )

    # the wallet's dataset used on chain, its attestation left out of the manifest: nothing to ask it
    others = [c for c in contributions(chosen, 3) if c.hospital is not wallet_hospital]
    commit(lab, job, others, on_chain=[h.dataset_id for h in chosen])
    report = _audit(lab, str(job.job_id), tmp_path)
    assert [(c.name, c.message) for c in report.failures if c.round == 3] == [
        (
            "manifest",
            f"round 3: manifest {report.lineage.rounds[2].committed.manifest_cid}: participants omits "
            f"{_ds(wallet_hospital.dataset_id)} that the chain recorded",
        ),
        (
            "attestation",
            f"round 3: dataset {_ds(wallet_hospital.dataset_id)} was committed on chain but has no "
            "attestation in the manifest",
        ),
    ]


# ------------------------------------------------------------------------------ attestation root, weights


def test_weights_that_do_not_match_attested_counts_fail(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    first = lab.hospitals[0]

    def skew(manifest: RoundManifest) -> RoundManifest:
        entry = next(p for p in manifest.participants if p.dataset_id == first.dataset_id)
        return with_participant(manifest, first.dataset_id, weight=entry.weight + 0.1)

    commit(lab, job, contributions(lab.hospitals, 2), doctor=skew)
    report = _audit(lab, str(job.job_id), tmp_path)
    round_number, message = _only(report, "weights")
    assert round_number == 2
    assert message.startswith(f"round 2: dataset {_ds(first.dataset_id)} has aggregation weight ")
    assert "but attests 50 of 171 examples" in message


# ------------------------------------------------------------------------------ grant


def test_participant_whose_grant_was_revoked_injected_into_the_manifest_fails(
    lab: Lab, tmp_path: Path
) -> None:
    job = _two_rounds(lab)
    revoked = enrol_hospital(lab, dev_account(4), f"revoked {tmp_path.name}")
    receipt = revoked.client.revoke_grant(revoked.dataset_id, lab.lab.address or "", job.purpose)
    job2 = create_job(lab, [*lab.hospitals, revoked])
    declared = contributions(sorted([*lab.hospitals, revoked], key=lambda h: h.dataset_id), 1)
    forged = commit(lab, job2, declared, on_chain=[h.dataset_id for h in lab.hospitals])
    report = _audit(lab, str(job2.job_id), tmp_path)
    round_number, message = _only(report, "grant")
    assert round_number == 1
    assert message.startswith(
        f"round 1: dataset {_ds(revoked.dataset_id)}: grant to coordinator {lab.lab.address} for ai-training "
        f"was not valid at block {forged.receipt.block_number}"
    )
    assert message.endswith(f"revoked at block {receipt.block_number})")
    assert (
        f"participants lists {_ds(revoked.dataset_id)} that the chain did not record"
        in _only(report, "manifest")[1]
    )


def test_contract_status_other_than_the_grant_logs_fails(lab: Lab, tmp_path: Path) -> None:
    # A lying RPC node (or index-era bug): the contract at the block says revoked, the logs do not.
    job = _two_rounds(lab)
    lineage = _lineage(lab, job.job_id, tmp_path)
    p = lineage.rounds[0].participants[1]
    p.chain_status = AuthorizationStatus.REVOKED
    round_number, message = _only(evaluate(lineage), "grant")
    assert round_number == 1
    assert message == (
        f"round 1: dataset {_ds(p.dataset_id)}: grant to coordinator {lab.lab.address} for ai-training: the "
        f"contract says revoked at block {lineage.rounds[0].committed.block_number} but the chain's grant "
        "logs say authorized at the round's position"
    )


# ------------------------------------------------------------------------------ update, aggregation


def test_update_whose_bytes_are_not_the_attested_ones_fails(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    victim = lab.hospitals[1]
    swapped = weights(4242)
    forged = commit(
        lab,
        job,
        contributions(lab.hospitals, 2),
        stored_updates=lambda c: swapped if c.hospital is victim else c.update,
    )
    report = _audit(lab, str(job.job_id), tmp_path)
    cid = forged.update_cids[victim.dataset_id]
    attested = forged.manifest.participants[[h.dataset_id for h in lab.hospitals].index(victim.dataset_id)]
    assert _only(report, "update") == (
        2,
        f"round 2: dataset {_ds(victim.dataset_id)}: update {cid} hashes to "
        f"0x{hashlib.sha256(swapped).hexdigest()}, not the attested update_digest "
        f"0x{attested.update_digest.hex()}",
    )
    assert _only(report, "aggregation") == (
        2,
        f"round 2: the committed model cannot be recomputed: the update of dataset {_ds(victim.dataset_id)} "
        "is not the attested one",
    )


def test_damaged_update_block_fails_the_update_check(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    forged = honest_round(lab, job)
    store = _store_copy(lab, tmp_path / "blocks")
    victim = lab.hospitals[0].dataset_id
    block = store.block_path(forged.update_cids[victim])
    data = bytearray(block.read_bytes())
    data[-1] ^= 0x01
    block.write_bytes(bytes(data))
    report = _audit(lab, str(job.job_id), tmp_path, store)
    round_number, message = _only(report, "update")
    assert round_number == 2
    assert message.startswith(
        f"round 2: dataset {_ds(victim)}: update {forged.update_cids[victim]} does not resolve to "
        "verified bytes"
    )
    assert "damaged" in message
    assert _only(report, "aggregation")[0] == 2


def test_updates_that_are_not_model_files_fail_the_aggregation_check(lab: Lab, tmp_path: Path) -> None:
    job = _two_rounds(lab)
    declared = contributions(lab.hospitals, 2)
    declared[0] = dataclasses.replace(declared[0], update=b"not a safetensors file at all")
    commit(lab, job, declared, model_bytes=weights(31337))
    report = _audit(lab, str(job.job_id), tmp_path)
    round_number, message = _only(report, "aggregation")
    assert round_number == 2
    assert message.startswith(
        "round 2: the attested updates do not aggregate into a model: update 0 is not a model file"
    )


def test_participant_fields_round_trip(lab: Lab) -> None:
    # guard: the forger's manifests are the v2 format the audit reads
    job = create_job(lab)
    forged = honest_round(lab, job)
    again = RoundManifest.from_bytes(lab.store.get(forged.manifest_cid))
    assert [p.update_cid for p in again.participants] == [
        forged.update_cids[h.dataset_id] for h in lab.hospitals
    ]
    assert isinstance(again.participants[0], Participant)


GRANT_STATES: dict[str, Callable[[Lab, Hospital], object]] = {
    # the outsider's window is 60 s (the other hospitals' grants run 30 days and stay valid)
    "expired": lambda lab, h: lab.lab.transport.request("evm_increaseTime", [120]),
    "dataset retired": lambda lab, h: h.client.retire_dataset(h.dataset_id),
    "owner changed": lambda lab, h: h.client.transfer_dataset(h.dataset_id, dev_account(8).address),
    "revoked": lambda lab, h: h.client.revoke_grant(h.dataset_id, lab.lab.address or "", AI),
}


@pytest.mark.parametrize("state", ["no grant", "not yet valid", *sorted(GRANT_STATES)])
def test_grant_check_names_every_reason_a_grant_did_not_authorise(
    lab: Lab, tmp_path: Path, state: str
) -> None:
    # The dataset is in the job but its grant does not authorise: the contract would refuse it on
    # chain, so the lab lists it only in the manifest. The chain's logs say why, and the contract
    # asked at the round's block says the same.
    account = dev_account(4)
    client = lab.lab.with_account(account)
    dataset_id, _ = client.register_dataset(keccak(text=f"grant state {state} {tmp_path.name}"))
    now = lab.lab.latest_block().timestamp
    if state == "not yet valid":
        client.issue_grant(dataset_id, lab.lab.address or "", AI, now + 3600, now + 7200)
    elif state != "no grant":
        client.issue_grant(dataset_id, lab.lab.address or "", AI, now, now + 60)
    outsider = Hospital(account, client, dataset_id)
    members = sorted([*lab.hospitals, outsider], key=lambda h: h.dataset_id)
    job = create_job(lab, members)
    if state in GRANT_STATES:
        GRANT_STATES[state](lab, outsider)
    forged = commit(lab, job, contributions(members, 1), on_chain=[h.dataset_id for h in lab.hospitals])
    report = _audit(lab, str(job.job_id), tmp_path)
    failures = [(r, m) for n, r, m in _failures(report) if n == "grant"]
    assert len(failures) == 1
    round_number, message = failures[0]
    assert round_number == 1
    assert message.startswith(
        f"round 1: dataset {_ds(dataset_id)}: grant to coordinator {lab.lab.address} for ai-training was not "
        f"valid at block {forged.receipt.block_number} (time "
    )
    assert f"): {state}" in message
    facts = next(p for p in report.lineage.rounds[0].participants if p.dataset_id == dataset_id)
    assert facts.chain_status is not None and facts.chain_status.reason == state  # the contract agrees
