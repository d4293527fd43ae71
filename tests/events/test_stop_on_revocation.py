"""`sov job run --stop-on-revocation` against a real anvil and a real Flower SuperLink.

The lab's run waits for its hospitals' nodes (none connect here, so no round can start); a
hospital revokes its grant; the run must stop within seconds with one clear line naming the
revoked grant and its block, stop the SuperLink it started, and commit nothing. Run again, it
refuses to start at all, since a grant the job depends on is already revoked.
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
from fl_node.flower.site_process import answers
from ledger.events import EventFeed
from ledger.purposes import purpose_id
from ledger.store import cid_of_file, content_root
from tests.conftest import DeployedChain
from tests.parties.conftest import SOV, make_parties

LAB, HOSPITAL_A, HOSPITAL_B = 1, 2, 3


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_revocation_stops_the_run_with_a_clear_message_and_a_rerun_refuses(
    deployed: DeployedChain, tmp_path: Path
) -> None:
    parties = make_parties(deployed, tmp_path)
    chain = parties.chain
    lab = chain[LAB]
    assert lab.address is not None
    now = lab.latest_block().timestamp
    ids = []
    for owner, name in ((HOSPITAL_A, "hospital-a"), (HOSPITAL_B, "hospital-b")):
        dataset_id, _ = chain[owner].register_dataset(content_root(cid_of_file(parties.data / f"{name}.csv")))
        chain[owner].issue_grant(dataset_id, lab.address, "ai-training", now - 60, now + 7200)
        ids.append(dataset_id)
    spec = parties.root / "spec.toml"
    drafted = parties.sov(
        "lab", "job", "spec", str(parties.data / "reference.csv"), "--label", "diagnosis", "-o", str(spec)
    )
    assert drafted.returncode == 0, drafted.stderr
    created = parties.sov(
        "lab", "job", "create", "--datasets", ",".join(f"{d:#x}" for d in ids), "--spec", str(spec),
        "--account", f"dev{LAB}",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    port = free_port()
    args = ["job", "run", "1", "--superlink", f"127.0.0.1:{port}", "--rounds", "2", "--start-superlink"]
    args += ["--stop-on-revocation"]
    log = parties.root / "run.log"
    with log.open("w") as err:
        run = subprocess.Popen(
            [SOV, *args], env=parties.env("lab"), stdout=subprocess.DEVNULL, stderr=err, cwd=parties.root,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "running to round 2" not in log.read_text():
            assert run.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert answers("127.0.0.1", port)  # the run's SuperLink is up, waiting for nodes
        revoke = chain[HOSPITAL_A].revoke_grant(ids[0], lab.address, purpose_id("ai-training"))
        revoked_at = time.monotonic()
        code = run.wait(timeout=60)
        took = time.monotonic() - revoked_at
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
    lines = [line for line in log.read_text().splitlines() if line.startswith("error:")]
    (revoked_event,) = EventFeed(lab, types=("grant.revoked",)).start_at(revoke.block_number).poll()
    assert code == 1, log.read_text()
    assert lines == [
        f"error: job 1 stopped (--stop-on-revocation) at round 0 of 2: the grant on dataset {ids[0]:#066x} "
        f"to {lab.address} for 'ai-training' was revoked in block {revoke.block_number} "
        f"(tx {revoke.tx_hash}, event {revoked_event.id}); "
        "the run's processes were stopped and it commits no further round"
    ], log.read_text()
    assert took < 15, f"the run took {took:.1f} s to stop after the revocation"
    assert "Traceback" not in log.read_text()
    assert lab.get_job(1).last_round == 0
    time.sleep(1.0)
    assert not answers("127.0.0.1", port), "the SuperLink the run started is still listening"

    again = parties.sov("lab", *args)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"error: job 1 not started (--stop-on-revocation): on dataset {ids[0]:#066x} the grant to "
        f"{lab.address} was revoked before this run; 0 of 2 round(s) are committed"
    )
    assert not answers("127.0.0.1", port)
