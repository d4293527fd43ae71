"""`/v1/jobs` for large rounds (an open job's rounds, committed in batches), on a real devnet.

A large round's `RoundCommitted` lists no participant; the API shows the datasets of the
round's `RoundParticipantsAdded` batches (from the event index), with the count and hash
chain of its `LargeRoundCommitted`, and keeps the round bounded: at most 256 ids inline,
the rest paged from `/rounds/{round}/participants`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from ledger.chain.client import LedgerClient
from ledger.participants import participants_hash
from ledger.purposes import purpose_id

AI = purpose_id("ai-training")
SPEC = hashlib.sha256(b"api large spec").digest()
MODEL = hashlib.sha256(b"api large model").digest()
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
DAY = 86_400


def _open_job_round(
    chain: Callable[[int], LedgerClient], label: str, count: int, *, batch_size: int = 2
) -> tuple[int, list[int], int]:
    """An open job of the lab (dev2) whose round 1 is a large round of `count` fresh datasets of
    dev1; returns (job id, ascending dataset ids, the block of the finalize)."""
    owner, lab = chain(1), chain(2)
    now = lab.latest_block().timestamp
    ids = []
    for i in range(count):
        dataset_id, _ = owner.register_dataset(
            hashlib.sha256(f"{label} {time.time_ns()} {i}".encode()).digest()
        )
        owner.issue_grant(dataset_id, str(lab.address), AI, now, now + DAY)
        ids.append(dataset_id)
    genesis = hashlib.sha256(label.encode()).digest()
    job_id, _ = lab.create_open_job(AI, genesis, SPEC)
    receipt = lab.commit_large_round(job_id, 1, genesis, MODEL, CID, ids, bytes(32), batch_size=batch_size)
    return job_id, sorted(ids), receipt.block_number


def test_a_large_round_shows_its_batches_participants(
    client: TestClient, chain: Callable[[int], LedgerClient]
) -> None:
    job_id, ids, block = _open_job_round(chain, "three", 3)
    shown = client.get(f"/v1/jobs/{job_id}")
    assert shown.status_code == 200, shown.text
    [round_one] = shown.json()["rounds"]
    assert round_one["mode"] == "large"
    assert round_one["participants"] == [str(d) for d in ids]
    assert round_one["participant_count"] == 3 and round_one["participants_truncated"] is False
    assert round_one["participants_hash"] == "0x" + participants_hash(ids).hex()
    assert round_one["block_number"] == block
    assert client.get(f"/v1/jobs/{job_id}/rounds/1").json() == round_one
    assert client.get(f"/v1/jobs/{job_id}/rounds").json() == [round_one]

    page = client.get(f"/v1/jobs/{job_id}/rounds/1/participants", params={"limit": 2})
    assert page.status_code == 200, page.text
    body = page.json()
    assert (body["total"], body["offset"], body["limit"]) == (3, 0, 2)
    assert [p["dataset_id"] for p in body["items"]] == [str(d) for d in ids[:2]]
    assert body["items"][0]["dataset_id_hex"] == f"0x{ids[0]:064x}"
    # Each was checked at its batch (two, then one), before the finalize.
    checked = [p["checked_block"] for p in body["items"]]
    assert checked[0] == checked[1] < block
    rest = client.get(f"/v1/jobs/{job_id}/rounds/1/participants", params={"offset": 2}).json()
    assert [p["dataset_id"] for p in rest["items"]] == [str(ids[2])]
    assert checked[0] < rest["items"][0]["checked_block"] < block


def test_a_round_past_the_inline_limit_is_truncated_and_paged(
    client: TestClient, chain: Callable[[int], LedgerClient]
) -> None:
    job_id, ids, _ = _open_job_round(chain, "many", 257, batch_size=500)
    round_one = client.get(f"/v1/jobs/{job_id}/rounds/1").json()
    assert round_one["participant_count"] == 257
    assert round_one["participants_truncated"] is True
    assert round_one["participants"] == [str(d) for d in ids[:256]]
    pages = [
        client.get(f"/v1/jobs/{job_id}/rounds/1/participants", params={"limit": 100, "offset": o}).json()
        for o in (0, 100, 200)
    ]
    assert [p["total"] for p in pages] == [257, 257, 257]
    assert [p["dataset_id"] for page in pages for p in page["items"]] == [str(d) for d in ids]


def test_participants_of_a_round_that_does_not_exist_are_404(
    client: TestClient, chain: Callable[[int], LedgerClient]
) -> None:
    job_id, _, _ = _open_job_round(chain, "missing", 1)
    late = client.get(f"/v1/jobs/{job_id}/rounds/2/participants")
    assert late.status_code == 404
    assert late.json()["error"] == {
        "code": "unknown_round",
        "message": f"job {job_id} has committed 1 round(s); round 2 does not exist",
        "details": {"job_id": str(job_id), "round": 2},
    }
    unknown = client.get(f"/v1/jobs/{job_id + 1000}/rounds/1/participants")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_job"
    bad = client.get(f"/v1/jobs/{job_id}/rounds/1/participants", params={"limit": 0})
    assert bad.status_code == 422
    assert "greater than or equal to 1" in bad.json()["error"]["message"]
