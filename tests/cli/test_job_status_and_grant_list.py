"""`sov job status` of a large round and `sov grant list` with terms, in-process against a real anvil."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cli_kit import Party

from ledger.chain.types import GrantTerms
from ledger.deploy import save_deployment
from ledger.participants import participants_hash
from ledger.purposes import purpose_id
from ledger.settings import Settings
from tests.conftest import DeployedChain

AI = purpose_id("ai-training")
GENESIS = hashlib.sha256(b"cli genesis").digest()
SPEC = hashlib.sha256(b"cli spec").digest()
MODEL = hashlib.sha256(b"cli model").digest()
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
DAY = 86_400


@pytest.fixture()
def lab(deployed: DeployedChain, tmp_path: Path) -> Party:
    party = Party(tmp_path / "lab", rpc_url=deployed.rpc_url, extra_env={"COLUMNS": "400"})
    save_deployment(Settings(home=party.home), deployed.deployment)
    return party


def _datasets(chain: DeployedChain, label: str, count: int, terms: GrantTerms | None = None) -> list[int]:
    """`count` datasets of dev1, each granted to the lab (dev0), ascending."""
    owner, grantee = chain[1], str(chain[0].address)
    now = owner.latest_block().timestamp
    ids = []
    for i in range(count):
        dataset_id, _ = owner.register_dataset(hashlib.sha256(f"{label} {i}".encode()).digest())
        owner.issue_grant(dataset_id, grantee, AI, now, now + DAY, terms)
        ids.append(dataset_id)
    return sorted(ids)


def test_job_status_shows_a_large_rounds_participants(deployed: DeployedChain, lab: Party) -> None:
    client = deployed[0]
    ids = _datasets(deployed, "large", 3)
    [aborted] = _datasets(deployed, "aborted", 1)
    job_id, _ = client.create_open_job(AI, GENESIS, SPEC)
    # An attempt left open (and then aborted by commit_large_round) contributes nothing.
    client.begin_large_round(job_id, 1, GENESIS)
    client.add_round_participants(job_id, 1, [aborted])
    client.commit_large_round(job_id, 1, GENESIS, MODEL, CID, ids, bytes(32), batch_size=2)
    document = lab.json("job", "status", str(job_id))
    [round_one] = document["rounds"]
    assert round_one["mode"] == "large"
    assert round_one["participant_count"] == 3
    assert round_one["participants"] == [f"{d:#066x}" for d in ids]
    assert round_one["participants_hash"] == "0x" + participants_hash(ids).hex()
    table = lab.run("job", "status", str(job_id))
    assert table.exit_code == 0, table.output
    assert "3 (large)" in table.stdout


def test_job_status_of_a_standard_round_is_unchanged(deployed: DeployedChain, lab: Party) -> None:
    client = deployed[0]
    ids = _datasets(deployed, "standard", 2)
    job_id, _ = client.create_job(AI, ids, GENESIS, SPEC)
    client.commit_round(job_id, 1, GENESIS, MODEL, CID, ids, ids, bytes(32))
    [round_one] = lab.json("job", "status", str(job_id))["rounds"]
    assert (round_one["mode"], round_one["participant_count"]) == ("standard", 2)
    assert round_one["participants"] == [f"{d:#066x}" for d in ids]
    assert "participants_hash" not in round_one


def test_grant_list_shows_terms_or_none(deployed: DeployedChain, lab: Party) -> None:
    terms = GrantTerms(3, 1e-5, 3, 50)
    [with_terms] = _datasets(deployed, "terms", 1, terms)
    [without] = _datasets(deployed, "no terms", 1)
    [limits_only] = _datasets(deployed, "limits", 1, GrantTerms(0, 0, 2, 0))
    rows = {int(r["dataset_id"]): r["terms"] for r in lab.json("grant", "list")}
    assert rows == {
        with_terms: {"epsilon": 3.0, "delta": 1e-05, "min_participants": 3, "max_rounds": 50},
        without: {"epsilon": 0.0, "delta": 0.0, "min_participants": 0, "max_rounds": 0},
        limits_only: {"epsilon": 0.0, "delta": 0.0, "min_participants": 2, "max_rounds": 0},
    }
    table = lab.run("grant", "list")
    assert table.exit_code == 0, table.output
    lines = {line.split("│")[1].strip(): line for line in table.stdout.splitlines() if "0x" in line}
    cells = {key[:18]: [c.strip() for c in line.split("│")][-2] for key, line in lines.items()}
    assert cells == {
        f"{with_terms:#066x}"[:18]: "eps 3, delta 1e-05, min 3/round, max 50 rounds",
        f"{without:#066x}"[:18]: "none",
        f"{limits_only:#066x}"[:18]: "min 2/round",
    }
