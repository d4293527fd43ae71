"""`sov devnet up --host 0.0.0.0 --block-time 1`: a devnet other machines can share, whose block
time follows the clock, so a grant that expired reads expired without anyone sending a transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_kit import Party, one_error_line


@pytest.fixture()
def party(tmp_path: Path) -> Iterator[Party]:
    party = Party(tmp_path / "home", extra_env={"SOV_DEVNET_PORT": "0"})
    try:
        yield party
    finally:
        party.run("devnet", "down")


def test_shared_devnet_with_block_time_expires_grants_on_the_clock(party: Party, tmp_path: Path) -> None:
    up = party.json("devnet", "up", "--host", "0.0.0.0", "--block-time", "1")
    assert up["running"] and up["host"] == "0.0.0.0" and up["block_time"] == 1.0
    assert up["rpc_url"].startswith("http://127.0.0.1:") and set(up["contracts"]) == {
        "DatasetRegistry",
        "UsageGrants",
        "TrainingLedger",
    }
    status = party.json("devnet", "status")
    assert (status["host"], status["block_time"]) == ("0.0.0.0", 1.0)
    shown = party.run("devnet", "status")
    assert "bound to 0.0.0.0" in shown.stdout and "blocks every 1 s" in shown.stdout

    data = tmp_path / "data.csv"
    data.write_bytes(b"x,label\n1,0\n")
    dataset = party.json("dataset", "register", str(data), "--account", "dev1")["dataset_id"]
    lab = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    party.json("grant", "issue", dataset, lab, "--expires", "3s", "--account", "dev1")
    assert party.run("grant", "check", dataset, lab).exit_code == 0
    time.sleep(5)
    expired = party.run("grant", "check", dataset, lab, "--json")
    assert expired.exit_code == 1
    assert json.loads(expired.stdout)["reason"] == "expired"

    refused = party.run("devnet", "up", "--block-time", "2")
    assert "already runs bound to 0.0.0.0 with a block every 1 s" in one_error_line(refused)
    assert party.json("devnet", "status")["block_time"] == 1.0
