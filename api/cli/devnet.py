"""`sov devnet up|down|status` and `sov deploy`: the embedded anvil devnet and the contracts."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import JsonFlag, console, emit_json, emit_table, err_console, settings, user_errors

if TYPE_CHECKING:
    from ledger.deploy import Deployment
    from ledger.devnet import DevnetStatus
    from ledger.settings import Settings

app = typer.Typer(help="The embedded anvil devnet (its chain is kept under SOV_HOME).", no_args_is_help=True)


def ensure_devnet(
    config: Settings, deployer: str = "dev0", *, host: str | None = None, block_time: float | None = None
) -> tuple[DevnetStatus, Deployment]:
    """Starts the devnet if needed and deploys the contracts if this chain has none (idempotent)."""
    from ledger.chain.transport import Transport, make_provider
    from ledger.deploy import deploy_contracts, load_deployment
    from ledger.devnet import Devnet
    from ledger.errors import ConfigurationError
    from ledger.keys import Keystore

    status = Devnet(config).up(host=host, block_time=block_time)
    assert status.rpc_url is not None
    transport = Transport(make_provider(status.rpc_url), status.rpc_url)
    try:
        deployment = load_deployment(config, transport)
    except ConfigurationError:
        chain_id = int(transport.request("eth_chainId", []), 16)
        account = Keystore(config).account(deployer, chain_id=chain_id)
        deployment = deploy_contracts(transport, account, settings=config)
    # A fresh status: it shows the contracts just deployed.
    return replace(Devnet(config).status(), recovered=status.recovered), deployment


@app.command()
@user_errors
def up(
    host: Annotated[
        str | None,
        typer.Option(
            help="address anvil binds: 127.0.0.1 (default, this machine only) or 0.0.0.0 so that "
            "other machines can share the devnet"
        ),
    ] = None,
    block_time: Annotated[
        float | None,
        typer.Option(
            "--block-time",
            help="mine a block every SECONDS, so block time (and grant windows) follow the clock "
            "(default: a block per transaction)",
        ),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Start the devnet (idempotent) and deploy the contracts if this chain has none."""
    status, _ = ensure_devnet(settings(), host=host, block_time=block_time)
    _report(status, json)


@app.command()
@user_errors
def down(json: JsonFlag = False) -> None:
    """Stop the devnet; its chain stays on disk for the next `up`."""
    from ledger.devnet import Devnet

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
    """Whether the devnet runs: RPC URL, bind host, block time, chain id, block and contracts."""
    from ledger.devnet import Devnet

    _report(Devnet(settings()).status(), json)


def _report(status: DevnetStatus, json: bool) -> None:
    document: dict[str, Any] = status.to_dict()
    document["contracts"] = document.pop("addresses") or {}
    if json:
        emit_json(document)
        return
    state = "[green]running[/]" if status.running else "[yellow]stopped[/]"
    mining = "-"
    if status.running:
        mining = "instant" if status.block_time is None else f"every {status.block_time:g} s"
    console.print(
        f"devnet {state}  rpc {status.rpc_url or '-'}  bound to {status.host or '-'}  "
        f"blocks {mining}  chain id {status.chain_id or '-'}  "
        f"block {status.block_number if status.block_number is not None else '-'}"
    )
    if status.recovered:
        err_console.print(f"[yellow]warning:[/] {status.recovered}")
    if document["contracts"]:
        emit_table("contracts", ["name", "address"], [[n, a] for n, a in document["contracts"].items()])


@user_errors
def deploy(
    account: Annotated[str, typer.Option("--account", help="deployer account alias")] = "dev0",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="deploy even though this chain already has a live deployment manifest here "
            "(the other parties keep using the old contracts)",
        ),
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Deploy the three contracts and write the deployment manifest for this chain id.

    Only the network's first party deploys; the others `sov network join` its deployment.
    """
    from ledger.chain.client import resolve_rpc_url
    from ledger.chain.transport import Transport, make_provider
    from ledger.deploy import deploy_contracts, refuse_to_replace
    from ledger.keys import Keystore

    config = settings()
    url = resolve_rpc_url(config)
    transport = Transport(make_provider(url), url)
    chain_id = int(transport.request("eth_chainId", []), 16)
    if not force:
        refuse_to_replace(config, transport, chain_id)
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
