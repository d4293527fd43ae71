"""`sov devnet up|down|status` and `sov deploy`: the embedded anvil devnet and the contracts."""

from __future__ import annotations

from typing import Annotated

import typer

from ledger.chain.transport import Transport, make_provider
from ledger.deploy import Deployment, deploy_contracts, load_deployment
from ledger.devnet import Devnet, DevnetStatus
from ledger.errors import ConfigurationError
from ledger.keys import Keystore
from ledger.settings import Settings

from .common import JsonFlag, console, emit_json, emit_table, settings, user_errors

app = typer.Typer(help="The embedded anvil devnet (its chain is kept under SOV_HOME).", no_args_is_help=True)


def ensure_devnet(config: Settings, deployer: str = "dev0") -> tuple[DevnetStatus, Deployment]:
    """Starts the devnet if needed and deploys the contracts if this chain has none (idempotent)."""
    status = Devnet(config).up()
    assert status.rpc_url is not None
    transport = Transport(make_provider(status.rpc_url), status.rpc_url)
    try:
        deployment = load_deployment(config, transport)
    except ConfigurationError:
        chain_id = int(transport.request("eth_chainId", []), 16)
        account = Keystore(config).account(deployer, chain_id=chain_id)
        deployment = deploy_contracts(transport, account, settings=config)
    return Devnet(config).status(), deployment


@app.command()
@user_errors
def up(json: JsonFlag = False) -> None:
    """Start the devnet (idempotent) and deploy the contracts if this chain has none."""
    status, _ = ensure_devnet(settings())
    _report(status, json)


@app.command()
@user_errors
def down(json: JsonFlag = False) -> None:
    """Stop the devnet; its chain stays on disk for the next `up`."""
    config = settings()
    was_running = Devnet(config).down()
    status = Devnet(config).status()
    if json:
        emit_json({**status.to_dict(), "stopped": was_running})
    else:
        console.print("devnet stopped" if was_running else "devnet was not running")


@app.command()
@user_errors
def status(json: JsonFlag = False) -> None:
    """Whether the devnet runs: RPC URL, chain id, block and contract addresses."""
    _report(Devnet(settings()).status(), json)


def _report(status: DevnetStatus, json: bool) -> None:
    document = status.to_dict()
    document["contracts"] = document.pop("addresses") or {}
    if json:
        emit_json(document)
        return
    state = "[green]running[/]" if status.running else "[yellow]stopped[/]"
    console.print(
        f"devnet {state}  rpc {status.rpc_url or '-'}  chain id {status.chain_id or '-'}  "
        f"block {status.block_number if status.block_number is not None else '-'}"
    )
    if document["contracts"]:
        emit_table("contracts", ["name", "address"], [[n, a] for n, a in document["contracts"].items()])


@user_errors
def deploy(
    account: Annotated[str, typer.Option("--account", help="deployer account alias")] = "dev0",
    json: JsonFlag = False,
) -> None:
    """Deploy the three contracts and write the deployment manifest for this chain id."""
    from ledger.chain.client import resolve_rpc_url

    config = settings()
    url = resolve_rpc_url(config)
    transport = Transport(make_provider(url), url)
    chain_id = int(transport.request("eth_chainId", []), 16)
    signer = Keystore(config).account(account, chain_id=chain_id)
    deployment = deploy_contracts(transport, signer, settings=config)
    if json:
        emit_json(deployment.to_dict())
    else:
        emit_table(
            f"deployed on chain {deployment.chain_id}",
            ["name", "address"],
            [[name, address] for name, address in deployment.addresses.items()],
        )
