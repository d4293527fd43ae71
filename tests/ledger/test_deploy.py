"""Deployment manifests: written per chain id, refused when they do not match the node."""

from __future__ import annotations

import json

import pytest
from eth_utils.crypto import keccak

from ledger.chain.client import LedgerClient
from ledger.chain.transport import Transport, make_provider
from ledger.deploy import Deployment, deploy_contracts, load_deployment, manifest_path
from ledger.devnet import NodeProcess, start_anvil
from ledger.errors import DeploymentMismatchError, DeploymentNotFoundError
from ledger.keys import dev_account
from ledger.settings import Settings


def _transport(node: NodeProcess) -> Transport:
    return Transport(make_provider(node.rpc_url), node.rpc_url)


def test_deploy_writes_a_verified_manifest(anvil: NodeProcess, sov_settings: Settings) -> None:
    transport = _transport(anvil)
    deployment = deploy_contracts(transport, dev_account(0), settings=sov_settings)
    raw = json.loads(manifest_path(sov_settings, 31337).read_text())
    assert raw["chain_id"] == 31337 and raw["deployed_block"] == deployment.deployed_block >= 1
    assert set(raw["addresses"]) == {"DatasetRegistry", "UsageGrants", "TrainingLedger"}
    for name, address in deployment.addresses.items():
        code = transport.request("eth_getCode", [address, "latest"])
        assert raw["code_hashes"][name] == "0x" + keccak(bytes.fromhex(code[2:])).hex()
    assert load_deployment(sov_settings, transport) == deployment
    # Constructor wiring: grants -> registry, ledger -> registry and grants.
    client = LedgerClient.connect(sov_settings.model_copy(update={"rpc_url": anvil.rpc_url}))
    assert client._call("UsageGrants", "registry", [])[0] == deployment.addresses["DatasetRegistry"]
    assert client._call("TrainingLedger", "grants", [])[0] == deployment.addresses["UsageGrants"]
    assert client._call("TrainingLedger", "registry", [])[0] == deployment.addresses["DatasetRegistry"]


def test_missing_manifest(anvil: NodeProcess, sov_settings: Settings) -> None:
    settings = sov_settings.model_copy(update={"rpc_url": anvil.rpc_url})
    with pytest.raises(
        DeploymentNotFoundError,
        match=f"no deployment manifest for chain 31337 at .*31337.json; "
        f"run `sov deploy` against {anvil.rpc_url}",
    ):
        LedgerClient.connect(settings)
    assert not settings.deployments_dir.exists()


def test_manifest_of_another_chain_id_is_refused(anvil: NodeProcess, sov_settings: Settings) -> None:
    deployment = deploy_contracts(_transport(anvil), dev_account(0), settings=sov_settings)
    path = manifest_path(sov_settings, 31337)
    raw = json.loads(path.read_text())
    raw["chain_id"] = 1
    path.write_text(json.dumps(raw))
    with pytest.raises(DeploymentMismatchError, match=f"is for chain 1, but {anvil.rpc_url} is chain 31337"):
        load_deployment(sov_settings, _transport(anvil))
    assert json.loads(path.read_text()) == dict(deployment.to_dict(), chain_id=1)


def test_manifest_without_code_on_the_node_is_refused(anvil: NodeProcess, sov_settings: Settings) -> None:
    deploy_contracts(_transport(anvil), dev_account(0), settings=sov_settings)
    fresh = start_anvil()  # same chain id, no contracts: a devnet restarted without its state
    try:
        with pytest.raises(
            DeploymentMismatchError, match=r"but there is no code there .*run `sov deploy` again"
        ):
            load_deployment(sov_settings, _transport(fresh))
    finally:
        fresh.stop()


def test_manifest_with_other_code_is_refused(anvil: NodeProcess, sov_settings: Settings) -> None:
    deployment = deploy_contracts(_transport(anvil), dev_account(0))
    # Swap two addresses: code exists there, but it is not the contract the manifest names.
    swapped = Deployment(
        chain_id=31337,
        addresses=dict(deployment.addresses, DatasetRegistry=deployment.addresses["UsageGrants"]),
        deployed_block=deployment.deployed_block,
        code_hashes=deployment.code_hashes,
    )
    manifest_path(sov_settings, 31337).parent.mkdir(parents=True)
    manifest_path(sov_settings, 31337).write_text(json.dumps(swapped.to_dict()))
    with pytest.raises(
        DeploymentMismatchError, match="is not the DatasetRegistry of the deployment manifest"
    ):
        LedgerClient.connect(sov_settings.model_copy(update={"rpc_url": anvil.rpc_url}))


def test_a_deployment_is_found_from_its_training_ledger_and_is_this_build(anvil: NodeProcess) -> None:
    from ledger.deploy import deployment_at, first_code_block, verify_build

    transport = _transport(anvil)
    for _ in range(5):
        transport.request("evm_mine", [])
    deployment = deploy_contracts(transport, dev_account(0))
    assert deployment.deployed_block == 6
    assert first_code_block(transport, deployment.address("TrainingLedger")) == 8
    assert deployment_at(transport, deployment.address("TrainingLedger")) == deployment
    verify_build(transport, deployment)  # the immutables (addresses, chain id, domain) are not code


def test_a_contract_with_other_code_or_wiring_is_not_this_build(anvil: NodeProcess) -> None:
    from ledger.deploy import verify_build

    transport = _transport(anvil)
    ours = deploy_contracts(transport, dev_account(0))
    theirs = deploy_contracts(transport, dev_account(1))
    mixed = Deployment(
        31337, {**ours.addresses, "TrainingLedger": theirs.address("TrainingLedger")}, ours.deployed_block
    )
    with pytest.raises(DeploymentMismatchError, match=r"uses DatasetRegistry .*, not the deployment's"):
        verify_build(transport, mixed)
    # The registry's code with one opcode byte changed: same length, same wiring, another contract.
    address = ours.address("DatasetRegistry")
    code = bytearray(bytes.fromhex(transport.request("eth_getCode", [address, "latest"])[2:]))
    code[10] ^= 0xFF
    transport.request("anvil_setCode", [address, "0x" + code.hex()])
    with pytest.raises(
        DeploymentMismatchError, match=f"the code at {address} .* is not the DatasetRegistry of this build"
    ):
        verify_build(transport, ours)


def test_replacing_a_live_manifest_is_refused(anvil: NodeProcess, sov_settings: Settings) -> None:
    from ledger.deploy import DeploymentExistsError, refuse_to_replace

    transport = _transport(anvil)
    refuse_to_replace(sov_settings, transport, 31337)  # no manifest: deploying is fine
    deploy_contracts(transport, dev_account(0), settings=sov_settings)
    with pytest.raises(DeploymentExistsError, match="the other parties on this chain will not see"):
        refuse_to_replace(sov_settings, transport, 31337)
    with start_anvil() as fresh:  # the same manifest against a chain without those contracts: stale
        refuse_to_replace(sov_settings, _transport(fresh), 31337)
