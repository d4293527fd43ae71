"""`/v1/jobs` over a real federated job (three rounds, hospital 1 revoked before round 3)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from federation_kit import FederatedJob

from ledger.provenance import model_digest
from ledger.settings import Settings
from ledger.store import open_store


def test_list_and_show_job(job_client: TestClient, federated: tuple[Settings, FederatedJob]) -> None:
    settings, job = federated
    listed = job_client.get("/v1/jobs")
    assert listed.status_code == 200
    assert [j["job_id"] for j in listed.json()["items"]] == [str(job.job_id)]
    shown = job_client.get(f"/v1/jobs/{job.job_id}")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["coordinator"] == job.lab
    assert body["purpose"] == "ai-training"
    assert body["last_round"] == job.rounds == 3
    assert body["datasets"] == [str(d) for d in sorted(job.dataset_ids)]
    assert [r["round"] for r in body["rounds"]] == [1, 2, 3]
    store = open_store(settings)
    final = "0x" + model_digest(store.get(job.model_cid)).hex()
    assert body["last_digest"] == final == body["rounds"][-1]["model_digest"]
    # Rounds 1-2 had all three hospitals; round 3 ran without the revoked one.
    assert [len(r["participants"]) for r in body["rounds"]] == [3, 3, 2]
    assert str(job.revoked_dataset_id) not in body["rounds"][2]["participants"]
    # Standard (bitmask) rounds: complete inline, no large-round commitment.
    assert {
        (r["mode"], r["participant_count"] == len(r["participants"]), r["participants_truncated"])
        for r in body["rounds"]
    } == {("standard", True, False)}
    assert [r["participants_hash"] for r in body["rounds"]] == [None, None, None]
    paged = job_client.get(f"/v1/jobs/{job.job_id}/rounds/3/participants").json()
    assert paged["total"] == 2
    assert [p["dataset_id"] for p in paged["items"]] == sorted(body["rounds"][2]["participants"], key=int)
    assert {p["checked_block"] for p in paged["items"]} == {body["rounds"][2]["block_number"]}
    # Hash chain: each round's parent is the previous round's model.
    assert body["rounds"][1]["parent_digest"] == body["rounds"][0]["model_digest"]


def test_rounds_list_and_one_round(job_client: TestClient, federated: tuple[Settings, FederatedJob]) -> None:
    _, job = federated
    rounds = job_client.get(f"/v1/jobs/{job.job_id}/rounds").json()
    one = job_client.get(f"/v1/jobs/0x{job.job_id:x}/rounds/2")
    assert one.status_code == 200
    assert one.json() == rounds[1]


def test_unknown_job_and_round(job_client: TestClient, federated: tuple[Settings, FederatedJob]) -> None:
    _, job = federated
    missing = job_client.get("/v1/jobs/99")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "unknown_job",
        "message": "job 99 does not exist",
        "details": {"job_id": "99"},
    }
    late = job_client.get(f"/v1/jobs/{job.job_id}/rounds/4")
    assert late.status_code == 404
    assert (
        late.json()["error"]["message"]
        == f"job {job.job_id} has committed 3 round(s); round 4 does not exist"
    )
    zero = job_client.get(f"/v1/jobs/{job.job_id}/rounds/0")
    assert zero.status_code == 422
    assert "greater than or equal to 1" in zero.json()["error"]["message"]
    bad = job_client.get("/v1/jobs/abc")
    assert bad.status_code == 422
    assert "'abc' is not a valid job id" in bad.json()["error"]["message"]
