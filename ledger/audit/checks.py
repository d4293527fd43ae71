"""The audit's verdicts: each check names its round and item, and passes or fails on its own.

Check names (stable; scripts filter on them):

- `job`: the job's on-chain record agrees with its events (last round, last digest).
- `content`: a manifest or model CID resolves, its bytes hash to the CID, a manifest parses,
  and the model's sha256 equals the committed model digest.
- `manifest`: the manifest says what the chain committed (job, round, model digest,
  participants, attestation root, chain, ledger, purpose, spec digest).
- `digest-chain`: each round builds on the previous round's model (round 1 on the job's
  initial model), on chain and in the manifest, up to the target.
- `attestation`: a participant's attestation is signed by the key that held the dataset's
  deed at that round.
- `attestation-root`: the Merkle root over the manifest's attestations is the committed root.
- `grant`: the coordinator held a valid grant for the dataset and the job's purpose at that
  round's position (index history; and the contracts at that block when the node keeps state).
- `weights`: the manifest's aggregation weights are the attested example counts' shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ledger.audit.lineage import Lineage, ParticipantFacts, RoundFacts, grant_status_name
from ledger.index import GrantStatus
from ledger.provenance import WEIGHT_TOLERANCE
from ledger.purposes import describe_purpose

CHECK_NAMES = (
    "job",
    "content",
    "manifest",
    "digest-chain",
    "attestation",
    "attestation-root",
    "grant",
    "weights",
)


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict: `name` from `CHECK_NAMES`, the round and item it is about, pass/fail and why."""

    name: str
    ok: bool
    subject: str
    message: str
    round: int | None = None
    dataset_id: int | None = None

    @property
    def status(self) -> str:
        """`pass` or `fail`."""
        return "pass" if self.ok else "fail"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (dataset ids as 0x + 64 hex digits)."""
        return {
            "name": self.name,
            "status": self.status,
            "ok": self.ok,
            "subject": self.subject,
            "message": self.message,
            "round": self.round,
            "dataset_id": None if self.dataset_id is None else f"0x{self.dataset_id:064x}",
        }


def _hex(value: bytes | None) -> str:
    return "none" if value is None else "0x" + value.hex()


def _ds(dataset_id: int) -> str:
    return f"0x{dataset_id:064x}"


def _short_ds(dataset_id: int) -> str:
    text = _ds(dataset_id)
    return f"{text[:10]}…{text[-6:]}"


def evaluate(lineage: Lineage) -> list[Check]:
    """Every check of the lineage, in round order."""
    checks: list[Check] = [_job_check(lineage)]
    previous_digest = lineage.job.initial_model_digest
    previous_label = f"job {lineage.job.job_id}'s initial model"
    for facts in lineage.rounds:
        checks.extend(_round_checks(lineage, facts, previous_digest, previous_label))
        previous_digest = facts.committed.model_digest
        previous_label = f"round {facts.committed.round}'s model"
    checks.append(_target_check(lineage))
    return checks


def _job_check(lineage: Lineage) -> Check:
    job = lineage.job
    subject = f"job {job.job_id}"
    if lineage.on_chain_job is None:
        return Check(
            "job",
            False,
            subject,
            f"job {job.job_id}: the TrainingLedger cannot read it: {lineage.on_chain_job_error}",
        )
    record = lineage.on_chain_job
    problems = []
    if record.coordinator != job.coordinator:
        problems.append(f"coordinator {record.coordinator} on chain but {job.coordinator} in JobCreated")
    if record.purpose != job.purpose:
        problems.append(f"purpose {_hex(record.purpose)} on chain but {_hex(job.purpose)} in JobCreated")
    if lineage.target.round > record.last_round:
        problems.append(
            f"the index has round {lineage.target.round} but the contract's last round is {record.last_round}"
        )
    if problems:
        return Check("job", False, subject, f"job {job.job_id}: " + "; ".join(problems))
    return Check(
        "job",
        True,
        subject,
        f"job {job.job_id} created by coordinator {job.coordinator} at block {job.block_number} for "
        f"{describe_purpose(job.purpose)} over {len(job.datasets)} "
        f"dataset(s); {record.last_round} round(s) on chain",
    )


def _target_check(lineage: Lineage) -> Check:
    target = lineage.target
    subject = f"target {target.text}"
    if target.round == 0:
        digest = lineage.job.initial_model_digest
        return Check(
            "digest-chain",
            digest == target.digest or target.digest is None,
            subject,
            f"target is job {lineage.job.job_id}'s initial model 0x{digest.hex()} (no rounds to verify)",
            0,
        )
    last = next((f for f in lineage.rounds if f.committed.round == target.round), None)
    if last is None:
        return Check(
            "digest-chain",
            False,
            subject,
            f"round {target.round} of job {lineage.job.job_id} is not in the index",
            target.round,
        )
    if target.digest is not None and last.committed.model_digest != target.digest:
        return Check(
            "digest-chain",
            False,
            subject,
            f"round {target.round}: target digest {_hex(target.digest)} is not the committed "
            f"{_hex(last.committed.model_digest)}",
            target.round,
        )
    return Check(
        "digest-chain",
        True,
        subject,
        f"the chain of {len(lineage.rounds)} round(s) leads from job {lineage.job.job_id}'s initial model "
        f"to {target.kind} {target.text} (round {target.round}, digest {_hex(last.committed.model_digest)})",
        target.round,
    )


def _round_checks(
    lineage: Lineage, facts: RoundFacts, previous_digest: bytes, previous_label: str
) -> list[Check]:
    r = facts.committed.round
    committed = facts.committed
    out: list[Check] = []
    where = f"round {r}"
    # content: manifest
    if facts.manifest is None:
        out.append(
            Check(
                "content",
                False,
                f"{where} manifest {committed.manifest_cid}",
                f"{where}: {facts.manifest_error}",
                r,
            )
        )
    else:
        out.append(
            Check(
                "content",
                True,
                f"{where} manifest {committed.manifest_cid}",
                f"{where}: manifest {committed.manifest_cid} resolves, hashes to its CID and parses",
                r,
            )
        )
    # content: model
    model_subject = f"{where} model {facts.model_cid or '(unknown CID)'}"
    if facts.model_bytes_digest is None:
        out.append(Check("content", False, model_subject, f"{where}: {facts.model_error}", r))
    elif facts.model_bytes_digest != committed.model_digest:
        out.append(
            Check(
                "content",
                False,
                model_subject,
                f"{where}: model {facts.model_cid} bytes hash to {_hex(facts.model_bytes_digest)}, but the "
                f"committed model digest is {_hex(committed.model_digest)}",
                r,
            )
        )
    else:
        out.append(
            Check(
                "content",
                True,
                model_subject,
                f"{where}: model {facts.model_cid} ({facts.model_size} bytes) hashes to the committed digest "
                f"{_hex(committed.model_digest)}",
                r,
            )
        )
    # digest chain
    out.append(_digest_chain_check(facts, previous_digest, previous_label))
    if facts.manifest is not None:
        out.append(_manifest_check(lineage, facts))
        out.append(_root_check(facts))
        out.append(_weights_check(facts))
    for p in facts.participants:
        out.append(_attestation_check(facts, p))
        out.append(_grant_check(lineage, facts, p))
    return out


def _digest_chain_check(facts: RoundFacts, previous_digest: bytes, previous_label: str) -> Check:
    r = facts.committed.round
    subject = f"round {r} parent digest"
    problems = []
    if facts.committed.parent_digest != previous_digest:
        problems.append(
            f"the committed parent digest {_hex(facts.committed.parent_digest)} "
            f"is not {previous_label} {_hex(previous_digest)}"
        )
    if facts.manifest is not None and facts.manifest.parent_digest != previous_digest:
        problems.append(
            f"manifest parent_digest {_hex(facts.manifest.parent_digest)} "
            f"is not {previous_label} {_hex(previous_digest)}"
        )
    if problems:
        return Check("digest-chain", False, subject, f"round {r}: " + "; ".join(problems), r)
    return Check(
        "digest-chain", True, subject, f"round {r} builds on {previous_label} {_hex(previous_digest)}", r
    )


def _manifest_check(lineage: Lineage, facts: RoundFacts) -> Check:
    m = facts.manifest
    assert m is not None
    c = facts.committed
    r = c.round
    job = lineage.job
    problems = []
    if m.job_id != c.job_id:
        problems.append(f"job_id {m.job_id} is not the committed job {c.job_id}")
    if m.round != c.round:
        problems.append(f"round {m.round} is not the committed round {c.round}")
    if m.model_digest != c.model_digest:
        problems.append(f"model_digest {_hex(m.model_digest)} is not the committed {_hex(c.model_digest)}")
    if m.attestations_root != c.attestations_root:
        problems.append(
            f"attestations_root {_hex(m.attestations_root)} is not the committed {_hex(c.attestations_root)}"
        )
    listed = [p.dataset_id for p in m.participants]
    if listed != sorted(c.participants):
        extra = sorted(set(listed) - set(c.participants))
        missing = sorted(set(c.participants) - set(listed))
        detail = []
        if extra:
            detail.append("lists " + ", ".join(_ds(d) for d in extra) + " that the chain did not record")
        if missing:
            detail.append("omits " + ", ".join(_ds(d) for d in missing) + " that the chain recorded")
        problems.append("participants " + " and ".join(detail))
    if m.chain_id != lineage.chain_id:
        problems.append(f"chain_id {m.chain_id} is not this chain ({lineage.chain_id})")
    if m.training_ledger.lower() != lineage.training_ledger.lower():
        problems.append(
            f"training_ledger {m.training_ledger} is not the deployment's {lineage.training_ledger}"
        )
    if m.purpose != job.purpose:
        problems.append(
            f"purpose {describe_purpose(m.purpose)} is not the job's {describe_purpose(job.purpose)}"
        )
    if m.spec_digest != job.spec_digest:
        problems.append(f"spec_digest {_hex(m.spec_digest)} is not the job's {_hex(job.spec_digest)}")
    subject = f"round {r} manifest {c.manifest_cid}"
    if problems:
        return Check(
            "manifest", False, subject, f"round {r}: manifest {c.manifest_cid}: " + "; ".join(problems), r
        )
    return Check(
        "manifest",
        True,
        subject,
        f"round {r}: manifest matches the RoundCommitted event ({len(listed)} participant(s))",
        r,
    )


def _root_check(facts: RoundFacts) -> Check:
    r = facts.committed.round
    subject = f"round {r} attestation root"
    if facts.computed_root is None:
        return Check(
            "attestation-root",
            False,
            subject,
            f"round {r}: cannot compute the attestation root: {facts.root_error}",
            r,
        )
    if facts.computed_root != facts.committed.attestations_root:
        return Check(
            "attestation-root",
            False,
            subject,
            f"round {r}: the manifest's attestations have Merkle root {_hex(facts.computed_root)}, but the "
            f"committed attestationsRoot is {_hex(facts.committed.attestations_root)}",
            r,
        )
    return Check(
        "attestation-root",
        True,
        subject,
        f"round {r}: {len(facts.participants)} attestation(s) have the committed Merkle root "
        f"{_hex(facts.committed.attestations_root)}",
        r,
    )


def _weights_check(facts: RoundFacts) -> Check:
    m = facts.manifest
    assert m is not None
    r = facts.committed.round
    total = sum(p.num_examples for p in m.participants)
    for p in m.participants:
        expected = p.num_examples / total
        if not math.isclose(p.weight, expected, rel_tol=0.0, abs_tol=WEIGHT_TOLERANCE):
            return Check(
                "weights",
                False,
                f"round {r} dataset {_ds(p.dataset_id)}",
                f"round {r}: dataset {_ds(p.dataset_id)} has aggregation weight {p.weight!r} but attests "
                f"{p.num_examples} of {total} examples (expected {expected!r})",
                r,
                p.dataset_id,
            )
    return Check(
        "weights",
        True,
        f"round {r} weights",
        f"round {r}: weights are the attested example shares ({total} examples)",
        r,
    )


def _attestation_check(facts: RoundFacts, p: ParticipantFacts) -> Check:
    r = facts.committed.round
    ds = _ds(p.dataset_id)
    subject = f"round {r} dataset {ds}"
    if facts.manifest is None:
        return Check(
            "attestation",
            False,
            subject,
            f"round {r}: dataset {ds}: the attestation cannot be checked: the round manifest is unavailable",
            r,
            p.dataset_id,
        )
    if p.entry is None:
        return Check(
            "attestation",
            False,
            subject,
            f"round {r}: dataset {ds} was committed on chain but has no attestation in the manifest",
            r,
            p.dataset_id,
        )
    if p.signature_error is not None:
        return Check(
            "attestation",
            False,
            subject,
            f"round {r}: dataset {ds}: the attestation signature is invalid: {p.signature_error}",
            r,
            p.dataset_id,
        )
    if p.owner is None:
        return Check(
            "attestation",
            False,
            subject,
            f"round {r}: dataset {ds} had no registered owner at block {facts.committed.block_number}; "
            f"the attestation recovers {p.recovered_signer}",
            r,
            p.dataset_id,
        )
    if p.recovered_signer != p.owner:
        return Check(
            "attestation",
            False,
            subject,
            f"round {r}: dataset {ds}: the attestation is signed by {p.recovered_signer}, not by the dataset "
            f"owner {p.owner} at block {facts.committed.block_number} (forged or signed by another node)",
            r,
            p.dataset_id,
        )
    if p.chain_state is not None and p.chain_state.owner != p.owner:
        return Check(
            "attestation",
            False,
            subject,
            f"round {r}: dataset {ds}: the registry says the deed "
            f"holder at block {facts.committed.block_number} "
            f"was {p.chain_state.owner}, the index says {p.owner}",
            r,
            p.dataset_id,
        )
    if p.entry.node != p.recovered_signer:
        return Check(
            "attestation",
            False,
            subject,
            f"round {r}: dataset {ds}: the manifest names node {p.entry.node} but the signature is "
            f"{p.recovered_signer}'s",
            r,
            p.dataset_id,
        )
    return Check(
        "attestation",
        True,
        subject,
        f"round {r}: dataset {ds}: attestation ({p.entry.num_examples} "
        f"examples) signed by its owner {p.owner}",
        r,
        p.dataset_id,
    )


def _grant_check(lineage: Lineage, facts: RoundFacts, p: ParticipantFacts) -> Check:
    r = facts.committed.round
    c = facts.committed
    ds = _ds(p.dataset_id)
    subject = f"round {r} dataset {ds}"
    job = lineage.job
    what = (
        f"round {r}: dataset {ds}: grant to coordinator {job.coordinator} for {describe_purpose(job.purpose)}"
    )
    if not p.in_job:
        return Check(
            "grant",
            False,
            subject,
            f"round {r}: dataset {ds} is not one of job {job.job_id}'s datasets",
            r,
            p.dataset_id,
        )
    grant = p.grant
    if grant is None:
        return Check("grant", False, subject, f"{what}: no grant history available", r, p.dataset_id)
    if grant.status is not GrantStatus.AUTHORIZED:
        detail = _grant_detail(grant)
        return Check(
            "grant",
            False,
            subject,
            f"{what} was not valid at block {c.block_number} (time {c.timestamp}): "
            f"{grant_status_name(grant.status)}{detail}",
            r,
            p.dataset_id,
        )
    if p.chain_status is not None and int(p.chain_status) != int(GrantStatus.AUTHORIZED):
        later = p.grant_end_of_block
        if later is None or int(later.status) != int(p.chain_status):
            return Check(
                "grant",
                False,
                subject,
                f"{what}: the contract says {grant_status_name(p.chain_status)} at block {c.block_number} "
                "but the indexed history says authorized; the index does not match the chain (rebuild it)",
                r,
                p.dataset_id,
            )
    issued = grant.issued
    assert issued is not None
    source = "index + contract at that block" if p.chain_status is not None else "index"
    return Check(
        "grant",
        True,
        subject,
        f"{what} was valid at block {c.block_number}: window {issued.not_before}..{issued.expires_at} "
        f"contains {c.timestamp}, issued at block {issued.block_number}, not revoked, dataset not retired, "
        f"same deed epoch ({source})",
        r,
        p.dataset_id,
    )


def _grant_detail(grant: Any) -> str:
    parts = []
    if grant.issued is not None:
        parts.append(f"window {grant.issued.not_before}..{grant.issued.expires_at}")
    if grant.revocation is not None:
        parts.append(f"revoked at block {grant.revocation.block_number}")
    if grant.retired_block is not None:
        parts.append(f"dataset retired at block {grant.retired_block}")
    if grant.owner_change is not None:
        parts.append(f"deed transferred at block {grant.owner_change.block_number}")
    if not grant.dataset_registered:
        parts.append("dataset not registered")
    return f" ({'; '.join(parts)})" if parts else ""
