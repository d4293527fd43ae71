"""Fixtures for the HTTP service: a real anvil devnet with the contracts deployed, the app in-process.

Every test gets its own `SOV_HOME` (event index, blockstore) but the devnet and its deployment are
shared per module; tests register fresh random datasets so they never depend on each other's state.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from federation_kit import FederatedJob, run_federated_job
from pydantic import SecretStr
from web3 import Web3

from api.app import create_app
from api.auth import ApiSettings
from ledger.chain.client import LedgerClient
from ledger.deploy import Deployment, deploy_contracts, save_deployment
from ledger.devnet import NodeProcess, start_anvil
from ledger.keys import dev_account
from ledger.settings import Settings

TOKEN = "test-token-" + secrets.token_hex(16)


@dataclass
class Devnet:
    """A running anvil with the three contracts deployed by dev0."""

    node: NodeProcess
    deployment: Deployment


@pytest.fixture(scope="module")
def devnet() -> Iterator[Devnet]:
    node = start_anvil()
    try:
        deployment = deploy_contracts(Web3(Web3.HTTPProvider(node.rpc_url)), dev_account(0))
        yield Devnet(node, deployment)
    finally:
        node.stop()


@pytest.fixture
def settings(tmp_path: Path, devnet: Devnet) -> Settings:
    home = tmp_path / "sov-home"
    result = Settings(home=home, rpc_url=devnet.node.rpc_url)
    save_deployment(result, devnet.deployment)
    return result


@pytest.fixture
def api_settings() -> ApiSettings:
    return ApiSettings(token=SecretStr(TOKEN), account="dev0", index_sync_interval=0.0)


@pytest.fixture
def client(settings: Settings, api_settings: ApiSettings) -> Iterator[TestClient]:
    app = create_app(settings, api_settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def auth() -> dict[str, str]:
    """The header every write needs."""
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def new_root() -> Callable[[], str]:
    """Makes fresh content roots, as the API takes them."""
    return lambda: "0x" + secrets.token_hex(32)


@pytest.fixture
def chain(settings: Settings) -> Callable[[int], LedgerClient]:
    """A facade signing as dev account `i`, for arranging and checking state behind the API's back."""
    return lambda i: LedgerClient.connect(settings, account=dev_account(i))


@pytest.fixture
def registered(client: TestClient, auth: dict[str, str], new_root: Callable[[], str]) -> dict[str, object]:
    """A dataset registered through the API by the operator (dev0)."""
    response = client.post(
        "/v1/datasets", json={"content_root": new_root(), "uri": "ipfs://hospital-a"}, headers=auth
    )
    assert response.status_code == 201, response.text
    dataset: dict[str, object] = response.json()["dataset"]
    return dataset


@pytest.fixture(scope="module")
def federated(devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, FederatedJob]:
    """A real three-round job (hospital 1 revoked before round 3), with its own SOV_HOME."""
    home = tmp_path_factory.mktemp("federated-home")
    job_settings = Settings(home=home, rpc_url=devnet.node.rpc_url)
    save_deployment(job_settings, devnet.deployment)
    return job_settings, run_federated_job(job_settings)


@pytest.fixture
def job_client(federated: tuple[Settings, FederatedJob], api_settings: ApiSettings) -> Iterator[TestClient]:
    """The app over the federated job's data directory (its content store holds the models)."""
    with TestClient(create_app(federated[0], api_settings), raise_server_exceptions=False) as test_client:
        yield test_client
