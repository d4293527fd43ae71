"""`/v1/audit` over a real federated job: report formats, lineage graph, impact, and failures."""

from __future__ import annotations

from fastapi.testclient import TestClient
from federation_kit import FederatedJob

from ledger.settings import Settings
from ledger.store import cid_of


def test_audit_report_json_prov_html(
    job_client: TestClient, federated: tuple[Settings, FederatedJob]
) -> None:
    _, job = federated
    report = job_client.get(f"/v1/audit/models/{job.model_cid}")
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["verified"] is True, body["summary"]
    assert [r["round"] for r in body["rounds"]] == [1, 2, 3]
    assert body["rounds"][-1]["model_cid"] == job.model_cid
    prov = job_client.get(f"/v1/audit/models/{job.model_cid}", params={"format": "prov"})
    assert prov.status_code == 200
    assert "entity" in prov.json() and "wasGeneratedBy" in prov.json()
    html = job_client.get(f"/v1/audit/models/{job.model_cid}", params={"format": "html"})
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert "<svg" in html.text


def test_lineage_graph_marks_rounds_and_revoked_grant(
    job_client: TestClient, federated: tuple[Settings, FederatedJob]
) -> None:
    _, job = federated
    graph = job_client.get(f"/v1/audit/models/{job.model_cid}/lineage").json()
    assert graph["verified"] is True
    rounds = sorted(n["round"] for n in graph["nodes"] if n["kind"] == "round")
    assert rounds == [1, 2, 3]
    datasets = {int(n["id"].split(":")[1], 16): n for n in graph["nodes"] if n["kind"] == "dataset"}
    assert set(datasets) == set(job.dataset_ids)
    assert [ds for ds, n in datasets.items() if n["revoked"]] == [job.revoked_dataset_id]
    assert all(n["status"] == "verified" for n in graph["nodes"])
    revoked_node = f"dataset:0x{job.revoked_dataset_id:064x}"
    used_by = sorted(e["target"] for e in graph["edges"] if e["source"] == revoked_node)
    assert used_by == [f"round:{job.job_id}:1", f"round:{job.job_id}:2"]


def test_audit_of_an_earlier_version(
    job_client: TestClient, federated: tuple[Settings, FederatedJob]
) -> None:
    _, job = federated
    graph = job_client.get(f"/v1/audit/models/{job.model_cids[1]}/lineage").json()
    assert sorted(n["round"] for n in graph["nodes"] if n["kind"] == "round") == [1]


def test_audit_of_unknown_or_malformed_cid(job_client: TestClient) -> None:
    stranger = cid_of(b"not a model anyone committed")
    unknown = job_client.get(f"/v1/audit/models/{stranger}")
    assert unknown.status_code == 404, unknown.text
    assert stranger in unknown.json()["error"]["message"]
    bad = job_client.get("/v1/audit/models/bafkNOTaCID")
    assert bad.status_code == 422
    assert "is not a valid sha2-256 CIDv1" in bad.json()["error"]["message"]
    fmt = job_client.get(f"/v1/audit/models/{stranger}", params={"format": "pdf"})
    assert fmt.status_code == 422
    assert "format" in fmt.json()["error"]["message"]


def test_impact_of_dataset_and_grant(
    job_client: TestClient, federated: tuple[Settings, FederatedJob]
) -> None:
    _, job = federated
    by_dataset = job_client.get("/v1/audit/impact", params={"dataset_id": str(job.revoked_dataset_id)})
    assert by_dataset.status_code == 200, by_dataset.text
    versions = by_dataset.json()["versions"]
    assert sorted({v["round"] for v in versions}) == [1, 2, 3]
    by_grant = job_client.get(
        "/v1/audit/impact",
        params={"dataset_id": str(job.revoked_dataset_id), "grantee": job.lab, "purpose": "ai-training"},
    )
    assert by_grant.status_code == 200, by_grant.text
    assert any("revoked at block" in end for end in by_grant.json()["ended"])


def test_impact_input_errors(job_client: TestClient, federated: tuple[Settings, FederatedJob]) -> None:
    _, job = federated
    missing = job_client.get("/v1/audit/impact")
    assert missing.status_code == 422
    assert missing.json()["error"]["message"] == "dataset_id is required"
    half = job_client.get("/v1/audit/impact", params={"dataset_id": "1", "grantee": job.lab})
    assert half.status_code == 422
    assert "give both grantee and purpose, or neither" in half.json()["error"]["message"]
    unknown = job_client.get("/v1/audit/impact", params={"dataset_id": "12345"})
    assert unknown.status_code == 404
    assert "is not registered" in unknown.json()["error"]["message"]
