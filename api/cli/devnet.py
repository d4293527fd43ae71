"""`sov devnet up|down|status` and `sov deploy`: the embedded anvil devnet and the contracts."""

from __future__ import annotations

from typing import Annotated

import typer

from ledger.deploy import deploy_contracts, load_deployment
from ledger.devnet import Devnet
from ledger.errors import ConfigurationError

from .chain import open_client
from .common import console, emit_json, emit_table, settings, user_errors

app = typer.Typer(help="The embedded anvil devnet (state kept under SOV_HOME).", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON for programs")]


def _status_document() -> dict[str, object]:
    config = settings()
    status = Devnet(config).status()
    document: dict[str, object] = {
        "running": status.running,
        "rpc_url": status.rpc_url,
        "chain_id": status.chain_id,
        "pid": status.pid,
        "state_file": str(config.devnet_dir),
        "contracts": {},
    }
    if status.running:
        client = open_client(config)
        try:
            document["contracts"] = dict(load_deployment(config, client.w3).addresses)
        except ConfigurationError as missing:
            document["contracts_error"] = str(missing)
    return document


@app.command()
@user_errors
def up(json: JsonFlag = False) -> None:
    """Start the devnet (idempotent) and deploy the contracts if this chain has none."""
    config = settings()
    Devnet(config).up()
    client = open_client(config, "dev0")
    try:
        load_deployment(config, client.w3)
    except ConfigurationError:
        deploy_contracts(client, client.account)
    _report(json)


@app.command()
@user_errors
def down(json: JsonFlag = False) -> None:
    """Stop the devnet; its state stays on disk for the next `up`."""
    Devnet(settings()).down()
    _report(json)


@app.command()
@user_errors
def status(json: JsonFlag = False) -> None:
    """RPC URL, chain id and contract addresses."""
    _report(json)


def _report(json: bool) -> None:
    document = _status_document()
    if json:
        emit_json(document)
        return
    state = "[green]running[/]" if document["running"] else "[yellow]stopped[/]"
    console.print(f"devnet {state}  rpc {document['rpc_url']}  chain id {document['chain_id']}")
    contracts = document.get("contracts") or {}
    if isinstance(contracts, dict) and contracts:
        emit_table("contracts", ["name", "address"], [[name, address] for name, address in contracts.items()])


@user_errors
def deploy(
    account: Annotated[str, typer.Option("--account", help="deployer alias")] = "dev0",
    json: JsonFlag = False,
) -> None:
    """Deploy the three contracts and write the deployment manifest for this chain id."""
    config = settings()
    client = open_client(config, account)
    deployment = deploy_contracts(client, client.account)
    if json:
        emit_json({"chain_id": deployment.chain_id, "contracts": dict(deployment.addresses)})
    else:
        emit_table(
            f"deployed on chain {deployment.chain_id}",
            ["name", "address"],
            [[name, address] for name, address in deployment.addresses.items()],
        )
