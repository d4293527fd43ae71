"""Fixtures of the chain-client tests: the same tests run on anvil and on hardhat node."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ledger.devnet import NodeProcess
from tests.conftest import DeployedChain, deploy_on


@pytest.fixture(params=["anvil", "hardhat"])
def any_chain(request: pytest.FixtureRequest) -> Iterator[DeployedChain]:
    """Freshly deployed contracts on anvil, then on hardhat node (two node implementations)."""
    if request.param == "anvil":
        node: NodeProcess = request.getfixturevalue("anvil")
    else:
        node = request.getfixturevalue("hardhat_node")
    yield deploy_on(node)


def rpc(chain: DeployedChain, method: str, params: list[Any] | None = None) -> Any:
    """A raw JSON-RPC call on the chain's node (evm_* helpers)."""
    return chain.clients[0].transport.request(method, params or [])


def advance_time(chain: DeployedChain, seconds: int) -> None:
    """Move the node's clock forward and mine a block at the new time."""
    rpc(chain, "evm_increaseTime", [seconds])
    rpc(chain, "evm_mine", [])


@pytest.fixture()
def new_root() -> Callable[[], bytes]:
    """A fresh 32-byte content root per call (distinct datasets within a test)."""
    counter = iter(range(1_000_000))

    def make() -> bytes:
        return hashlib.sha256(f"dataset-{next(counter)}".encode()).digest()

    return make
