"""Joining a network another party deployed: the manifest is checked against the chain and this
build's code before it is kept, and a second `sov deploy` on a shared chain is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_kit import Party, one_error_line

from ledger.chain.abi import load_artifact
from ledger.chain.transport import Transport, make_provider
from ledger.deploy import Deployment, code_hash, deploy_contracts, save_deployment
from ledger.devnet import NodeProcess
from ledger.keys import dev_account
from ledger.settings import Settings
from tests.conftest import DeployedChain


def _manifest_file(tmp_path: Path, deployment: Deployment | dict[str, object], name: str = "m.json") -> Path:
    path = tmp_path / name
    document = deployment.to_dict() if isinstance(deployment, Deployment) else deployment
    path.write_text(json.dumps(document))
    return path


def _transport(url: str) -> Transport:
    return Transport(make_provider(url), url)


def _block(url: str) -> int:
    return int(_transport(url).request("eth_blockNumber", []), 16)


def test_join_with_a_manifest_keeps_it_and_the_rpc_url(deployed: DeployedChain, tmp_path: Path) -> None:
    hospital = Party(tmp_path / "hospital")
    manifest = _manifest_file(tmp_path, deployed.deployment)
    joined = hospital.json("network", "join", deployed.rpc_url, "--manifest", str(manifest))
    assert joined["chain_id"] == 31337 and joined["code_verified"] is True
    assert joined["contracts"] == deployed.deployment.addresses
    assert Deployment.from_dict(json.loads(hospital.manifest().read_text())) == deployed.deployment
    assert Settings(home=hospital.home).rpc_url == deployed.rpc_url

    # Later commands use the remembered URL: no SOV_RPC_URL, no devnet.
    status = hospital.json("network", "status")
    assert status["rpc_url"] == deployed.rpc_url
    assert status["rpc_url_from"] == str(hospital.home / "config.toml")
    assert status["verified"] is True and status["contracts"] == deployed.deployment.addresses
    assert hospital.json("dataset", "list") == []
    # Joining again with the same deployment is a no-op that succeeds.
    assert hospital.run("network", "join", deployed.rpc_url, "--manifest", str(manifest)).exit_code == 0


def test_join_by_training_ledger_address_reads_the_other_contracts(
    deployed: DeployedChain, tmp_path: Path
) -> None:
    hospital = Party(tmp_path / "hospital")
    address = deployed.deployment.address("TrainingLedger")
    joined = hospital.json("network", "join", deployed.rpc_url, "--address", address.lower())
    assert joined["contracts"] == deployed.deployment.addresses
    kept = Deployment.from_dict(json.loads(hospital.manifest().read_text()))
    assert kept == deployed.deployment  # same deployed block (found from the chain) and code hashes


def test_join_with_a_manifest_over_http(deployed: DeployedChain, tmp_path: Path) -> None:
    import http.server
    import threading

    body = json.dumps(deployed.deployment.to_dict()).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/manifest.json"
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(body if found else b"no")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        hospital = Party(tmp_path / "hospital")
        missing = hospital.run("network", "join", deployed.rpc_url, "--manifest", f"{base}/other.json")
        assert "HTTP 404" in one_error_line(missing)
        assert hospital.files() == {}
        joined = hospital.json("network", "join", deployed.rpc_url, "--manifest", f"{base}/manifest.json")
        assert joined["contracts"] == deployed.deployment.addresses
    finally:
        server.shutdown()
        server.server_close()


def _foreign_contract(url: str) -> str:
    """A contract that is not ours (the EIP-1271 mock wallet), deployed on the chain."""
    from eth_abi.abi import encode

    from ledger.chain.revert import RevertDecoder
    from ledger.chain.sender import TransactionSender

    artifact = load_artifact("MockSignerWallet")
    sender = TransactionSender(_transport(url), 31337, dev_account(5), RevertDecoder([]))
    data = artifact.bytecode + encode(["address"], [dev_account(5).address]).hex()
    return str(sender.transact(None, data, action="deploy a foreign contract")["contractAddress"])


def _dishonest_manifests(deployed: DeployedChain) -> list[tuple[str, dict[str, object], str]]:
    """Manifests a dishonest deployer could hand out, each self-consistent in its code hashes."""
    url = deployed.rpc_url
    honest = deployed.deployment.to_dict()
    other = deploy_contracts(_transport(url), dev_account(4))  # a second, private set of contracts
    foreign = _foreign_contract(url)
    t = _transport(url)

    def with_ledger(address: str) -> dict[str, object]:
        addresses = {**deployed.deployment.addresses, "TrainingLedger": address}
        hashes = {name: code_hash(t, a) for name, a in addresses.items()}
        return {**honest, "addresses": addresses, "code_hashes": hashes}

    return [
        ("another chain", {**honest, "chain_id": 5}, "is for chain 5"),
        ("foreign code", with_ledger(foreign), "does not answer registry()"),
        (
            "ledger of another set",
            with_ledger(other.address("TrainingLedger")),
            f"uses DatasetRegistry {other.address('DatasetRegistry')}, not the deployment's",
        ),
        ("no code", with_ledger("0x" + "42" * 20), "there is no code there"),
        (
            "edited code hash",
            {**honest, "code_hashes": {**deployed.deployment.code_hashes, "UsageGrants": "0x" + "00" * 32}},
            "is not the UsageGrants of the deployment manifest",
        ),
    ]


def test_dishonest_manifests_are_refused_and_nothing_is_kept(deployed: DeployedChain, tmp_path: Path) -> None:
    for name, document, expected in _dishonest_manifests(deployed):
        hospital = Party(tmp_path / f"hospital-{name.replace(' ', '-')}")
        manifest = _manifest_file(tmp_path, document, f"{name}.json")
        line = one_error_line(hospital.run("network", "join", deployed.rpc_url, "--manifest", str(manifest)))
        assert expected in line, (name, line)
        assert hospital.files() == {}, name


def test_code_that_is_not_this_build_is_refused(deployed: DeployedChain, tmp_path: Path) -> None:
    # A TrainingLedger-shaped contract with other code: anvil_setCode replaces its runtime code by
    # ours with one byte changed, keeping the wiring views answering as before.
    t = _transport(deployed.rpc_url)
    address = deployed.deployment.address("TrainingLedger")
    code = bytearray(bytes.fromhex(str(t.request("eth_getCode", [address, "latest"]))[2:]))
    code[-1] ^= 0x01  # in the metadata trailer: the contract still works, but it is another build
    t.request("anvil_setCode", [address, "0x" + code.hex()])
    document = {**deployed.deployment.to_dict()}
    document["code_hashes"] = {**deployed.deployment.code_hashes, "TrainingLedger": code_hash(t, address)}
    hospital = Party(tmp_path / "hospital")
    manifest = _manifest_file(tmp_path, document)
    line = one_error_line(hospital.run("network", "join", deployed.rpc_url, "--manifest", str(manifest)))
    assert f"the code at {address} on chain 31337 is not the TrainingLedger of this build" in line
    assert hospital.files() == {}
    by_address = hospital.run("network", "join", deployed.rpc_url, "--address", address)
    assert "is not the TrainingLedger of this build" in one_error_line(by_address)
    assert hospital.files() == {}


def test_join_refuses_to_replace_another_deployment_without_force(
    deployed: DeployedChain, tmp_path: Path
) -> None:
    hospital = Party(tmp_path / "hospital")
    first = _manifest_file(tmp_path, deployed.deployment, "first.json")
    assert hospital.run("network", "join", deployed.rpc_url, "--manifest", str(first)).exit_code == 0
    before = hospital.files()
    other = deploy_contracts(_transport(deployed.rpc_url), dev_account(3))
    second = _manifest_file(tmp_path, other, "second.json")
    line = one_error_line(hospital.run("network", "join", deployed.rpc_url, "--manifest", str(second)))
    assert "already has another deployment for chain 31337" in line and "--force" in line
    assert hospital.files() == before
    forced = hospital.run("network", "join", deployed.rpc_url, "--manifest", str(second), "--force")
    assert forced.exit_code == 0, forced.output
    assert Deployment.from_dict(json.loads(hospital.manifest().read_text())) == other


def test_deploy_refuses_to_replace_a_live_deployment(deployed: DeployedChain, tmp_path: Path) -> None:
    lab = Party(tmp_path / "lab", rpc_url=deployed.rpc_url)
    save_deployment(Settings(home=lab.home), deployed.deployment)
    before, height = lab.files(), _block(deployed.rpc_url)
    line = one_error_line(lab.run("deploy"))
    assert "chain 31337 already has a deployment" in line
    assert "the other parties on this chain will not see" in line and "--force" in line
    assert lab.files() == before and _block(deployed.rpc_url) == height  # nothing sent, nothing written
    forced = lab.json("deploy", "--force")
    assert forced["addresses"] != deployed.deployment.addresses
    assert json.loads(lab.manifest().read_text())["addresses"] == forced["addresses"]


def test_deploy_replaces_a_stale_manifest_without_force(anvil: NodeProcess, tmp_path: Path) -> None:
    # A manifest whose contracts are gone (a devnet restarted without its state) is no deployment.
    lab = Party(tmp_path / "lab", rpc_url=anvil.rpc_url)
    stale = Deployment(31337, {n: "0x" + f"{i + 1:040x}" for i, n in enumerate(load_names())}, 1, {})
    save_deployment(Settings(home=lab.home), stale)
    deployed = lab.json("deploy")
    assert json.loads(lab.manifest().read_text())["addresses"] == deployed["addresses"]


def load_names() -> tuple[str, ...]:
    from ledger.chain.abi import CONTRACT_NAMES

    return tuple(CONTRACT_NAMES)


@pytest.mark.parametrize("amount, wei", [("1eth", 10**18), ("0.25 ether", 25 * 10**16), ("7gwei", 7 * 10**9)])
def test_fund_adds_to_the_balance_on_a_devnet(
    deployed: DeployedChain, tmp_path: Path, amount: str, wei: int
) -> None:
    party = Party(tmp_path / "home", rpc_url=deployed.rpc_url)
    who = "0x" + "ab" * 20
    t = _transport(deployed.rpc_url)
    before = int(t.request("eth_getBalance", [who, "latest"]), 16)
    funded = party.json("account", "fund", who, "--amount", amount)
    assert int(t.request("eth_getBalance", [who, "latest"]), 16) == before + wei
    assert funded["balance_wei"] == str(before + wei) and funded["method"] == "anvil_setBalance"
    again = party.json("account", "fund", who, "--amount", amount)
    assert int(again["balance_wei"]) == before + 2 * wei


def test_fund_a_keystore_alias(deployed: DeployedChain, tmp_path: Path) -> None:
    party = Party(tmp_path / "home", rpc_url=deployed.rpc_url, extra_env={"SOV_KEY_PASSWORD": "pw"})
    address = party.json("account", "create", "hospital")["address"]
    funded = party.json("account", "fund", "hospital", "--amount", "2eth")
    assert funded["address"] == address and funded["balance_wei"] == str(2 * 10**18)


def test_fund_is_refused_off_a_devnet(tmp_path: Path) -> None:
    from ledger.devnet import start_anvil

    with start_anvil(extra_args=("--chain-id", "5")) as node:
        party = Party(tmp_path / "home", rpc_url=node.rpc_url)
        who = "0x" + "cd" * 20
        line = one_error_line(party.run("account", "fund", who, "--amount", "1eth"))
        assert "chain 5" in line and "is not a devnet" in line
        assert int(_transport(node.rpc_url).request("eth_getBalance", [who, "latest"]), 16) == 0


@pytest.mark.hardhat
def test_fund_on_a_hardhat_devnet(hardhat_node: NodeProcess, tmp_path: Path) -> None:
    # Another devnet implementation: anvil_setBalance is unknown there, hardhat_setBalance works.
    party = Party(tmp_path / "home", rpc_url=hardhat_node.rpc_url)
    who = "0x" + "5a" * 20
    t = _transport(hardhat_node.rpc_url)
    before = int(t.request("eth_getBalance", [who, "latest"]), 16)
    funded = party.json("account", "fund", who, "--amount", "3eth")
    assert funded["method"] == "hardhat_setBalance"
    assert int(t.request("eth_getBalance", [who, "latest"]), 16) == before + 3 * 10**18
