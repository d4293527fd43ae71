"""Fixtures for the event-index tests: a fresh anvil with the shipped contracts deployed."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from index_world import Chain, Deployment, free_port, start_anvil
from web3 import HTTPProvider, Web3


@pytest.fixture()
def chain() -> Iterator[Chain]:
    """A fresh anvil with the three contracts deployed by dev account 0."""
    port = free_port()
    proc = start_anvil(port)
    try:
        url = f"http://127.0.0.1:{port}"
        w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
        deadline = time.monotonic() + 15
        while not w3.is_connected():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"anvil did not start on port {port}")
            time.sleep(0.05)
        c = Chain(w3=w3, rpc_url=url, accounts=list(w3.eth.accounts))
        deployer = c.accounts[0]
        c.mine(3)  # the deployment does not start at block 0, as on a real chain
        c.registry, first_block = c.deploy(deployer, "DatasetRegistry")
        c.grants, _ = c.deploy(deployer, "UsageGrants", c.registry.address)
        c.ledger, _ = c.deploy(deployer, "TrainingLedger", c.registry.address, c.grants.address)
        c.deployment = Deployment(
            chain_id=w3.eth.chain_id,
            addresses={
                "DatasetRegistry": c.registry.address,
                "UsageGrants": c.grants.address,
                "TrainingLedger": c.ledger.address,
            },
            deployed_block=first_block,
        )
        yield c
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
