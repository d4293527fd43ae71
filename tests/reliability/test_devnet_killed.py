"""The devnet dies with SIGKILL in the middle of a job: the job resumes, nothing lost or doubled."""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import pytest
from reliability_kit import committed, federate

from fl_node.errors import FLError
from ledger.chain.transport import Transport, make_provider
from ledger.deploy import deploy_contracts
from ledger.devnet import Devnet, free_port
from ledger.errors import LedgerError
from ledger.keys import dev_account
from ledger.provenance import model_digest
from ledger.settings import Settings


@pytest.mark.slow
def test_job_resumes_from_last_committed_round_after_sigkill(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", devnet_port=free_port())
    devnet = Devnet(settings)
    status = devnet.up()
    try:
        assert status.rpc_url is not None and status.pid is not None
        transport = Transport(make_provider(status.rpc_url), status.rpc_url)
        deployment = deploy_contracts(transport, dev_account(0), settings=settings)
        fed = federate(status.rpc_url, deployment, tmp_path)
        job = fed.runner.create_job()
        initial_digest = job.last_digest
        pid = status.pid

        def crash(round_number: int) -> None:
            if round_number == 3:
                time.sleep(2.5)  # let anvil's state dump (every second) include round 2
                os.kill(pid, signal.SIGKILL)

        with pytest.raises((FLError, LedgerError)):
            fed.runner.run(job, on_dispatch=crash)
        assert not Devnet(settings).status().running

        restarted = devnet.up()
        assert restarted.pid != pid and restarted.rpc_url == status.rpc_url
        lab = fed.enrollment.lab
        assert lab.get_job(job.job_id).last_round == 2  # the chain kept what was committed

        resumed = fed.runner.resume(job.job_id)
        assert resumed.last_round == 2
        run = fed.runner.run(resumed)
        assert [o.round_number for o in run.rounds] == [3, 4]

        events = committed(lab, job.job_id)
        assert [e["round"] for e in events] == [1, 2, 3, 4]  # each round exactly once
        assert events[0]["parentDigest"] == initial_digest
        for previous, current in itertools.pairwise(events):
            assert current["parentDigest"] == previous["modelDigest"]  # the hash chain is unbroken
        assert lab.get_job(job.job_id).last_digest == events[-1]["modelDigest"]
        assert model_digest(run.final_model_bytes) == events[-1]["modelDigest"]
    finally:
        devnet.down()
