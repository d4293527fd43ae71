"""Fixtures for the browser test: a devnet with a real federated job, and the service under uvicorn."""

from __future__ import annotations

import importlib.util
import secrets
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
from sov_live_service import REPO, LiveService
from web3 import Web3

from api.cli.serve import ServiceProcess
from ledger.deploy import deploy_contracts, save_deployment
from ledger.devnet import free_port, start_anvil
from ledger.keys import dev_account
from ledger.settings import Settings


def _federation_kit() -> ModuleType:
    # One job builder for the API and browser suites; tests/ is not a package, so load it by path.
    spec = importlib.util.spec_from_file_location(
        "sov_federation_kit", REPO / "tests" / "api" / "federation_kit.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    node = start_anvil()
    try:
        home = tmp_path_factory.mktemp("browser-home")
        settings = Settings(home=home, rpc_url=node.rpc_url)
        save_deployment(settings, deploy_contracts(Web3(Web3.HTTPProvider(node.rpc_url)), dev_account(0)))
        job = _federation_kit().run_federated_job(settings)
        token = secrets.token_hex(16)
        env = {
            "SOV_HOME": str(home),
            "SOV_RPC_URL": node.rpc_url,
            "SOV_API_TOKEN": token,
            "SOV_API_ACCOUNT": "dev1",  # hospital 1 runs this service: the owner view can revoke its grants
            "PYTHONPATH": str(REPO),
        }
        with ServiceProcess(env, free_port(), home / "server.log") as service:
            yield LiveService(service.url, token, job, settings)
    finally:
        node.stop()
