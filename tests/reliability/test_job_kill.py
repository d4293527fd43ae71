"""SIGKILL the lab's `sov job run` mid-job, run it again: every round is committed exactly once.

Real processes throughout: an anvil, `sov job superlink`, two hospitals' `sov node run`
(SuperNodes in hospital mode), and `sov job run`. The lab's process is killed with SIGKILL
right after round 1 is on-chain; its ServerApp (run by the SuperLink) must stop with it,
so no round is committed while no lab process runs. The second `sov job run` resumes from
the chain's last committed round and finishes the job; the RoundCommitted logs then hold
rounds 1, 2 and 3 once each.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fl_node.flower.federation import free_port
from ledger.store import cid_of_file, content_root
from tests.conftest import DeployedChain
from tests.parties.conftest import SOV, Parties, make_parties

LAB, HOSPITAL_A, HOSPITAL_B = 1, 2, 3  # dev accounts on the devnet
ROUNDS = 3


def _spawn(parties: Parties, name: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [SOV, *args],
            env=parties.env(name),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=parties.root,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_of_job_run_then_rerun_commits_every_round_once(
    deployed: DeployedChain, tmp_path: Path
) -> None:
    parties = make_parties(deployed, tmp_path)
    chain = parties.chain
    lab = chain[LAB]
    now = lab.latest_block().timestamp
    tables = {HOSPITAL_A: parties.data / "hospital-a.csv", HOSPITAL_B: parties.data / "hospital-b.csv"}
    ids = []
    for owner, table in tables.items():
        dataset_id, _ = chain[owner].register_dataset(content_root(cid_of_file(table)))
        chain[owner].issue_grant(dataset_id, lab.address, "ai-training", now - 60, now + 7200)
        ids.append(dataset_id)
    spec = parties.root / "spec.toml"
    drafted = parties.sov(
        "lab", "job", "spec", str(parties.data / "reference.csv"), "--label", "diagnosis", "--hidden", "16",
        "-o", str(spec),
    )  # fmt: skip
    assert drafted.returncode == 0, drafted.stderr
    created = parties.sov(
        "lab", "job", "create", "--datasets", ",".join(f"{d:#x}" for d in ids), "--spec", str(spec),
        "--account", f"dev{LAB}", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    job_id = 1
    superlink = f"127.0.0.1:{free_port()}"
    logs = parties.root / "logs"
    logs.mkdir()
    servers = [_spawn(parties, "lab", ["job", "superlink", "--address", superlink], logs / "superlink.log")]
    for owner, name in ((HOSPITAL_A, "hospital-a"), (HOSPITAL_B, "hospital-b")):
        node_args = ["node", "run", "--data", str(tables[owner]), "--label", "diagnosis"]
        node_args += ["--account", f"dev{owner}", "--superlink", superlink]
        servers.append(_spawn(parties, name, node_args, logs / f"{name}.log"))
    run_args = ["job", "run", str(job_id), "--superlink", superlink, "--rounds", str(ROUNDS)]
    try:
        first = _spawn(parties, "lab", run_args, logs / "run-1.log")
        _wait(lambda: lab.get_job(job_id).last_round >= 1 or first.poll() is not None, 240, "round 1")
        assert first.poll() is None, (logs / "run-1.log").read_text()
        os.kill(first.pid, signal.SIGKILL)  # the lab's process only, as a crash would
        first.wait(timeout=10)
        # With the lab's process gone its ServerApp stops: no round is committed meanwhile
        # (a round takes ~15 s here; one already aggregating may still land in the first 2 s).
        time.sleep(2.0)
        at_kill = lab.get_job(job_id).last_round
        time.sleep(25.0)
        assert lab.get_job(job_id).last_round == at_kill, "a round was committed after the lab was killed"
        assert at_kill < ROUNDS

        second = _spawn(parties, "lab", run_args, logs / "run-2.log")
        code = second.wait(timeout=400)
        output = (logs / "run-2.log").read_text()
        assert code == 0, output[-3000:]
        assert f"at round {at_kill}; running to round {ROUNDS}" in output
    finally:
        for process in servers:
            _stop(process)
    committed = [
        e.args["round"]
        for e in lab.get_logs(chain.deployment.deployed_block)
        if e.name == "RoundCommitted" and e.args["jobId"] == job_id
    ]
    assert committed == [1, 2, 3]  # every round once, in order, none twice
    assert lab.get_job(job_id).last_round == ROUNDS
