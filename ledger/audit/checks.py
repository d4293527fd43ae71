"""The audit's verdicts: each check names its round and item, and passes, fails or could not be made.

Check names (stable; scripts filter on them):

- `job`: the job's on-chain record (`getJob` at the audit's head) agrees with its logs: the
  coordinator, purpose and spec digest of `JobCreated`, the number of `RoundCommitted` logs
  (consecutive from 1) and the last one's model digest.
- `index`: the local event index says what the chain's logs say about the job and its rounds
  (the audit takes no fact from the index; a disagreement means the cache was edited or is stale).
- `content`: a manifest or model CID resolves, its bytes hash to the CID, a manifest parses,
  and the model's sha256 equals the committed model digest.
- `manifest`: the manifest says what the chain committed (job, round, model digest,
  participants, attestation root, chain, ledger, purpose, spec digest).
- `large-round`: for a round committed in batches (an open job's), the `RoundParticipantsAdded`
  logs add exactly the participant count and hash chain `LargeRoundCommitted` commits, and the
  manifest's participant list hashes to that commitment.
- `digest-chain`: each round builds on the previous round's model (round 1 on the job's
  initial model), on chain and in the manifest, up to the target.
- `attestation`: a participant's attestation binds the round's parent digest and the job's
  on-chain spec digest, and is signed by the key that held the dataset's deed at that round,
  or accepted by the deed holder's contract wallet (EIP-1271 `isValidSignature` at the round's block).
- `attestation-root`: the Merkle root over the manifest's attestations is the committed root.
- `grant`: the coordinator held a valid grant for the dataset and the job's purpose at that
  round's position (the chain's grant and deed logs, and the contract at that block).
- `weights`: the manifest's aggregation weights are the attested example counts' shares.
- `update`: a participant's update resolves by its `update_cid` and hashes to the attested digest.
- `privacy`: a participant's attested cumulative epsilon is what the accountant
  (`ledger.privacy.cumulative_epsilon`) composes from its attested DP-SGD parameters, within
  the grant's budget at that round's block, and a grant with a budget got DP rounds
  (`ledger.audit.privacy`); one summary per dataset with the epsilon spent and left.
- `aggregation`: FedAvg of the round's updates (`ledger.aggregation.aggregate_updates`, in
  manifest order, weighted by the attested example counts) has the committed model digest.

Statuses: `pass`, `fail`, `not-verifiable` (the evidence is not available to the auditor: an
update the lab did not hand over) and `not-checked` (the auditor's RPC node keeps no state at
the round's block, so the contracts could not be asked). Only a report whose every check
passed is VERIFIED; one with no failure but some check not made is NOT VERIFIED.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ledger.audit.lineage import Lineage, ParticipantFacts, RoundFacts, grant_position, grant_status_name
from ledger.audit.privacy import privacy_findings
from ledger.index import GrantStatus
from ledger.participants import hash_chain
from ledger.provenance import WEIGHT_TOLERANCE
from ledger.purposes import describe_purpose

CHECK_NAMES = (
    "job",
    "index",
    "content",
    "manifest",
    "large-round",
    "digest-chain",
    "attestation",
    "attestation-root",
    "grant",
    "weights",
    "update",
    "aggregation",
    "privacy",
)


class CheckStatus(StrEnum):
    """A check's outcome."""

    PASS = "pass"
    FAIL = "fail"
    NOT_VERIFIABLE = "not-verifiable"
    NOT_CHECKED = "not-checked"


