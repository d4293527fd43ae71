"""Shared fixtures: real local nodes and the contracts deployed on them.

- `anvil`: a fresh anvil on a free port (function scope), stopped by process group.
- `hardhat_node`: one `hardhat node` per session (it takes ~2 s to start); deploy fresh
  contracts on it per test (`deploy_on`).
- `deployed`: a fresh anvil with the three contracts deployed by dev0, and a
  `LedgerClient` per dev account (`deployed.clients[i]` signs as `dev{i}`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.chain.client import LedgerClient
from ledger.chain.transport import Transport, make_provider
from ledger.deploy import Deployment, deploy_contracts
from ledger.devnet import NodeProcess, start_anvil, start_hardhat_node
from ledger.keys import DEV_ACCOUNT_COUNT, dev_account
from ledger.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout under test: its packages are the ones imported, here and in subprocesses."""

# pytest's `pythonpath = ["."]` puts the checkout first on this process's sys.path; the
# processes tests start (sov, the API service, anvil's deployers, Flower's SuperLink and
# SuperNodes) must import the same tree, not the one an editable install points at.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO_ROOT), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
)


@dataclass
class DeployedChain:
    """A node with the contracts deployed and one client per dev account."""

    node: NodeProcess
    deployment: Deployment
    clients: list[LedgerClient]

    @property
    def rpc_url(self) -> str:
        """The node's JSON-RPC URL."""
        return self.node.rpc_url

    def __getitem__(self, index: int) -> LedgerClient:
        return self.clients[index]


def deploy_on(node: NodeProcess) -> DeployedChain:
    """Deploy the contracts on `node` (as dev0) and connect a client per dev account."""
    transport = Transport(make_provider(node.rpc_url), node.rpc_url)
    deployment = deploy_contracts(transport, dev_account(0))
    first = LedgerClient.from_url(node.rpc_url, deployment, dev_account(0))
    clients = [first] + [first.with_account(dev_account(i)) for i in range(1, DEV_ACCOUNT_COUNT)]
    return DeployedChain(node, deployment, clients)


@pytest.fixture()
def anvil() -> Iterator[NodeProcess]:
    """A fresh anvil on 127.0.0.1 (free port), stopped at the end of the test."""
    node = start_anvil()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def hardhat_node() -> Iterator[NodeProcess]:
    """One `hardhat node` for the session (second node implementation), stopped at the end."""
    node = start_hardhat_node()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture()
def deployed(anvil: NodeProcess) -> DeployedChain:
    """A fresh anvil with the contracts deployed and a `LedgerClient` per dev account."""
    return deploy_on(anvil)


@pytest.fixture()
def sov_settings(tmp_path: Path) -> Settings:
    """Settings whose data directory (`SOV_HOME`) is a fresh temporary folder."""
    return Settings(home=tmp_path / "sov-home", devnet_port=0)
