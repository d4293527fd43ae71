"""A CLI that respects people: one line per user error (and a JSON error object with --json), no
wrapping inside ids and URLs, confirmation before irreversible acts, missing files named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_kit import Party, one_error_line

from ledger.deploy import save_deployment
from ledger.devnet import free_port
from ledger.settings import Settings
from tests.conftest import REPO_ROOT, DeployedChain

SOV = [sys.executable, "-m", "api.cli.main"]


@pytest.fixture()
def owner(deployed: DeployedChain, tmp_path: Path) -> Party:
    party = Party(tmp_path / "owner", rpc_url=deployed.rpc_url)
    save_deployment(Settings(home=party.home), deployed.deployment)
    return party


def _register(party: Party, tmp_path: Path, content: bytes) -> str:
    data = tmp_path / f"data-{len(content)}.csv"
    data.write_bytes(content)
    return str(party.json("dataset", "register", str(data), "--account", "dev1")["dataset_id"])


def test_unknown_dataset_is_one_line(owner: Party) -> None:
    line = one_error_line(owner.run("dataset", "show", "12345"))
    assert line == f"error: dataset {12345:#066x} is not registered on chain 31337"


def test_json_errors_are_an_object_on_stdout_and_a_line_on_stderr(owner: Party) -> None:
    result = owner.run("dataset", "show", "12345", "--json")
    assert one_error_line(result).startswith("error: dataset 0x")
    document = json.loads(result.stdout)
    assert document == {
        "error": {"code": "not_found", "message": f"dataset {12345:#066x} is not registered on chain 31337"}
    }
    garbage = owner.run("grant", "check", "0xZZ", "0x" + "11" * 20, "--json")
    assert json.loads(garbage.stdout)["error"]["code"] == "invalid_argument"
    usage = owner.run("grant", "check", "--json")
    assert usage.exit_code == 2
    assert json.loads(usage.stdout)["error"] == {
        "code": "usage",
        "message": "Missing argument 'DATASET'. (see 'sov grant check --help')",
    }


def test_missing_files_are_reported_as_missing(owner: Party, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "hospital.csv"
    line = one_error_line(owner.run("dataset", "register", str(missing)))
    assert line == f"error: file not found: {missing}"
    assert one_error_line(owner.run("dataset", "register", str(tmp_path))) == (
        f"error: {tmp_path} is a directory, not a file"
    )
    assert one_error_line(owner.run("grant", "redeem", str(missing))) == f"error: file not found: {missing}"
    joined = owner.run("network", "join", owner.rpc_url or "", "--manifest", str(missing))
    assert one_error_line(joined) == f"error: file not found: {missing}"


def test_retire_asks_first_and_no_is_no(owner: Party, deployed: DeployedChain, tmp_path: Path) -> None:
    dataset = _register(owner, tmp_path, b"a,label\n1,0\n")
    for answer in ("n\n", "", "maybe\n\n"):
        refused = owner.run("dataset", "retire", dataset, "--account", "dev1", input=answer)
        assert refused.exit_code == 1, refused.output
        assert "not confirmed, nothing was changed" in refused.stderr
        assert "cannot be undone" in refused.stderr
        assert not deployed[1].dataset_state(int(dataset)).retired
    confirmed = owner.run("dataset", "retire", dataset, "--account", "dev1", input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert deployed[1].dataset_state(int(dataset)).retired


def test_retire_and_transfer_with_yes(owner: Party, deployed: DeployedChain, tmp_path: Path) -> None:
    dataset = _register(owner, tmp_path, b"b,label\n1,0\n")
    new_owner = deployed[2].address
    refused = owner.run("dataset", "transfer", dataset, new_owner, "--account", "dev1", "--json", input="n\n")
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["error"]["code"] == "not_confirmed"
    assert deployed[1].dataset_state(int(dataset)).owner == deployed[1].address
    moved = owner.json("dataset", "transfer", dataset, new_owner, "--account", "dev1", "--yes")
    assert moved["owner"] == new_owner
    assert deployed[1].dataset_state(int(dataset)).owner == new_owner
    assert owner.json("dataset", "retire", dataset, "--account", "dev2", "--yes")["retired"] is True


def test_retire_of_an_unknown_dataset_fails_before_asking(owner: Party) -> None:
    result = owner.run("dataset", "retire", "777", "--account", "dev1", input="y\n")
    assert "is not registered" in one_error_line(result)
    assert "Retire dataset" not in result.output


def _run_sov(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SOV, *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def test_no_wrap_inside_urls_and_ids_when_not_a_terminal(owner: Party, deployed: DeployedChain) -> None:
    # A real process with stdout and stderr as pipes, a narrow COLUMNS: nothing is hard-wrapped.
    url = f"http://127.0.0.1:{free_port()}/" + "a-long-path-segment/" * 8
    env = {"SOV_HOME": str(owner.home), "SOV_RPC_URL": url, "COLUMNS": "40"}
    unreachable = _run_sov(["dataset", "list"], env)
    assert unreachable.returncode == 1
    lines = unreachable.stderr.splitlines()
    assert len(lines) == 1 and url in lines[0] and "Traceback" not in unreachable.stderr

    ids = [int(_register(owner, owner.home, b"x" * n)) for n in (10, 11)]
    env["SOV_RPC_URL"] = deployed.rpc_url
    listed = _run_sov(["grant", "list"], env)
    assert listed.returncode == 0, listed.stderr
    shown = _run_sov(["dataset", "show", str(ids[0])], env)
    assert shown.returncode == 0, shown.stderr
    assert f"dataset {ids[0]:#066x}" in shown.stdout.splitlines()[0]
    assert deployed[1].address in shown.stdout  # the owner's address on one line, unbroken
