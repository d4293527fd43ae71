"""A DP budget spent by the owners' nodes on a real anvil and store, and proved by the audit."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fl_node.messages import NodeRefusal, NodeUpdate, RoundRequest
from fl_node.privacy import BudgetLedger
from fl_node.runner import EmbeddedRunner, TrainConfig, enroll, prepare
from ledger.audit import audit, rebuild_lineage, resolve_target
from ledger.audit.chainlog import ChainLogs
from ledger.audit.privacy import privacy_findings
from ledger.chain.types import GrantTerms
from ledger.index import EventIndex
from ledger.privacy import cumulative_epsilon
from ledger.provenance import ParticipantPrivacy, PrivacyClaim, recover_attestation_signer
from ledger.purposes import purpose_id
from ledger.store.local import LocalBlockstore

CONFIG = TrainConfig(data="breast_cancer", nodes=3, rounds=3, partition="iid", seed=7)
AI_TRAINING = purpose_id("ai-training")
BUDGET = GrantTerms(epsilon=2.0, delta=1e-5)


def _setup(deployed: object, tmp_path: Path, terms: GrantTerms = BUDGET) -> tuple[EmbeddedRunner, object]:
    lab = deployed[0]  # type: ignore[index]
    federation = prepare(CONFIG)
    enrollment = enroll(lab, federation, CONFIG)
    now = lab.latest_block().timestamp
    # Hospital 0 re-issues its grant with a privacy budget; the others keep theirs without terms.
    enrollment.owners[0].issue_grant(
        federation.dataset_ids[0], lab.address, AI_TRAINING, now, now + 86400, terms=terms
    )
    store = LocalBlockstore(tmp_path / "blocks")
    runner = EmbeddedRunner(federation, enrollment, store, CONFIG)
    for index, node in enumerate(runner.nodes):
        # Each owner's own data directory; hospital 0 spreads its budget over 2 rounds.
        node.node.budget = BudgetLedger(tmp_path / f"home{index}", planned_rounds=2)
    return runner, federation


def _request(runner: EmbeddedRunner, job: object, **changes: object) -> RoundRequest:
    state = runner.coordinator.refresh(job, runner.initial_model_cid)  # type: ignore[arg-type]
    base = RoundRequest(
        job_id=state.job_id,
        round_number=state.last_round + 1,
        job_datasets=state.job_datasets,
        base_model_cid=state.last_model_cid,
        base_digest=state.last_digest,
        spec_json=state.spec.model_dump_json(),
        seed=state.seed,
        participants=state.job_datasets,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_job_stops_using_a_dataset_at_the_round_that_would_exceed_its_budget(
    deployed: object, tmp_path: Path
) -> None:
    runner, federation = _setup(deployed, tmp_path)
    private = federation.dataset_ids[0]  # type: ignore[attr-defined]
    lab = runner.coordinator.client
    job = runner.create_job()
    run = runner.run(job)

    assert [private in r.participants for r in run.rounds] == [True, True, False], [
        r.refused for r in run.rounds
    ]
    assert run.rounds[2].refused[private].startswith("privacy_budget_exhausted: ")
    assert "of its budget 2" in run.rounds[2].refused[private]
    assert all(len(r.participants) >= 2 for r in run.rounds)  # the others go on

    ledger = runner.nodes[0].node.budget
    history = ledger.history(lab.chain_id, private, lab.address, AI_TRAINING)
    assert [(e["job_id"], e["round"]) for e in history] == [(job.job_id, 1), (job.job_id, 2)]
    spent = ledger.spent(lab.chain_id, private, lab.address, AI_TRAINING, BUDGET.delta)
    assert 0 < spent <= BUDGET.epsilon
    # the file is in the owner's data directory, keyed by chain, dataset, grantee and purpose
    files = list((tmp_path / "home0" / "privacy").glob("*.json"))
    assert len(files) == 1 and f"{private:064x}" in files[0].name and AI_TRAINING.hex() in files[0].name
    assert not (tmp_path / "home1" / "privacy").exists()  # no budget, no DP, nothing spent

    report = audit(
        str(job.job_id),
        client=lab,
        index=EventIndex(tmp_path / "index.sqlite", lab),
        store=runner.coordinator.store,
    )
    assert report.ok, [c.message for c in report.failures]
    privacy = [c for c in report.checks if c.name == "privacy"]
    assert sum(1 for c in privacy if c.round is not None) == 2  # hospital 0's two DP rounds
    (budget,) = report.privacy_budgets()
    assert budget.dataset_id == private and budget.private_rounds == 2
    assert budget.epsilon_spent <= budget.epsilon_budget == BUDGET.epsilon
    assert budget.epsilon_spent == pytest.approx(spent, abs=2e-6)
    assert budget.epsilon_recomputed == pytest.approx(spent, abs=1e-9)
    assert budget.epsilon_left == pytest.approx(BUDGET.epsilon - budget.epsilon_spent)
    doc = report.to_json()
    assert doc["privacy"][0]["epsilon_spent"] == budget.epsilon_spent
    participant = next(p for p in doc["rounds"][0]["participants"] if int(p["dataset_id"], 16) == private)
    assert participant["privacy"]["steps"] > 0 and participant["privacy"]["noise_multiplier_e6"] > 0
    others = [p for p in doc["rounds"][0]["participants"] if int(p["dataset_id"], 16) != private]
    assert all(p["privacy"] is None for p in others)  # non-DP rounds verify as before
    prov = json.dumps(report.to_prov())
    assert '"sov:epsilonSpent"' in prov and '"sov:epsilonBudget": 2.0' in prov
    html = report.to_html()
    assert 'id="privacy"' in html and f"0x{private:064x}" in html


def test_dp_attestation_is_signed_and_deterministic(deployed: object, tmp_path: Path) -> None:
    runner, federation = _setup(deployed, tmp_path)
    lab = runner.coordinator.client
    job = runner.create_job()
    node = runner.nodes[0]
    first = node.handle(_request(runner, job))
    assert isinstance(first, NodeUpdate)
    claim = first.attestation.attestation.privacy
    assert isinstance(claim, PrivacyClaim)
    assert claim.dp.steps > 0 and claim.dp.max_grad_norm == 1.0
    assert claim.epsilon_spent == pytest.approx(cumulative_epsilon([claim.dp], BUDGET.delta), abs=2e-6)
    # the node reports what it spent with the round's metrics (the coordinator shows them)
    assert first.metrics["epsilon_spent"] == pytest.approx(claim.epsilon_spent, abs=1e-6)
    signer = recover_attestation_signer(
        first.attestation, lab.chain_id, lab.deployment.address("TrainingLedger")
    )
    assert signer == runner.nodes[0].node.account.address
    # the same round asked again: same bytes (seeded sampling and noise), spent once
    again = node.handle(_request(runner, job))
    assert isinstance(again, NodeUpdate) and again.update_bytes == first.update_bytes
    assert (
        len(node.node.budget.history(lab.chain_id, federation.dataset_ids[0], lab.address, AI_TRAINING)) == 1
    )  # type: ignore[attr-defined]


def test_node_refuses_dp_parameters_that_would_exceed_the_budget(deployed: object, tmp_path: Path) -> None:
    runner, federation = _setup(deployed, tmp_path)
    lab = runner.coordinator.client
    job = runner.create_job()
    before = lab.get_job(job.job_id)
    block = lab.latest_block().number
    reply = runner.nodes[0].handle(_request(runner, job, dp_noise_multiplier=0.3))
    assert isinstance(reply, NodeRefusal) and reply.reason == "privacy_budget_exhausted"
    assert "noise multiplier 0.3" in reply.message and "of its budget 2" in reply.message
    assert lab.get_job(job.job_id) == before and lab.latest_block().number == block
    ledger = runner.nodes[0].node.budget
    assert ledger.history(lab.chain_id, federation.dataset_ids[0], lab.address, AI_TRAINING) == []  # type: ignore[attr-defined]


def test_node_refuses_a_round_with_fewer_participants_than_the_grant_requires(
    deployed: object, tmp_path: Path
) -> None:
    runner, federation = _setup(deployed, tmp_path, GrantTerms(min_participants=3))
    job = runner.create_job()
    mine = federation.dataset_ids[0]  # type: ignore[attr-defined]
    for participants in ((mine,), (mine, mine, mine), ()):
        reply = runner.nodes[0].handle(_request(runner, job, participants=participants))
        assert isinstance(reply, NodeRefusal) and reply.reason == "too_few_participants", reply
        assert "requires at least 3" in reply.message
    assert isinstance(runner.nodes[0].handle(_request(runner, job)), NodeUpdate)


def test_audit_fails_an_understated_an_overstated_and_an_over_budget_epsilon(
    deployed: object, tmp_path: Path
) -> None:
    runner, federation = _setup(deployed, tmp_path)
    private = federation.dataset_ids[0]  # type: ignore[attr-defined]
    lab = runner.coordinator.client
    job = runner.create_job()
    runner.run(job)
    index = EventIndex(tmp_path / "index.sqlite", lab)
    index.sync()
    chain = ChainLogs(lab)
    target = resolve_target(str(job.job_id), index, runner.coordinator.store, chain)

    def findings_with(round_index: int, **changes: object) -> list[str]:
        lineage = rebuild_lineage(target, lab, index, runner.coordinator.store, chain=chain)
        facts = lineage.rounds[round_index]
        p = next(p for p in facts.participants if p.dataset_id == private)
        assert p.entry is not None and p.entry.privacy is not None
        if "terms" in changes:
            p.terms = changes.pop("terms")  # type: ignore[assignment]
        if changes == {"privacy": None}:
            p.entry = p.entry.model_copy(update={"privacy": None})
        elif changes:
            privacy = p.entry.privacy.model_copy(update=changes)
            p.entry = p.entry.model_copy(
                update={"privacy": ParticipantPrivacy.model_validate(privacy.model_dump())}
            )
        return [f.message for f in privacy_findings(lineage)[0] if f.status == "fail"]

    assert findings_with(0) == []
    lineage = rebuild_lineage(target, lab, index, runner.coordinator.store, chain=chain)
    attested = next(p for p in lineage.rounds[1].participants if p.dataset_id == private).entry.privacy  # type: ignore[union-attr]
    assert attested is not None
    # a node that understates what it spent
    (under,) = findings_with(1, epsilon_spent_e6=attested.epsilon_spent_e6 // 2)
    assert "alone compose to" in under and "round 2" in under
    # one that overstates it (its first round attested no earlier use)
    (over,) = findings_with(1, epsilon_spent_e6=attested.epsilon_spent_e6 + 500_000)
    assert "no earlier use was attested" in over
    # one that attests less noise than it would need: the recomputed epsilon is then higher
    (noise,) = findings_with(1, noise_multiplier_e6=attested.noise_multiplier_e6 // 3)
    assert "alone compose to" in noise
    # a budget at that block smaller than what was spent
    (exceeded,) = findings_with(1, terms=GrantTerms(epsilon=1.0, delta=1e-5))
    assert "exceeds the grant's budget 1" in exceeded
    # a grant with a budget, an attestation without DP
    (missing,) = findings_with(1, privacy=None)
    assert "carries no DP parameters" in missing
