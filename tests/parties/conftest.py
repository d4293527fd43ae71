"""Shared pieces of the parties' tests: a home per party on a real anvil, and `sov` as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fl_node.example_data import write_example_tables
from ledger.deploy import save_deployment
from ledger.settings import Settings
from tests.conftest import DeployedChain

SOV = str(Path(sys.executable).parent / "sov")


@dataclass
class Parties:
    """Homes of two hospitals and a lab on one chain, and the example tables."""

    chain: DeployedChain
    root: Path
    data: Path

    def home(self, name: str) -> Path:
        """The party's SOV_HOME, with the chain's deployment manifest."""
        home = self.root / name
        save_deployment(Settings(home=home), self.chain.deployment)
        return home

    def env(self, name: str) -> dict[str, str]:
        """The environment of a `sov` command run by party `name`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOV_")}
        env.update(
            SOV_HOME=str(self.home(name)),
            SOV_RPC_URL=self.chain.rpc_url,
            PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
            FLWR_DISABLE_UPDATE_CHECK="1",
        )
        return env

    def sov(
        self, name: str, *args: str, timeout: float = 120.0, password: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Runs `sov ARGS` as party `name` (keystore unlocked with `password`); output captured."""
        env = self.env(name)
        if password is not None:
            env["SOV_KEY_PASSWORD"] = password
        return subprocess.run(
            [SOV, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=self.root
        )


def make_parties(chain: DeployedChain, root: Path) -> Parties:
    """Two hospitals' tables and a reference table under `root`, and homes on `chain`."""
    data = root / "data"
    write_example_tables(data, 2)
    return Parties(chain, root, data)


@pytest.fixture()
def parties(deployed: DeployedChain, tmp_path: Path) -> Parties:
    """Two hospitals' tables and a reference table, and homes on a fresh anvil."""
    return make_parties(deployed, tmp_path)
