"""The audit of large rounds (an open job's rounds, committed in batches), against real parts.

The lab's own key commits every round through the real TrainingLedger: `beginLargeRound`, one
`addRoundParticipants` per batch (the contract checks each batch's grants there), then
`finalizeLargeRound`. What the contract cannot see is the manifest, so the lies here are a
manifest whose participants differ from the batches' set; the lies only a lying RPC node could
tell (a batch log withheld) are made in a lineage rebuilt from the real chain. Each is reported
naming the round and the item; `sov audit` exits 1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from api.cli.audit import audit as audit_command
from ledger.aggregation import aggregate_updates
from ledger.audit import AuditReport, audit, evaluate, rebuild_lineage, resolve_target
from ledger.audit.chainlog import ChainLogs
from ledger.audit.lineage import Lineage
from ledger.errors import (
    GrantRevokedError,
    LargeRoundOpenError,
    NoGrantError,
    ParticipantsNotAscendingError,
)
from ledger.participants import batches, participants_hash
from ledger.provenance import RoundManifest, model_digest
from ledger.store import cid_of
from tests.audit.forge import AI, SPEC, Contribution, Job, Lab, contributions, sign, weights

BATCH = 2  # three hospitals: two batches per round


def create_open_job(lab: Lab, seed: int = 0) -> Job:
    """An open job (no dataset list) with a stored initial model."""
    initial = weights(20_000 + seed)
    lab.store.put(initial)
    job_id, _ = lab.lab.create_open_job(AI, model_digest(initial), SPEC)
    return Job(job_id, (), AI, SPEC, model_digest(initial), 0, initial)


def commit_large(
    lab: Lab,
    job: Job,
    declared: Sequence[Contribution],
    *,
    added: Sequence[int] | None = None,
    between: Any = None,
    batch: int = BATCH,
) -> RoundManifest:
    """Commits the job's next round as a large round, declaring `declared` in the manifest.

    Lies: `added` (the datasets the batches add; default: the declared ones). `between` runs
    after the batches and before the finalize (a revocation in that window).
    """
    round_number = job.last_round + 1
    signed = [sign(lab, job, round_number, c) for c in declared]
    ordered = sorted(declared, key=lambda c: c.hospital.dataset_id)
    model = aggregate_updates([c.update for c in ordered], [c.num_examples for c in ordered])
    model_cid = lab.store.put(model)
    update_cids = {c.hospital.dataset_id: lab.store.put(c.update) for c in declared}
    manifest = RoundManifest.from_attestations(
        purpose=job.purpose,
        spec_digest=job.spec_digest,
        parent_digest=job.last_digest,
        model_digest=model_digest(model),
        model_cid=model_cid,
        signed_attestations=signed,
        update_cids=update_cids,
        metrics={"accuracy": 0.5},
    )
    manifest_cid = lab.store.put(manifest.to_bytes())
    ids = sorted(added if added is not None else (c.hospital.dataset_id for c in declared))
    lab.lab.begin_large_round(job.job_id, round_number, job.last_digest)
    for chunk in batches(ids, batch):
        lab.lab.add_round_participants(job.job_id, round_number, chunk)
    if between is not None:
        between()
    lab.lab.finalize_large_round(
        job.job_id,
        round_number,
        model_digest(model),
        manifest_cid,
        len(ids),
        participants_hash(ids),
        manifest.attestations_root,
    )
    job.last_round, job.last_digest = round_number, model_digest(model)
    return manifest


def _index_path(tmp_path: Path) -> Path:
    return tmp_path / f"index-{len(list(tmp_path.glob('index-*')))}.sqlite"


def _audit(lab: Lab, job: Job, tmp_path: Path) -> AuditReport:
    return audit(str(job.job_id), client=lab.lab, index=lab.index(_index_path(tmp_path)), store=lab.store)


def _lineage(lab: Lab, job: Job, tmp_path: Path) -> Lineage:
    index = lab.index(_index_path(tmp_path))
    index.sync()
    chain = ChainLogs(lab.lab)
    target = resolve_target(str(job.job_id), index, lab.store, chain)
    return rebuild_lineage(target, lab.lab, index, lab.store, chain=chain)


def _failures(checks: Sequence[Any]) -> list[tuple[str, int | None, str]]:
    return [(c.name, c.round, c.message) for c in checks if c.failed]


def _ds(dataset_id: int) -> str:
    return f"0x{dataset_id:064x}"


def _sov_audit(lab: Lab, job: Job) -> tuple[int, dict[str, Any]]:
    app = typer.Typer()
    app.command("audit")(audit_command)
    app.command("noop")(lambda: None)
    env = {"SOV_HOME": str(lab.settings.home), "SOV_RPC_URL": lab.node.rpc_url}
    result = CliRunner().invoke(app, ["audit", str(job.job_id), "--json"], env=env)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


# ------------------------------------------------------------------------------ honest


def test_honest_large_rounds_verify(lab: Lab, tmp_path: Path) -> None:
    job = create_open_job(lab)
    commit_large(lab, job, contributions(lab.hospitals, 1))
    commit_large(lab, job, contributions(lab.hospitals, 2), batch=1)
    report = _audit(lab, job, tmp_path)
    assert report.ok, [c.message for c in report.checks if not c.ok]
    assert report.verdict == "verified" and report.exit_code == 0
    counts = report.counts()
    assert counts["large-round"] == (2, 0, 0)
    assert counts["grant"] == (6, 0, 0) and counts["attestation"] == (6, 0, 0)
    assert counts["aggregation"] == (2, 0, 0) and counts["manifest"] == (2, 0, 0)
    ids = sorted(h.dataset_id for h in lab.hospitals)
    [job_check] = [c for c in report.checks if c.name == "job"]
    assert "over any dataset granted to it (an open job, rounds committed in batches); 2 round(s)" in (
        job_check.message
    )
    [manifest1, _] = [c for c in report.checks if c.name == "manifest"]
    assert manifest1.message == (
        "round 1: manifest matches the RoundCommitted event (3 participant(s), as added by the "
        "round's batches)"
    )
    # Each grant is reported where the contract checked it: the block of the batch that added it.
    lineage = _lineage(lab, job, tmp_path)
    facts = lineage.rounds[0]
    assert facts.large is not None and len(facts.large.batches) == 2
    first_batch, second_batch = facts.large.batches
    assert first_batch.block_number < second_batch.block_number < facts.committed.block_number
    large1, large2 = [c for c in report.checks if c.name == "large-round"]
    assert (large1.round, large2.round) == (1, 2)
    assert large1.message == (
        f"round 1: 3 participant(s) added in 2 batch(es) (blocks {first_batch.block_number}.."
        f"{second_batch.block_number}) hash to the committed 0x{participants_hash(ids).hex()}, as the "
        "manifest's list does"
    )
    second = lineage.rounds[1].large
    assert second is not None and [b.participants for b in second.batches] == [(i,) for i in ids]
    assert large2.message.startswith(
        f"round 2: 3 participant(s) added in 3 batch(es) (blocks {second.batches[0].block_number}.."
        f"{second.batches[2].block_number}) hash"
    )
    grants = {c.dataset_id: c.message for c in report.checks if c.name == "grant" and c.round == 1}
    assert f"was valid at block {first_batch.block_number}: " in grants[ids[0]]
    assert f"was valid at block {second_batch.block_number}: " in grants[ids[2]]


def test_a_grant_revoked_after_its_batch_was_valid_where_the_contract_checked_it(
    lab: Lab, tmp_path: Path
) -> None:
    job = create_open_job(lab, seed=1)
    late = lab.hospitals[0]
    revoked_at: list[int] = []

    def revoke() -> None:
        receipt = late.client.revoke_grant(late.dataset_id, lab.lab.address or "", AI)
        revoked_at.append(receipt.block_number)

    commit_large(lab, job, contributions(lab.hospitals, 1), between=revoke)
    try:
        report = _audit(lab, job, tmp_path)
        assert report.ok, _failures(report.checks)
        lineage = _lineage(lab, job, tmp_path)
        p = next(p for p in lineage.rounds[0].participants if p.dataset_id == late.dataset_id)
        assert p.batch is not None and p.batch.block_number < revoked_at[0]
        [grant] = [c for c in report.checks if c.name == "grant" and c.dataset_id == late.dataset_id]
        assert f"was valid at block {p.batch.block_number}: " in grant.message
    finally:
        now = lab.lab.latest_block().timestamp
        late.client.issue_grant(late.dataset_id, lab.lab.address or "", AI, now, now + 30 * 24 * 3600)


def test_the_batches_of_an_aborted_attempt_are_not_part_of_the_round(lab: Lab, tmp_path: Path) -> None:
    job = create_open_job(lab, seed=9)
    ids = sorted(h.dataset_id for h in lab.hospitals)
    lab.lab.begin_large_round(job.job_id, 1, job.last_digest)
    lab.lab.add_round_participants(job.job_id, 1, ids[1:])
    lab.lab.abort_large_round(job.job_id, 1)
    commit_large(lab, job, contributions(lab.hospitals, 1))
    report = _audit(lab, job, tmp_path)
    assert report.ok, _failures(report.checks)
    facts = _lineage(lab, job, tmp_path).rounds[0]
    assert facts.large is not None
    assert [b.participants for b in facts.large.batches] == [tuple(ids[:2]), tuple(ids[2:])]


# ------------------------------------------------------------------------------ a dishonest coordinator


def test_a_manifest_that_declares_a_dataset_the_batches_never_checked(lab: Lab, tmp_path: Path) -> None:
    job = create_open_job(lab, seed=2)
    everyone = contributions(lab.hospitals, 1)
    sneaked = lab.hospitals[1].dataset_id
    added = [h.dataset_id for h in lab.hospitals if h.dataset_id != sneaked]
    commit_large(lab, job, everyone, added=added)

    code, doc = _sov_audit(lab, job)

    assert code == 1 and doc["verdict"] == "failed"
    failures = {(c["name"], c["round"]): c["message"] for c in doc["checks"] if c["status"] == "fail"}
    assert set(failures) == {("manifest", 1), ("large-round", 1)}
    assert failures[("manifest", 1)].endswith(
        f"participants lists {_ds(sneaked)} that the chain did not record"
    )
    assert failures[("large-round", 1)].startswith(
        f"round 1: manifest {doc['rounds'][0]['manifest_cid']} lists 3 participant(s) hashing to 0x"
    )
    assert failures[("large-round", 1)].endswith(
        f"but LargeRoundCommitted commits 2 hashing to 0x{participants_hash(sorted(added)).hex()}"
    )


def test_a_manifest_that_hides_a_dataset_the_batches_added(lab: Lab, tmp_path: Path) -> None:
    job = create_open_job(lab, seed=3)
    hidden = lab.hospitals[2]
    declared = [c for c in contributions(lab.hospitals, 1) if c.hospital is not hidden]
    commit_large(lab, job, declared, added=[h.dataset_id for h in lab.hospitals])

    report = _audit(lab, job, tmp_path)

    assert report.exit_code == 1
    failures = _failures(report.checks)
    assert {(n, r) for n, r, _ in failures} == {("manifest", 1), ("large-round", 1), ("attestation", 1)}
    messages = {n: m for n, _, m in failures}
    omitted = _ds(hidden.dataset_id)
    assert messages["manifest"].endswith(f"participants omits {omitted} that the chain recorded")
    assert messages["large-round"].endswith(
        "but LargeRoundCommitted commits 3 hashing to "
        f"0x{participants_hash(sorted(h.dataset_id for h in lab.hospitals)).hex()}"
    )
    assert messages["attestation"] == (
        f"round 1: dataset {omitted} was committed on chain but has no attestation in the manifest"
    )


def test_a_withheld_batch_log_is_reported(lab: Lab, tmp_path: Path) -> None:
    """An RPC node that drops one RoundParticipantsAdded log cannot make the round verify."""
    job = create_open_job(lab, seed=4)
    commit_large(lab, job, contributions(lab.hospitals, 1))
    lineage = _lineage(lab, job, tmp_path)
    assert all(c.ok for c in evaluate(lineage))
    facts = lineage.rounds[0]
    assert facts.large is not None
    kept = facts.large.batches[:1]
    facts.large = dataclasses.replace(facts.large, batches=kept)
    failures = [(n, r, m) for n, r, m in _failures(evaluate(lineage)) if n == "large-round"]
    kept_ids = list(kept[0].participants)
    assert failures == [
        (
            "large-round",
            1,
            f"round 1: the chain's 1 RoundParticipantsAdded log(s) add 2 dataset(s) hashing to "
            f"0x{participants_hash(kept_ids).hex()}, but LargeRoundCommitted commits 3 hashing to "
            f"0x{facts.large.participants_hash.hex()} (a batch log is missing or altered)",
        )
    ]


def test_an_altered_commitment_count_is_reported(lab: Lab, tmp_path: Path) -> None:
    """The count is part of the commitment: the same ids with another count do not verify."""
    job = create_open_job(lab, seed=5)
    commit_large(lab, job, contributions(lab.hospitals, 1))
    lineage = _lineage(lab, job, tmp_path)
    facts = lineage.rounds[0]
    assert facts.large is not None
    facts.large = dataclasses.replace(facts.large, participant_count=4)
    [(name, round_number, message)] = [f for f in _failures(evaluate(lineage)) if f[0] == "large-round"]
    assert (name, round_number) == ("large-round", 1)
    assert "add 3 dataset(s) hashing to" in message and "LargeRoundCommitted commits 4 hashing to" in message


# ------------------------------------------------------------------------------ the contract refuses


def test_a_dataset_without_a_grant_is_refused_and_nothing_stays_open(lab: Lab) -> None:
    job = create_open_job(lab, seed=6)
    stranger = int.from_bytes(hashlib.sha256(b"registered, never granted").digest(), "big")
    lab.hospitals[0].client.register_dataset(stranger.to_bytes(32, "big"))
    ids = sorted([*(h.dataset_id for h in lab.hospitals), stranger])
    with pytest.raises(NoGrantError, match=f"{stranger:#x}|{_ds(stranger)}") as refused:
        lab.lab.commit_large_round(
            job.job_id,
            1,
            job.last_digest,
            model_digest(weights(1)),
            "bafkqaaa",
            ids,
            bytes(32),
            batch_size=BATCH,
        )
    assert refused.value.error_name == "UsageGrantsNoGrant"
    assert refused.value.args_by_name["datasetId"] == stranger
    assert lab.lab.open_large_round(job.job_id) == (0, 0, bytes(32))  # aborted
    assert lab.lab.get_job(job.job_id).last_round == 0


def test_a_dataset_twice_or_an_interleaved_round_is_refused(lab: Lab) -> None:
    job = create_open_job(lab, seed=7)
    ids = sorted(h.dataset_id for h in lab.hospitals)
    lab.lab.begin_large_round(job.job_id, 1, job.last_digest)
    lab.lab.add_round_participants(job.job_id, 1, ids[:2])
    with pytest.raises(ParticipantsNotAscendingError, match="does not come after") as twice:
        lab.lab.add_round_participants(job.job_id, 1, [ids[1], ids[2]])
    assert twice.value.args_by_name["datasetId"] == ids[1]
    with pytest.raises(LargeRoundOpenError, match=f"job {job.job_id} already has large round 1 open"):
        lab.lab.begin_large_round(job.job_id, 1, job.last_digest)
    assert lab.lab.open_large_round(job.job_id)[:2] == (1, 2)  # state unchanged by the refusals
    # commit_large_round drops the half-built round and commits exactly the given set.
    digest = model_digest(weights(8))
    lab.lab.commit_large_round(job.job_id, 1, job.last_digest, digest, str(cid_of(b"m")), ids, bytes(32))
    assert lab.lab.get_job(job.job_id).last_digest == digest
    assert lab.lab.open_large_round(job.job_id) == (0, 0, bytes(32))


def test_a_revoked_grant_aborts_the_round(lab: Lab) -> None:
    job = create_open_job(lab, seed=8)
    victim = lab.hospitals[2]
    victim.client.revoke_grant(victim.dataset_id, lab.lab.address or "", AI)
    try:
        ids = sorted(h.dataset_id for h in lab.hospitals)
        with pytest.raises(GrantRevokedError):
            lab.lab.commit_large_round(
                job.job_id,
                1,
                job.last_digest,
                model_digest(weights(9)),
                "bafkqaaa",
                ids,
                bytes(32),
                batch_size=1,
            )
        assert lab.lab.open_large_round(job.job_id) == (0, 0, bytes(32))
        assert lab.lab.get_job(job.job_id).last_round == 0
    finally:
        now = lab.lab.latest_block().timestamp
        victim.client.issue_grant(victim.dataset_id, lab.lab.address or "", AI, now, now + 30 * 24 * 3600)


# ------------------------------------------------------------------------------ reverse lineage (impact)


def test_impact_finds_large_rounds_and_checks_each_grant_at_its_batch(lab: Lab, tmp_path: Path) -> None:
    from ledger.audit import impact

    job = create_open_job(lab, seed=10)
    late = lab.hospitals[0]
    revoked_at: list[int] = []

    def revoke() -> None:
        revoked_at.append(late.client.revoke_grant(late.dataset_id, lab.lab.address or "", AI).block_number)

    try:
        commit_large(lab, job, contributions(lab.hospitals, 1), between=revoke)
        commit_large(lab, job, contributions(lab.hospitals[1:], 2))
        index = lab.index(_index_path(tmp_path))
        report = impact(index=index, client=lab.lab, store=lab.store, dataset_id=late.dataset_id)
        mine = [v for v in report.versions if v.job_id == job.job_id]
        assert [(v.round, v.direct) for v in mine] == [(1, True), (2, False)]
        first, second = mine
        # Checked where its batch was added, before the revocation: a valid use, no violation.
        assert (first.grant_status, first.chain_status, first.violation) == ("authorized", "authorized", None)
        assert first.block_number > revoked_at[0]  # the commit itself came after the revocation
        assert second.after_end == (f"after the grant's revocation at block {revoked_at[0]}",)
        # A dataset of round 2's batches is a direct use there too.
        other = impact(index=index, client=lab.lab, dataset_id=lab.hospitals[1].dataset_id)
        assert [(v.round, v.direct) for v in other.versions if v.job_id == job.job_id] == [
            (1, True),
            (2, True),
        ]
        # The aborted attempt of another job leaves no trace in the index's participant rows.
        aborted = create_open_job(lab, seed=11)
        lab.lab.begin_large_round(aborted.job_id, 1, aborted.last_digest)
        lab.lab.add_round_participants(aborted.job_id, 1, [lab.hospitals[1].dataset_id])
        lab.lab.abort_large_round(aborted.job_id, 1)
        commit_large(lab, aborted, contributions(lab.hospitals[2:], 1))
        again = impact(index=index, client=lab.lab, dataset_id=lab.hospitals[1].dataset_id)
        assert [v.job_id for v in again.versions if v.job_id == aborted.job_id] == []
        assert index.batch_position(aborted.job_id, 1, lab.hospitals[1].dataset_id) is None
    finally:
        now = lab.lab.latest_block().timestamp
        late.client.issue_grant(late.dataset_id, lab.lab.address or "", AI, now, now + 30 * 24 * 3600)


def test_a_listed_job_reads_as_before(lab: Lab, tmp_path: Path) -> None:
    """The bitmask mode's messages name its dataset list and the RoundCommitted event alone."""
    from tests.audit.forge import create_job, honest_round

    job = create_job(lab)
    honest_round(lab, job)
    report = _audit(lab, job, tmp_path)
    assert report.ok
    [job_check] = [c for c in report.checks if c.name == "job"]
    assert " over 3 dataset(s); 1 round(s) on chain, last digest " in job_check.message
    [manifest_check] = [c for c in report.checks if c.name == "manifest"]
    assert manifest_check.message == "round 1: manifest matches the RoundCommitted event (3 participant(s))"
    assert [c for c in report.checks if c.name == "large-round"] == []
    committed = _lineage(lab, job, tmp_path).rounds[0].committed
    grants = [c.message for c in report.checks if c.name == "grant"]
    assert all(f"was valid at block {committed.block_number}: " in m for m in grants) and len(grants) == 3
