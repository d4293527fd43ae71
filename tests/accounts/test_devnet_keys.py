"""No public keys off devnets: the CLI, the API and a Flower node refuse `devN` on chain 1337.

One real anvil runs with `--chain-id 1337` (not the devnet id 31337) and the contracts
deployed. Each entry point is handed a `devN` alias, as a careless or dishonest operator
would configure it, and must refuse before signing anything: the alias's nonce and the
chain's block height stay where they were. A keystore account (a key nobody else knows)
works on the same chain through the same entry point, so the refusal is about the key.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from api.app import create_app
from api.auth import ApiSettings
from api.cli.main import app as sov
from fl_node.data import partition_bytes
from fl_node.flower.node_site import NodeConfigError, NodeSite
from ledger.chain.transport import Transport, make_provider
from ledger.deploy import Deployment, deploy_contracts, save_deployment
from ledger.devnet import NodeProcess, start_anvil
from ledger.keys import DevAccountOffDevnetError, Keystore, dev_account
from ledger.settings import Settings

CHAIN_ID = 1337
TOKEN = "t-" + secrets.token_hex(8)
FAST = {"kdf": "pbkdf2", "iterations": 2}


@dataclass
class NonDevnet:
    node: NodeProcess
    deployment: Deployment

    def rpc(self, method: str, params: list[object]) -> object:
        return Transport(make_provider(self.node.rpc_url), self.node.rpc_url).request(method, params)

    def height(self) -> int:
        return int(str(self.rpc("eth_blockNumber", [])), 16)

    def nonce(self, address: str) -> int:
        return int(str(self.rpc("eth_getTransactionCount", [address, "latest"])), 16)


@pytest.fixture(scope="module")
def chain() -> Iterator[NonDevnet]:
    # anvil funds the same ten mnemonic accounts on any chain id: exactly the danger.
    node = start_anvil(extra_args=("--chain-id", str(CHAIN_ID)))
    try:
        transport = Transport(make_provider(node.rpc_url), node.rpc_url)
        assert int(str(transport.request("eth_chainId", [])), 16) == CHAIN_ID
        yield NonDevnet(node, deploy_contracts(transport, dev_account(0)))
    finally:
        node.stop()


@pytest.fixture
def home(tmp_path: Path, chain: NonDevnet) -> Settings:
    settings = Settings(home=tmp_path / "home", rpc_url=chain.node.rpc_url)
    save_deployment(settings, chain.deployment)
    return settings


def _keystore_account(settings: Settings, chain: NonDevnet, alias: str) -> str:
    """A fresh private key in `settings`' keystore, funded on the chain; returns its address."""
    address = Keystore(settings).create(alias, "pw", **FAST)  # type: ignore[arg-type]
    chain.rpc("anvil_setBalance", [address, hex(10**20)])
    return address


def test_keystore_refuses_dev_aliases_and_imported_dev_keys(home: Settings) -> None:
    keystore = Keystore(home)
    with pytest.raises(
        DevAccountOffDevnetError, match=r"dev4 is a devnet account .* chain 1337 is not a devnet"
    ):
        keystore.account("dev4", chain_id=CHAIN_ID)
    # The same public key imported into a keystore file is still public.
    keystore.create("looks-private", "pw", private_key=bytes(dev_account(5).key), **FAST)  # type: ignore[arg-type]
    with pytest.raises(DevAccountOffDevnetError, match="looks-private is a devnet account"):
        keystore.account("looks-private", "pw", chain_id=CHAIN_ID)
    assert keystore.account("looks-private", "pw", chain_id=31337).address == dev_account(5).address
    assert keystore.account("dev4", chain_id=31337).address == dev_account(4).address


def test_api_refuses_writes_as_a_dev_account(home: Settings, chain: NonDevnet) -> None:
    body = {"content_root": "0x" + secrets.token_hex(32), "uri": "sov://test"}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = (chain.height(), chain.nonce(dev_account(1).address))
    app = create_app(home, ApiSettings(token=SecretStr(TOKEN), account="dev1", index_sync_interval=0.0))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/v1/datasets", json=body, headers=auth)
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "devnet_key_refused"
        assert (
            "dev1 is a devnet account with a publicly known key; chain 1337 is not a devnet"
            in error["message"]
        )
        assert error["details"] == {"account": "dev1", "chain_id": CHAIN_ID}
        # Reads do not need the key and keep working.
        health = client.get("/v1/health").json()
        assert health["chain_id"] == CHAIN_ID and health["account"] is None
    assert (chain.height(), chain.nonce(dev_account(1).address)) == before

    # The same request signed by a key nobody else has goes through.
    address = _keystore_account(home, chain, "operator")
    honest = ApiSettings(
        token=SecretStr(TOKEN), account="operator", account_password=SecretStr("pw"), index_sync_interval=0.0
    )
    with TestClient(create_app(home, honest), raise_server_exceptions=False) as client:
        response = client.post("/v1/datasets", json=body, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["dataset"]["owner"].lower() == address.lower()


def test_cli_refuses_to_sign_as_a_dev_account(home: Settings, chain: NonDevnet, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(secrets.token_bytes(64))
    env = {"SOV_HOME": str(home.home), "SOV_RPC_URL": chain.node.rpc_url, "SOV_KEY_PASSWORD": "pw"}
    before = (chain.height(), chain.nonce(dev_account(2).address))
    result = CliRunner().invoke(sov, ["dataset", "register", str(data), "--account", "dev2"], env=env)
    assert result.exit_code == 1, result.output
    assert "dev2 is a devnet account with a publicly known key" in " ".join(result.output.split())
    assert (chain.height(), chain.nonce(dev_account(2).address)) == before

    address = _keystore_account(home, chain, "hospital")
    result = CliRunner().invoke(
        sov, ["dataset", "register", str(data), "--account", "hospital", "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    assert address.lower() in result.output.lower()


def test_flower_node_config_refuses_a_dev_account(home: Settings, chain: NonDevnet, tmp_path: Path) -> None:
    partition = tmp_path / "part.npz"
    partition.write_bytes(
        partition_bytes(np.zeros((2, 4), dtype=np.float32), np.array([0, 1], dtype=np.int64))
    )
    node_config = {
        "sov-home": str(home.home),
        "rpc-url": chain.node.rpc_url,
        "account": "dev3",
        "partition": str(partition),
    }
    site = NodeSite.from_node_config(node_config)
    with pytest.raises(NodeConfigError, match=r"node config 'account' = 'dev3': dev3 is a devnet account"):
        site.client  # noqa: B018 - the property connects and loads the key
    with pytest.raises(NodeConfigError, match="chain 1337 is not a devnet"):
        site.account  # noqa: B018

    _keystore_account(home, chain, "hospital-key")
    honest = NodeSite.from_node_config({**node_config, "account": "hospital-key"})
    # A SuperNode unlocks its keystore account with SOV_KEY_PASSWORD from its environment.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOV_KEY_PASSWORD", "pw")
        assert honest.client.chain_id == CHAIN_ID
        assert honest.account.address == Account.from_key(honest.account.key).address
