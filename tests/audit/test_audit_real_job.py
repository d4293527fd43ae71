"""An untouched real job verifies, by job id, model CID, model file and digest."""

from __future__ import annotations

import json
from pathlib import Path

from ledger.audit import CHECK_NAMES, audit
from tests.audit.conftest import World


def test_untouched_job_verifies_by_every_kind_of_target(world: World, tmp_path: Path) -> None:
    index = world.index(tmp_path / "index.sqlite")
    by_job = audit(str(world.job_id), client=world.lab, index=index, store=world.store)
    assert by_job.ok, [c.message for c in by_job.failures]
    assert by_job.exit_code == 0
    assert by_job.lineage.target.round == 2
    names = {c.name for c in by_job.checks}
    # every check but the one of rounds committed in batches (open jobs; test_large_round_audit.py)
    assert names == set(CHECK_NAMES) - {"large-round"}
    # 4 hospitals x 2 rounds: one attestation and one grant check each, all read on chain too
    assert sum(1 for c in by_job.checks if c.name == "grant") == 8
    assert by_job.lineage.chain_history
    assert all(p.chain_status is not None for r in by_job.lineage.rounds for p in r.participants)

    last = by_job.lineage.rounds[-1]
    assert last.model_cid is not None
    by_cid = audit(last.model_cid, client=world.lab, index=index, store=world.store)
    assert by_cid.ok and by_cid.lineage.target.kind == "model-cid" and by_cid.lineage.target.round == 2

    model_file = tmp_path / "model.safetensors"
    model_file.write_bytes(world.run.final_model_bytes)
    by_file = audit(str(model_file), client=world.lab, index=index, store=world.store)
    assert by_file.ok and by_file.lineage.target.kind == "model-file" and by_file.lineage.target.round == 2

    first = by_job.lineage.rounds[0]
    by_round1 = audit(first.model_cid or "", client=world.lab, index=index, store=world.store)
    assert by_round1.ok and by_round1.lineage.target.round == 1 and len(by_round1.lineage.rounds) == 1

    doc = by_job.to_json()
    json.dumps(doc)
    assert doc["verified"] is True and doc["job"]["job_id"] == world.job_id
    # the job's spec document, found in the store by its on-chain digest
    assert doc["job"]["spec"] == json.loads(world.federation.spec.canonical_json())
    assert doc["job"]["preprocessing"] is None  # breast_cancer's features need no preparation
    assert [r["model_digest"] for r in doc["rounds"]] == [
        "0x" + r.committed.model_digest.hex() for r in by_job.lineage.rounds
    ]
