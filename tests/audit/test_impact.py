"""Impact: every model version depending on a dataset or a grant, and proof none used it after it ended."""

from __future__ import annotations

from pathlib import Path

import pytest

from fl_node.coordinator import JobState
from fl_node.model import initial_state
from ledger.audit import ImpactQueryError, audit, impact
from ledger.purposes import purpose_id
from tests.audit.conftest import World


def new_job(world: World) -> JobState:
    """A fresh job over the world's datasets, with one honest round by the real coordinator."""
    federation = world.federation
    job = world.runner.coordinator.create_job(
        purpose=purpose_id(world.runner.config.purpose),
        datasets=tuple(federation.dataset_ids),
        spec=federation.spec,
        initial_state=initial_state(federation.spec),  # type: ignore[arg-type]
        seed=0,
    )
    world.runner.coordinator.run_round(job, world.runner.nodes)
    return job


def test_impact_of_a_dataset_and_of_a_revoked_grant(world: World, tmp_path: Path) -> None:
    index = world.index(tmp_path / "index.sqlite")
    lab = world.lab.address
    assert lab is not None
    ds0, ds2 = world.federation.dataset_ids[0], world.federation.dataset_ids[2]

    before = impact(index=index, client=world.lab, store=world.store, dataset_id=ds0)
    assert before.ok and [(v.job_id, v.round, v.direct) for v in before.versions] == [
        (world.job_id, 1, True),
        (world.job_id, 2, True),
    ]
    assert all(v.grant_status == "authorized" and v.chain_status == "authorized" for v in before.versions)
    assert all(v.model_cid is not None for v in before.versions)

    # a second job: round 1 with every hospital, then hospital 2 revokes, then round 2 without it
    job = new_job(world)
    revocation = world.enrollment.owners[2].revoke_grant(ds2, lab, purpose_id("ai-training"))
    outcome = world.runner.coordinator.run_round(job, world.runner.nodes)
    assert ds2 not in outcome.participants

    report = impact(index=index, client=world.lab, store=world.store, grant=(ds2, lab, "ai-training"))

    assert report.ok and report.exit_code == 0
    assert [(v.job_id, v.round, v.direct) for v in report.versions] == [
        (world.job_id, 1, True),
        (world.job_id, 2, True),
        (job.job_id, 1, True),
        (job.job_id, 2, False),
    ]
    later = report.after_end
    assert [(v.job_id, v.round) for v in later] == [(job.job_id, 2)]
    assert later[0].after_end == (f"after the grant's revocation at block {revocation.block_number}",)
    assert f"revoked at block {revocation.block_number}" in report.ends
    assert report.violations == []
    assert "0 direct use(s) WITHOUT" not in report.summary()
    doc = report.to_json()
    assert doc["ok"] is True and len(doc["committed_after_end"]) == 1

    # the round built after the revocation still audits clean: it did not use the dataset
    assert audit(str(job.job_id), client=world.lab, index=index, store=world.store).ok

    # a grant for another grantee: nothing depends on it
    other = impact(index=index, grant=(ds2, "0x" + "11" * 20, "ai-training"))
    assert other.versions == [] and other.note == "no such grant was ever issued"

    with pytest.raises(ImpactQueryError, match="a grant is \\(dataset_id, grantee, purpose\\); got 2"):
        impact(index=index, grant=(ds2, lab))
    with pytest.raises(ImpactQueryError, match="impact needs a dataset id or a grant"):
        impact(index=index)
