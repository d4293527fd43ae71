"""The README's "Three organisations, three machines", run exactly as written.

The shell blocks of that section are parsed from README.md and run as one bash script:
separate SOV_HOMEs for two hospitals, the lab and an auditor, accounts from `sov account
create` (dev keys only fund them, through `sov account fund`), one real SuperLink and two
real SuperNodes in hospital mode, a revocation mid-job, and the auditor's `sov audit`
from the job's CAR. Before the README's last block (which stops everything) the test
reads the chain, the node's decisions and the audit as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fl_node.flower.federation import free_port
from tests.conftest import REPO_ROOT

SECTION = "## Three organisations, three machines"


def walkthrough_blocks(readme: Path = REPO_ROOT / "README.md") -> list[str]:
    """The ```sh blocks of the walkthrough section, in order."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end >= 0 else len(text)]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.S | re.M)


def test_the_walkthrough_section_has_the_parties_commands() -> None:
    blocks = walkthrough_blocks()
    script = "\n".join(blocks)
    for command in (
        "sov account create",
        "sov account fund",
        "sov network join",
        "sov dataset register",
        "sov job create",
        "sov job superlink",
        "sov node run",
        "sov job run",
        "sov grant revoke",
        "sov job export",
        "sov audit",
    ):
        assert command in script, command
    assert "kill" in blocks[-1] and "devnet down" in blocks[-1]
    # Dev keys appear nowhere: every party signs with an account it created.
    assert not re.search(r"\bdev[0-9]\b", script)


def _stop_session(process: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            process.poll()
            time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_three_organisations_walkthrough(tmp_path: Path) -> None:
    blocks = walkthrough_blocks()
    walk = tmp_path / "walk"
    probes = walk / "probes"
    # What the test reads before the README's last block stops everything (not README commands).
    probe = f"""
mkdir -p {probes}
SOV_HOME=$LAB sov job status $JOB --json > {probes}/job.json
SOV_HOME=$A sov node status --json > {probes}/node-a.json
SOV_HOME=$B sov node status --json > {probes}/node-b.json
SOV_HOME=$AUDITOR sov audit $JOB --json > {probes}/audit.json || true
SOV_HOME=$LAB sov account list --json > {probes}/lab-accounts.json
"""
    script = "set -euo pipefail\n" + "\n".join(blocks[:-1]) + probe + blocks[-1]
    (tmp_path / "walkthrough.sh").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOV_")}
    env.update(
        WALK=str(walk),
        RPC_PORT=str(free_port()),
        SUPERLINK=f"127.0.0.1:{free_port()}",
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        FLWR_DISABLE_UPDATE_CHECK="1",
    )
    log_path = tmp_path / "walkthrough.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", str(tmp_path / "walkthrough.sh")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=420)
        finally:
            _stop_session(process)
            subprocess.run(
                [str(Path(sys.executable).parent / "sov"), "devnet", "down"],
                env={**env, "SOV_HOME": str(walk / "lab")},
                capture_output=True,
                timeout=60,
            )
    output = log_path.read_text(errors="replace")
    assert code == 0, output[-4000:]
    print(f"\nwalkthrough: {time.monotonic() - started:.0f} s")
    assert "VERIFIED: job" in output and "NOT VERIFIED" not in output, output[-3000:]

    job = json.loads((probes / "job.json").read_text())
    lab_address = json.loads((probes / "lab-accounts.json").read_text())[0]["address"]
    assert job["coordinator"] == lab_address  # the lab's own account, not a dev key
    rounds = job["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]  # each RoundCommitted exactly once
    node_a = json.loads((probes / "node-a.json").read_text())
    node_b = json.loads((probes / "node-b.json").read_text())
    a_id, b_id = node_a["node"]["dataset_id"], node_b["node"]["dataset_id"]
    assert sorted(rounds[0]["participants"]) == sorted([a_id, b_id])
    assert rounds[1]["participants"] == [a_id]  # after B's revocation
    decided_b = [(d["round"], d["decision"], d.get("reason")) for d in node_b["decisions"]]
    assert decided_b == [(1, "trained", None), (2, "refused", "revoked")]
    assert [(d["round"], d["decision"]) for d in node_a["decisions"]] == [(1, "trained"), (2, "trained")]
    # The preparation every node used is the job's, named in each decision.
    assert all("standardised" in d["preprocessing"] for d in node_a["decisions"])
    audit = json.loads((probes / "audit.json").read_text())
    assert audit["verdict"] == "verified"
    # The audit names the preparation: the job's spec, found in the CAR by its on-chain digest.
    assert audit["job"]["preprocessing"]["label"] == "diagnosis"
    assert audit["job"]["spec"]["preprocessing"] == audit["job"]["preprocessing"]
