"""`sov token get|introspect` against the service under uvicorn on loopback, over a real anvil."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from cli_kit import Party, one_error_line

from api.app import create_app
from api.auth import ApiSettings
from ledger.deploy import save_deployment
from ledger.keys import dev_account
from ledger.settings import Settings
from tests.conftest import DeployedChain

FAR = 2**40
CONSUMER = str(dev_account(3).address)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def serve(deployed: DeployedChain, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Starts the service (settings overridable) on a free port; returns its base URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**api_overrides: object) -> str:
        settings = Settings(home=tmp_path / f"service-{len(servers)}", rpc_url=deployed.rpc_url)
        save_deployment(settings, deployed.deployment)
        api_settings = ApiSettings(index_sync_interval=0.0, **api_overrides)  # type: ignore[arg-type]
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, api_settings), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def lab(tmp_path: Path) -> Party:
    return Party(home=tmp_path / "lab-home")


def _dataset_with_grant(deployed: DeployedChain) -> int:
    dataset_id, _ = deployed[0].register_dataset(secrets.token_bytes(32), uri="ipfs://hospital-a")
    deployed[0].issue_grant(dataset_id, CONSUMER, "ai-training", 0, FAR)
    return dataset_id


def test_get_prints_a_token_that_a_revocation_ends(
    deployed: DeployedChain, serve: Callable[..., str], lab: Party
) -> None:
    dataset_id = _dataset_with_grant(deployed)
    url = serve()
    body = lab.json("token", "get", "--url", url, "--account", "dev3", "--client-id", "lab-cli")
    assert body["sub"] == CONSUMER and body["client_id"] == "lab-cli"
    assert body["scope"] == f"ai-training:0x{dataset_id:064x}" and 0 < body["expires_in"] <= 900

    scoped = lab.json(
        "token", "get", "--url", url, "--account", "dev3", "--scope", f"analytics:0x{dataset_id:064x}"
    )
    assert scoped["scope"] == "" and scoped["grants"] == []
    line = one_error_line(lab.run("token", "get", "--url", url, "--account", "dev3", "--scope", "x:y"))
    assert line.startswith("error: scope: item 'x:y' is not '<purpose>:<dataset id>' or '<dataset id>'")

    plain = lab.run("token", "get", "--url", url, "--account", "dev3")
    assert plain.exit_code == 0, plain.output
    token = plain.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token  # only the token on stdout
    assert plain.stderr.startswith(f"access token for {CONSUMER}, expires ")
    assert plain.stderr.rstrip().endswith(f"scope: ai-training:0x{dataset_id:064x}")

    active = lab.json("token", "introspect", token, "--url", url)
    assert active["active"] is True and active["sub"] == CONSUMER
    read = httpx.get(f"{url}/v1/datasets/{dataset_id}/access", headers={"Authorization": f"Bearer {token}"})
    assert read.status_code == 200 and read.json()["uri"] == "ipfs://hospital-a"

    deployed[0].revoke_grant(dataset_id, CONSUMER, "ai-training")
    after = lab.run("token", "introspect", "-", "--url", url, input=token + "\n")
    assert after.exit_code == 0 and after.stdout == "inactive\n"
    refused = httpx.get(
        f"{url}/v1/datasets/{dataset_id}/access", headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_inactive"


def test_a_service_that_names_another_domain_is_refused(
    deployed: DeployedChain, serve: Callable[..., str], lab: Party
) -> None:
    url = serve(public_url="https://ledger.example.org")
    before = lab.files()
    result = lab.run("token", "get", "--url", url, "--account", "dev3")
    line = one_error_line(result)
    assert line == (
        f"error: the service at {url} asks to sign in to 'ledger.example.org', not to "
        f"'{url.removeprefix('http://')}'; pass the URL its users reach it at "
        "(its SOV_API_PUBLIC_URL) as --url"
    )
    assert result.stdout == "" and lab.files() == before
    as_json = lab.run("token", "get", "--url", url, "--account", "dev3", "--json")
    assert json.loads(as_json.stdout)["error"]["code"] == "siwe_domain_mismatch"


def test_bad_urls_accounts_and_tokens_are_one_line_errors(
    deployed: DeployedChain, serve: Callable[..., str], lab: Party
) -> None:
    url = serve()
    line = one_error_line(lab.run("token", "get", "--url", "ftp://x", "--account", "dev3"))
    assert line == "error: --url 'ftp://x' is not an http(s) URL such as http://127.0.0.1:8000"
    closed = f"http://127.0.0.1:{_free_port()}"
    line = one_error_line(lab.run("token", "get", "--url", closed, "--account", "dev3"))
    assert line.startswith(f"error: cannot reach the service at {closed}/v1/auth/nonce")
    line = one_error_line(lab.run("token", "get", "--url", url, "--account", "nobody"))
    assert line.startswith("error: no account 'nobody'")
    assert lab.run("token", "introspect", "not-a-token", "--url", url).stdout == "inactive\n"
    result = lab.run("token", "introspect", "", "--url", url, "--json")
    assert json.loads(result.stdout)["error"]["code"] == "invalid_request"
    assert result.exit_code == 1


def test_a_keystore_account_signs_in_and_a_wrong_password_signs_nothing(
    deployed: DeployedChain, serve: Callable[..., str], tmp_path: Path
) -> None:
    lab = Party(home=tmp_path / "lab-keys", extra_env={"SOV_KEY_PASSWORD": "correct horse"})
    address = lab.json("account", "create", "labkey")["address"]
    dataset_id, _ = deployed[0].register_dataset(secrets.token_bytes(32), uri="ipfs://hospital-b")
    deployed[0].issue_grant(dataset_id, address, "ai-training", 0, FAR)
    url = serve()
    body = lab.json("token", "get", "--url", url, "--account", "labkey")
    assert body["sub"] == address and body["scope"] == f"ai-training:0x{dataset_id:064x}"

    wrong = Party(home=lab.home, extra_env={"SOV_KEY_PASSWORD": "wrong"})
    before = wrong.files()
    line = one_error_line(wrong.run("token", "get", "--url", url, "--account", "labkey"))
    assert line == "error: the password does not decrypt account 'labkey'"
    assert wrong.files() == before