PASS = CheckStatus.PASS
FAIL = CheckStatus.FAIL
NOT_VERIFIABLE = CheckStatus.NOT_VERIFIABLE
NOT_CHECKED = CheckStatus.NOT_CHECKED


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict: `name` from `CHECK_NAMES`, its status, the round and item it is about, and why."""

    name: str
    status: CheckStatus
    subject: str
    message: str
    round: int | None = None
    dataset_id: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the check passed."""
        return self.status is CheckStatus.PASS

    @property
    def failed(self) -> bool:
        """Whether the check found a problem (as opposed to passing or not being made)."""
        return self.status is CheckStatus.FAIL

    @property
    def unverified(self) -> bool:
        """Whether the check could not be made (`not-verifiable` or `not-checked`)."""
        return self.status in (CheckStatus.NOT_VERIFIABLE, CheckStatus.NOT_CHECKED)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (dataset ids as 0x + 64 hex digits)."""
        return {
            "name": self.name,
            "status": str(self.status),
            "ok": self.ok,
            "subject": self.subject,
            "message": self.message,
            "round": self.round,
            "dataset_id": None if self.dataset_id is None else f"0x{self.dataset_id:064x}",
        }


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _ds(dataset_id: int) -> str:
    return f"0x{dataset_id:064x}"


def evaluate(lineage: Lineage) -> list[Check]:
    """Every check of the lineage, in round order."""
    checks: list[Check] = [_job_check(lineage), *_index_checks(lineage)]
    previous_digest = lineage.job.initial_model_digest
    previous_label = f"job {lineage.job.job_id}'s initial model"
    for facts in lineage.rounds:
        checks.extend(_round_checks(lineage, facts, previous_digest, previous_label))
        previous_digest = facts.committed.model_digest
        previous_label = f"round {facts.committed.round}'s model"
    checks.extend(_privacy_checks(lineage))
    checks.append(_target_check(lineage))
    return checks


def _privacy_checks(lineage: Lineage) -> list[Check]:
    findings, budgets = privacy_findings(lineage)
    statuses = {"pass": PASS, "fail": FAIL, "not-checked": NOT_CHECKED}
    out = [
        Check(
            "privacy",
            statuses[f.status],
            f"round {f.round} dataset {_ds(f.dataset_id)}",
            f.message,
            f.round,
            f.dataset_id,
        )
        for f in findings
    ]
    participants = sorted({p.dataset_id for facts in lineage.rounds for p in facts.participants})
    for dataset_id in participants:
        budget = budgets.get(dataset_id)
        subject = f"dataset {_ds(dataset_id)} privacy budget"
        if budget is None:
            if not any(f.dataset_id == dataset_id for f in findings):
                out.append(
                    Check(
                        "privacy",
                        PASS,
                        subject,
                        f"dataset {_ds(dataset_id)}: no DP rounds attested "
                        "and no privacy budget in its grant",
                        None,
                        dataset_id,
                    )
                )
            continue
        failed = any(f.dataset_id == dataset_id and f.status == "fail" for f in findings)
        unread = budget.epsilon_budget is None
        left = budget.epsilon_left
        message = (
            f"dataset {_ds(dataset_id)}: epsilon spent {budget.epsilon_spent:.6f} over "
            f"{budget.private_rounds} DP round(s) of this job"
            + ("" if unread else f", budget {budget.epsilon_budget:g} (delta {budget.delta:g})")
            + ("" if left is None else f", left {left:.6f}")
        )
        out.append(
            Check(
                "privacy",
                FAIL if failed else NOT_CHECKED if unread else PASS,
                subject,
                message,
                None,
                dataset_id,
            )
        )
    return out


def _job_check(lineage: Lineage) -> Check:
    job = lineage.job
    subject = f"job {job.job_id}"
    if lineage.on_chain_job is None:
        return Check(
            "job",
            FAIL,
            subject,
            f"job {job.job_id}: the TrainingLedger cannot read it: {lineage.on_chain_job_error}",
        )
    record = lineage.on_chain_job
    problems = []
    if record.coordinator != job.coordinator:
        problems.append(f"coordinator {record.coordinator} on chain but {job.coordinator} in JobCreated")
    if record.purpose != job.purpose:
        problems.append(f"purpose {_hex(record.purpose)} on chain but {_hex(job.purpose)} in JobCreated")
    if record.spec_digest != job.spec_digest:
        problems.append(
            f"spec digest {_hex(record.spec_digest)} on chain but {_hex(job.spec_digest)} in JobCreated"
        )
    numbers = [r.round for r in lineage.all_rounds]
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"the RoundCommitted logs carry rounds {numbers}, not 1..{len(numbers)}")
    if record.last_round != len(numbers):
        problems.append(
            f"the contract's last round is {record.last_round} but the chain has {len(numbers)} "
            f"RoundCommitted log(s) for the job up to block {lineage.head_block}"
        )
    last_digest = lineage.all_rounds[-1].model_digest if lineage.all_rounds else job.initial_model_digest
    if record.last_digest != last_digest:
        problems.append(
            f"the contract's last digest {_hex(record.last_digest)} is not the last committed model "
            f"{_hex(last_digest)}"
        )
    if problems:
        return Check("job", FAIL, subject, f"job {job.job_id}: " + "; ".join(problems))
    return Check(
        "job",
        PASS,
        subject,
        f"job {job.job_id} created by coordinator {job.coordinator} at block {job.block_number} for "
        f"{describe_purpose(job.purpose)} over {_job_scope(job.datasets)}; {record.last_round} round(s) on "
        f"chain, last digest {_hex(record.last_digest)}",
    )


def _job_scope(datasets: tuple[int, ...]) -> str:
    if not datasets:
        return "any dataset granted to it (an open job, rounds committed in batches)"
    return f"{len(datasets)} dataset(s)"


def _index_checks(lineage: Lineage) -> list[Check]:
    job = lineage.job
    if not lineage.index_problems:
        return [
            Check(
                "index",
                PASS,
                f"job {job.job_id} index",
                f"job {job.job_id}: the local index agrees with the chain's logs on the job and its "
                f"{len(lineage.all_rounds)} round(s) (facts were read from the chain)",
            )
        ]
    return [
        Check(
            "index",
            FAIL,
            f"job {job.job_id} index" + ("" if r is None else f" round {r}"),
            f"{problem}; the local index does not match the chain (rebuild it with `sov index rebuild`)",
            r,
        )
        for r, problem in lineage.index_problems
    ]


def _target_check(lineage: Lineage) -> Check:
    target = lineage.target
    subject = f"target {target.text}"
    if target.round == 0:
        digest = lineage.job.initial_model_digest
        if target.digest is not None and target.digest != digest:
            return Check(
                "digest-chain",
                FAIL,
                subject,
                f"round 0: target digest {_hex(target.digest)} is not job {lineage.job.job_id}'s initial "
                f"model {_hex(digest)}",
                0,
            )
        return Check(
            "digest-chain",
            PASS,
            subject,
            f"target is job {lineage.job.job_id}'s initial model 0x{digest.hex()} (no rounds to verify)",
            0,
        )
    last = next((f for f in lineage.rounds if f.committed.round == target.round), None)
    if last is None:
        return Check(
            "digest-chain",
            FAIL,
            subject,
            f"round {target.round} of job {lineage.job.job_id} is not committed on chain "
            f"({len(lineage.all_rounds)} RoundCommitted log(s) up to block {lineage.head_block})",
            target.round,
        )
    if target.digest is not None and last.committed.model_digest != target.digest:
        return Check(
            "digest-chain",
            FAIL,
            subject,
            f"round {target.round}: target digest {_hex(target.digest)} is not the committed "
            f"{_hex(last.committed.model_digest)}",
            target.round,
        )
    return Check(
        "digest-chain",
        PASS,
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
                FAIL,
                f"{where} manifest {committed.manifest_cid}",
                f"{where}: {facts.manifest_error}",
                r,
            )
        )
    else:
        out.append(
            Check(
                "content",
                PASS,
                f"{where} manifest {committed.manifest_cid}",
                f"{where}: manifest {committed.manifest_cid} resolves, hashes to its CID and parses",
                r,
            )
        )
    # content: model
    model_subject = f"{where} model {facts.model_cid or '(unknown CID)'}"
    if facts.model_bytes_digest is None:
        out.append(Check("content", FAIL, model_subject, f"{where}: {facts.model_error}", r))
    elif facts.model_bytes_digest != committed.model_digest:
        out.append(
            Check(
                "content",
                FAIL,
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
                PASS,
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
        if facts.large is not None:
            out.append(_large_round_check(facts))
        out.append(_root_check(facts))
        out.append(_weights_check(facts))
    for p in facts.participants:
        out.append(_attestation_check(lineage, facts, p))
        out.append(_grant_check(lineage, facts, p))
        if p.entry is not None:
            out.append(_update_check(facts, p))
    if facts.manifest is not None:
        out.append(_aggregation_check(facts))
    return out


def _update_check(facts: RoundFacts, p: ParticipantFacts) -> Check:
    r = facts.committed.round
    ds = _ds(p.dataset_id)
    subject = f"round {r} dataset {ds} update"
    where = f"round {r}: dataset {ds}"
    if p.update_status == "verified":
        return Check(
            "update",
            PASS,
            subject,
            f"{where}: {p.update_note} hashes to the attested digest",
            r,
            p.dataset_id,
        )
    if p.update_status == "missing":
        return Check(
            "update",
            NOT_VERIFIABLE,
            subject,
            f"{where}: not verifiable: {p.update_note} (the lab keeps updates in its store; ask it for the "
            "job's CAR)",
            r,
            p.dataset_id,
        )
    return Check(
        "update", FAIL, subject, f"{where}: {p.update_note or 'the update was not fetched'}", r, p.dataset_id
    )


def _aggregation_check(facts: RoundFacts) -> Check:
    """Only for a round whose manifest is there (`_round_checks`)."""
    c = facts.committed
    r = c.round
    assert facts.manifest is not None
    declared = len(facts.manifest.participants)
    subject = f"round {r} aggregation"
    bad = [p for p in facts.participants if p.entry is not None and p.update_status == "bad"]
    if bad:
        return Check(
            "aggregation",
            FAIL,
            subject,
            f"round {r}: the committed model cannot be recomputed: the update of dataset "
            + ", ".join(_ds(p.dataset_id) for p in bad)
            + " is not the attested one",
            r,
        )
    if facts.aggregation_missing:
        return Check(
            "aggregation",
            NOT_VERIFIABLE,
            subject,
            f"round {r}: aggregation not verifiable: the update of dataset "
            + ", ".join(_ds(d) for d in facts.aggregation_missing)
            + " is not in the auditor's content store, so the committed model "
            f"{_hex(c.model_digest)} cannot be recomputed",
            r,
        )
    if facts.aggregate_digest is None:
        return Check("aggregation", FAIL, subject, f"round {r}: {facts.aggregation_error}", r)
    if facts.aggregate_digest != c.model_digest:
        return Check(
            "aggregation",
            FAIL,
            subject,
            f"round {r}: FedAvg of the {declared} attested "
            f"update(s) has digest {_hex(facts.aggregate_digest)}, but the committed model digest is "
            f"{_hex(c.model_digest)}: the committed model is not the aggregate of the declared updates",
            r,
        )
    return Check(
        "aggregation",
        PASS,
        subject,
        f"round {r}: FedAvg of the {declared} attested "
        f"update(s) recomputes the committed model {_hex(c.model_digest)}",
        r,
    )


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
        return Check("digest-chain", FAIL, subject, f"round {r}: " + "; ".join(problems), r)
    return Check(
        "digest-chain", PASS, subject, f"round {r} builds on {previous_label} {_hex(previous_digest)}", r
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
    on_chain = facts.on_chain_participants
    if listed != sorted(on_chain):
        extra = sorted(set(listed) - set(on_chain))
        missing = sorted(set(on_chain) - set(listed))
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
            "manifest", FAIL, subject, f"round {r}: manifest {c.manifest_cid}: " + "; ".join(problems), r
        )
    return Check(
        "manifest",
        PASS,
        subject,
        f"round {r}: manifest matches the RoundCommitted event ({len(listed)} participant(s)"
        f"{'' if facts.large is None else ', as added by the round' + chr(39) + 's batches'})",
        r,
    )


def _large_round_check(facts: RoundFacts) -> Check:
    """A large round's batches, its commitment and the manifest's list are one participant set."""
    large = facts.large
    m = facts.manifest
    assert large is not None and m is not None
    r = facts.committed.round
    subject = f"round {r} participants"
    added = large.participants
    added_hash = hash_chain(added)
    committed = (
        f"LargeRoundCommitted commits {large.participant_count} hashing to {_hex(large.participants_hash)}"
    )
    if (len(added), added_hash) != (large.participant_count, large.participants_hash):
        return Check(
            "large-round",
            FAIL,
            subject,
            f"round {r}: the chain's {len(large.batches)} RoundParticipantsAdded log(s) add {len(added)} "
            f"dataset(s) hashing to {_hex(added_hash)}, but {committed} (a batch log is missing or altered)",
            r,
        )
    listed = [p.dataset_id for p in m.participants]
    listed_hash = hash_chain(listed)
    if listed_hash != large.participants_hash:
        return Check(
            "large-round",
            FAIL,
            subject,
            f"round {r}: manifest {facts.committed.manifest_cid} lists {len(listed)} participant(s) hashing "
            f"to {_hex(listed_hash)}, but {committed}",
            r,
        )
    first, last = large.batches[0].block_number, large.batches[-1].block_number
    return Check(
        "large-round",
        PASS,
        subject,
        f"round {r}: {len(added)} participant(s) added in {len(large.batches)} batch(es) (blocks "
        f"{first}..{last}) hash to the committed {_hex(large.participants_hash)}, as the manifest's "
        "list does",
        r,
    )


def _root_check(facts: RoundFacts) -> Check:
    r = facts.committed.round
    subject = f"round {r} attestation root"
    assert facts.computed_root is not None  # computed with the manifest, which this check needs
    if facts.computed_root != facts.committed.attestations_root:
        return Check(
            "attestation-root",
            FAIL,
            subject,
            f"round {r}: the manifest's attestations have Merkle root {_hex(facts.computed_root)}, but the "
            f"committed attestationsRoot is {_hex(facts.committed.attestations_root)}",
            r,
        )
    return Check(
        "attestation-root",
        PASS,
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
                FAIL,
                f"round {r} dataset {_ds(p.dataset_id)}",
                f"round {r}: dataset {_ds(p.dataset_id)} has aggregation weight {p.weight!r} but attests "
                f"{p.num_examples} of {total} examples (expected {expected!r})",
                r,
                p.dataset_id,
            )
    return Check(
        "weights",
        PASS,
        f"round {r} weights",
        f"round {r}: weights are the attested example shares ({total} examples)",
        r,
    )


def _attestation_check(lineage: Lineage, facts: RoundFacts, p: ParticipantFacts) -> Check:
    r = facts.committed.round
    c = facts.committed
    ds = _ds(p.dataset_id)
    subject = f"round {r} dataset {ds}"

    def fail(message: str) -> Check:
        return Check("attestation", FAIL, subject, f"round {r}: dataset {ds}{message}", r, p.dataset_id)

    if facts.manifest is None:
        return fail(": the attestation cannot be checked: the round manifest is unavailable")
    if p.entry is None:
        return fail(" was committed on chain but has no attestation in the manifest")
    # What the node signed is the manifest's parent and spec digest (`RoundManifest.attestation_of`):
    # they must be the round's parent on chain and the job's spec digest on chain.
    if facts.manifest.parent_digest != c.parent_digest:
        return fail(
            f": the attestation binds base model {_hex(facts.manifest.parent_digest)}, but round {r} builds "
            f"on {_hex(c.parent_digest)} on chain (the node trained another model)"
        )
    if facts.manifest.spec_digest != lineage.job.spec_digest:
        return fail(
            f": the attestation binds spec digest {_hex(facts.manifest.spec_digest)}, but job "
            f"{lineage.job.job_id}'s on-chain spec digest is {_hex(lineage.job.spec_digest)}"
        )
    if p.owner is None:
        return fail(
            f" had no registered owner at block {c.block_number}; the attestation recovers "
            f"{p.recovered_signer or p.signature_error}"
        )
    if (
        p.chain_state is not None
        and p.chain_state.owner != p.owner
        and p.chain_state.owner != p.owner_end_of_block
    ):
        return fail(
            f": the registry says the deed holder at block {c.block_number} was {p.chain_state.owner}, "
            f"the chain's Transfer logs say {p.owner}"
        )
    if p.recovered_signer is not None and p.entry.node != p.recovered_signer:
        return fail(f": the manifest names node {p.entry.node} but the signature is {p.recovered_signer}'s")
    if p.recovered_signer == p.owner:
        return Check(
            "attestation",
            PASS,
            subject,
            f"round {r}: dataset {ds}: attestation ({p.entry.num_examples} examples, on the round's "
            f"parent and the job's spec digest) signed by its owner {p.owner}",
            r,
            p.dataset_id,
        )
    if p.owner_is_contract:
        if p.wallet_accepts is None:
            return Check(
                "attestation",
                NOT_CHECKED,
                subject,
                f"round {r}: dataset {ds}: {p.wallet_note or 'not checked: the owner wallet was not asked'}",
                r,
                p.dataset_id,
            )
        if p.wallet_accepts:
            return Check(
                "attestation",
                PASS,
                subject,
                f"round {r}: dataset {ds}: attestation ({p.entry.num_examples} examples) signed by "
                f"{p.recovered_signer or 'a wallet signature'}; {p.wallet_note}",
                r,
                p.dataset_id,
            )
        return fail(
            f": {p.wallet_note}: the attestation is not the owner's (forged or signed by another node)"
        )
    if p.signature_error is not None:
        return fail(f": the attestation signature is invalid: {p.signature_error}")
    if p.owner_is_contract is None and lineage.no_state_block is not None:
        return Check(
            "attestation",
            NOT_CHECKED,
            subject,
            f"round {r}: dataset {ds}: signed by {p.recovered_signer}, not the deed holder {p.owner}; "
            f"not checked whether {p.owner} is a wallet that accepts it: node has no state at block "
            f"{c.block_number}",
            r,
            p.dataset_id,
        )
    return fail(
        f": the attestation is signed by {p.recovered_signer}, not by the dataset "
        f"owner {p.owner} at block {c.block_number} (forged or signed by another node)"
    )


def _grant_check(lineage: Lineage, facts: RoundFacts, p: ParticipantFacts) -> Check:
    r = facts.committed.round
    ds = _ds(p.dataset_id)
    subject = f"round {r} dataset {ds}"
    job = lineage.job
    what = (
        f"round {r}: dataset {ds}: grant to coordinator {job.coordinator} for {describe_purpose(job.purpose)}"
    )
    if not p.in_job:
        return Check(
            "grant",
            FAIL,
            subject,
            f"round {r}: dataset {ds} is not one of job {job.job_id}'s datasets",
            r,
            p.dataset_id,
        )
    grant = p.grant
    assert grant is not None  # rebuilt from the chain's logs for every participant
    # Where the contract checked it: the commit, or a large round's batch that added the dataset.
    block, _, timestamp = grant_position(facts, p)
    if grant.status is not GrantStatus.AUTHORIZED:
        detail = _grant_detail(grant)
        return Check(
            "grant",
            FAIL,
            subject,
            f"{what} was not valid at block {block} (time {timestamp}): "
            f"{grant_status_name(grant.status)}{detail}",
            r,
            p.dataset_id,
        )
    issued = grant.issued
    assert issued is not None
    window = (
        f"window {issued.not_before}..{issued.expires_at} contains {timestamp}, issued at block "
        f"{issued.block_number}, not revoked, dataset not retired, same deed epoch"
    )
    if p.chain_status is None:
        reason = (
            f"node has no state at block {block}"
            if lineage.no_state_block is not None
            else f"the contract did not answer authorizationStatus at block {block}"
        )
        return Check(
            "grant",
            NOT_CHECKED,
            subject,
            f"{what}: not checked: {reason}; the chain's grant and deed logs alone say it was valid "
            f"({window})",
            r,
            p.dataset_id,
        )
    if int(p.chain_status) != int(GrantStatus.AUTHORIZED):
        later = p.grant_end_of_block
        if later is None or int(later.status) != int(p.chain_status):
            return Check(
                "grant",
                FAIL,
                subject,
                f"{what}: the contract says {grant_status_name(p.chain_status)} at block {block} "
                "but the chain's grant logs say authorized at the round's position",
                r,
                p.dataset_id,
            )
    return Check(
        "grant",
        PASS,
        subject,
        f"{what} was valid at block {block}: {window} (grant logs + contract at that block)",
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
