"""Tamper evidence: each kind of tampering fails the audit with a message naming round and item.

Stored bytes are tampered with in a copy of the job's blockstore (the block files are
overwritten in place); lies the contract cannot see are committed by the coordinator itself.
Every test also audits an untouched job on the same chain, which must still verify, and
checks the audit changed nothing (chain head, tampered bytes).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from eth_utils import keccak

from ledger.audit import AuditReport, audit
from ledger.keys import dev_account
from ledger.provenance import Participant
from ledger.purposes import purpose_id
from ledger.store import LocalBlockstore
from tests.audit.conftest import World
from tests.audit.forge import commit_forged, honest_attestations, new_job, sign


def _failures(report: AuditReport) -> list[tuple[str, int | None, str]]:
    return [(c.name, c.round, c.message) for c in report.failures]


def _audit(world: World, target: str, tmp_path: Path, store: LocalBlockstore | None = None) -> AuditReport:
    index = world.index(tmp_path / f"index-{target[:12]}.sqlite")
    return audit(target, client=world.lab, index=index, store=store or world.store)


def _ds(dataset_id: int) -> str:
    return f"0x{dataset_id:064x}"


def test_altered_model_bytes_in_the_store_fail_the_content_check(world: World, tmp_path: Path) -> None:
    store = world.store_copy(tmp_path / "blocks")
    clean = _audit(world, str(world.job_id), tmp_path, store)
    assert clean.ok
    model_cid = clean.lineage.rounds[0].model_cid
    assert model_cid is not None
    block = store.block_path(model_cid)
    data = bytearray(block.read_bytes())
    data[len(data) // 2] ^= 0x01
    block.write_bytes(bytes(data))
    head = world.lab.latest_block().number

    report = _audit(world, str(world.job_id), tmp_path, store)

    assert not report.ok and report.exit_code == 1
    failures = _failures(report)
    assert [(name, r) for name, r, _ in failures] == [("content", 1)]
    assert f"round 1: model {model_cid} does not resolve to verified bytes" in failures[0][2]
    assert "damaged" in failures[0][2]
    # the audit repaired nothing and wrote nothing on chain
    assert block.read_bytes() == bytes(data)
    assert world.lab.latest_block().number == head


def test_altered_manifest_in_the_store_fails_and_names_round_and_cid(world: World, tmp_path: Path) -> None:
    store = world.store_copy(tmp_path / "blocks")
    clean = _audit(world, str(world.job_id), tmp_path, store)
    manifest_cid = clean.lineage.rounds[1].committed.manifest_cid
    block = store.block_path(manifest_cid)
    original = block.read_bytes()
    block.write_bytes(original.replace(b'"num_examples":', b'"num_examples": ', 1))

    report = _audit(world, str(world.job_id), tmp_path, store)

    failures = _failures(report)
    assert {(name, r) for name, r, _ in failures} == {("content", 2), ("attestation", 2)}
    messages = [m for _, _, m in failures]
    assert (
        sum(
            1 for name, _, m in failures if name == "attestation" and "the round manifest is unavailable" in m
        )
        == 4
    )
    assert any(f"round 2: manifest {manifest_cid} does not resolve to verified bytes" in m for m in messages)
    assert any(
        "round 2: the model CID is unknown because the round manifest is unavailable" in m for m in messages
    )
    assert block.read_bytes() != original


def test_missing_model_in_a_second_store_fails(world: World, tmp_path: Path) -> None:
    store = world.store_copy(tmp_path / "blocks")
    clean = _audit(world, str(world.job_id), tmp_path, store)
    model_cid = clean.lineage.rounds[1].model_cid
    assert model_cid is not None
    store.block_path(model_cid).unlink()

    report = _audit(world, str(world.job_id), tmp_path, store)

    failures = _failures(report)
    assert [(n, r) for n, r, _ in failures] == [("content", 2)]
    assert f"round 2: model {model_cid} does not resolve" in failures[0][2]
    assert not store.has(model_cid)


def test_committed_digest_that_is_not_the_anchored_model_fails(world: World, tmp_path: Path) -> None:
    job = new_job(world)
    lie = hashlib.sha256(b"a model nobody anchored").digest()
    forged = commit_forged(world, job, honest_attestations(world, job, 2), committed_digest=lie)

    report = _audit(world, str(job.job_id), tmp_path)

    failures = _failures(report)
    assert [(n, r) for n, r, _ in failures] == [("content", 2)]
    assert failures[0][2].startswith(f"round 2: model {forged.model_cid} bytes hash to 0x")
    assert f"but the committed model digest is 0x{lie.hex()}" in failures[0][2]
    assert _audit(world, str(world.job_id), tmp_path).ok


def test_forged_attestation_fails_naming_round_and_dataset(world: World, tmp_path: Path) -> None:
    job = new_job(world)
    attestations = honest_attestations(world, job, 2)
    victim = world.federation.dataset_ids[1]
    owner = world.enrollment.owners[1].address
    assert owner is not None
    # the coordinator signs in the hospital's name, claiming the hospital's address
    position = next(i for i, s in enumerate(attestations) if s.attestation.dataset_id == victim)
    attestations[position] = sign(dev_account(0), world, job, 2, victim, 77, claimed=owner)
    commit_forged(world, job, attestations)

    report = _audit(world, str(job.job_id), tmp_path)

    failures = _failures(report)
    assert [(n, r) for n, r, _ in failures] == [("attestation", 2)]
    assert failures[0][2] == (
        f"round 2: dataset {_ds(victim)}: the attestation is "
        f"signed by {dev_account(0).address}, not by the dataset "
        f"owner {owner} at block {report.lineage.rounds[1].committed.block_number} "
        "(forged or signed by another node)"
    )
    assert report.failures[0].dataset_id == victim


def test_participant_without_a_valid_grant_injected_into_a_manifest_fails(
    world: World, tmp_path: Path
) -> None:
    # dev9 registers a dataset and grants the lab, then revokes: the contract would refuse it in a round
    hospital = world.lab.with_account(dev_account(9))
    content = keccak(text=f"injected dataset {tmp_path}")
    injected, _ = hospital.register_dataset(content)
    now = world.lab.latest_block().timestamp
    hospital.issue_grant(injected, world.lab.address or "", purpose_id("ai-training"), now, now + 3600)
    revoked = hospital.revoke_grant(injected, world.lab.address or "", purpose_id("ai-training"))
    job = new_job(world, extra_datasets=[injected])
    attestations = [*honest_attestations(world, job, 2), sign(dev_account(9), world, job, 2, injected, 500)]
    real = list(world.federation.dataset_ids)
    forged = commit_forged(world, job, attestations, on_chain=real)

    report = _audit(world, str(job.job_id), tmp_path)

    failures = {(n, r): m for n, r, m in _failures(report)}
    assert set(failures) == {("manifest", 2), ("grant", 2)}
    assert failures[("grant", 2)] == (
        f"round 2: dataset {_ds(injected)}: grant to coordinator "
        f"{world.lab.address} for ai-training was not valid "
        f"at block {forged.receipt.block_number} (time "
        f"{report.lineage.rounds[1].committed.timestamp}): revoked "
        f"(window {now}..{now + 3600}; revoked at block {revoked.block_number})"
    )
    assert f"participants lists {_ds(injected)} that the chain did not record" in failures[("manifest", 2)]
    # the injected attestation itself is genuine: only the grant and the manifest betray it
    assert all(c.ok for c in report.checks if c.name in ("attestation", "attestation-root", "weights"))


def test_broken_digest_chain_in_the_manifest_fails(world: World, tmp_path: Path) -> None:
    job = new_job(world)
    round1 = job.last_digest
    elsewhere = hashlib.sha256(b"some other model").digest()
    commit_forged(
        world,
        job,
        honest_attestations(world, job, 2),
        doctor=lambda m: m.model_copy(update={"parent_digest": elsewhere}),
    )

    report = _audit(world, str(job.job_id), tmp_path)

    failures = _failures(report)
    assert [(n, r) for n, r, _ in failures] == [("digest-chain", 2)]
    assert failures[0][2] == (
        f"round 2: manifest parent_digest 0x{elsewhere.hex()} is not round 1's model 0x{round1.hex()}"
    )


def test_weights_that_do_not_match_attested_counts_fail(world: World, tmp_path: Path) -> None:
    job = new_job(world)

    def skew(manifest):  # type: ignore[no-untyped-def]
        participants = list(manifest.participants)
        first = participants[0]
        participants[0] = Participant.model_validate(first.model_dump() | {"weight": first.weight + 0.1})
        return manifest.model_copy(update={"participants": participants})

    commit_forged(world, job, honest_attestations(world, job, 2), doctor=skew)

    report = _audit(world, str(job.job_id), tmp_path)

    failures = _failures(report)
    assert [(n, r) for n, r, _ in failures] == [("weights", 2)]
    first_id = min(world.federation.dataset_ids)
    assert failures[0][2].startswith(f"round 2: dataset {_ds(first_id)} has aggregation weight ")
    assert "but attests 10" in failures[0][2]
