"""`sov network join|status`: use a network another party deployed, after checking its contracts.

Joining reads the deployment (a manifest file or URL, or the address of its TrainingLedger),
checks that the node at RPC_URL is the manifest's chain and runs this build's contracts there,
wired to each other, then keeps the manifest in `$SOV_HOME/deployments/<chain id>.json` and
the RPC URL in `$SOV_HOME/config.toml`, so every later command talks to that network.
"""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import JsonFlag, console, emit_json, emit_table, settings, user_errors

if TYPE_CHECKING:
    from ledger.chain.transport import Transport
    from ledger.deploy import Deployment

app = typer.Typer(
    help="Join a shared network: verify its contracts and keep its manifest.", no_args_is_help=True
)

MANIFEST_FETCH_TIMEOUT_S = 15.0
MANIFEST_MAX_BYTES = 1_000_000


def check_rpc_url(text: str) -> str:
    """An http(s):// URL or the path of an existing IPC socket; anything else is refused."""
    from ledger.errors import InvalidArgumentError

    value = text.strip()
    if value.startswith(("http://", "https://")):
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if parts is None or not parts.hostname or (port is not None and not 0 < port < 65536):
            raise InvalidArgumentError(
                f"RPC URL {text!r} is not a valid http(s) URL (e.g. http://10.0.0.5:8545)"
            )
        return value
    if value.startswith(("ws://", "wss://")):
        raise InvalidArgumentError(
            f"RPC URL {text!r}: WebSocket is not supported; give the node's http(s):// URL"
        )
    path = Path(value.removeprefix("ipc://"))
    if value and path.is_socket():
        return value
    raise InvalidArgumentError(
        f"RPC URL {text!r} is neither an http(s):// URL nor an IPC socket path (e.g. http://10.0.0.5:8545)"
    )


def _read_manifest(source: str) -> dict[str, Any]:
    """The manifest document of a file path or an http(s) URL, as JSON."""
    from ledger.errors import ConfigurationError, UnreachableError

    if source.startswith(("http://", "https://")):
        import requests

        try:
            response = requests.get(source, timeout=MANIFEST_FETCH_TIMEOUT_S)
        except requests.RequestException as error:
            raise UnreachableError(
                f"cannot fetch the manifest from {source}: {type(error).__name__}"
            ) from None
        if response.status_code != 200:
            raise ConfigurationError(f"manifest URL {source} answered HTTP {response.status_code}")
        content = response.content[: MANIFEST_MAX_BYTES + 1]
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(2, "No such file or directory", source)
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory", source)
        with path.open("rb") as handle:
            content = handle.read(MANIFEST_MAX_BYTES + 1)
    if len(content) > MANIFEST_MAX_BYTES:
        raise ConfigurationError(
            f"manifest {source} is larger than {MANIFEST_MAX_BYTES} bytes; not a manifest"
        )
    try:
        document = jsonlib.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ConfigurationError(f"manifest {source} is not JSON ({error})") from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"manifest {source} holds {type(document).__name__}, not a manifest object")
    return document


def _parse_manifest(document: dict[str, Any], source: str) -> Deployment:
    from ledger.chain.abi import CONTRACT_NAMES
    from ledger.deploy import Deployment
    from ledger.errors import ConfigurationError

    try:
        deployment = Deployment.from_dict(document)
    except ConfigurationError as error:
        raise ConfigurationError(f"manifest {source}: {error}") from None
    missing = [name for name in CONTRACT_NAMES if name not in deployment.addresses]
    if missing:
        raise ConfigurationError(f"manifest {source} has no address for {', '.join(missing)}")
    if deployment.deployed_block < 0:
        raise ConfigurationError(
            f"manifest {source} has a negative deployed_block {deployment.deployed_block}"
        )
    return deployment


def _resolve(transport: Transport, manifest: str | None, address: str | None) -> tuple[Deployment, str]:
    """The deployment to join and where it came from, checked against the node and this build."""
    from ledger.deploy import deployment_at, verify_build, verify_deployment
    from ledger.errors import InvalidArgumentError

    from . import parse

    if (manifest is None) == (address is None):
        raise InvalidArgumentError(
            "give the deployment either as --manifest FILE|URL or as --address (its TrainingLedger)"
        )
    chain_id = int(transport.request("eth_chainId", []), 16)
    if manifest is not None:
        deployment = _parse_manifest(_read_manifest(manifest), manifest)
        verify_deployment(transport, deployment, chain_id, manifest)
        source = manifest
    else:
        assert address is not None
        deployment = deployment_at(transport, parse.address(address, "TrainingLedger address"), chain_id)
        source = f"TrainingLedger {deployment.address('TrainingLedger')}"
    verify_build(transport, deployment)
    return deployment, source


@app.command()
@user_errors
def join(
    rpc_url: Annotated[str, typer.Argument(help="the network's JSON-RPC endpoint (http(s)://HOST:PORT)")],
    manifest: Annotated[
        str | None,
        typer.Option("--manifest", "-m", help="the deployment manifest: a file or an http(s) URL"),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="instead of a manifest: the deployment's TrainingLedger address (the other "
            "two contracts are read from it)",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="replace a different deployment this home already has for the chain"),
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Join a network: check the chain and the contracts' code, then keep its manifest and RPC URL."""
    from ledger.chain.transport import Transport, make_provider
    from ledger.deploy import DeploymentExistsError, manifest_path, save_deployment
    from ledger.settings import write_config

    url = check_rpc_url(rpc_url)
    config = settings()
    transport = Transport(make_provider(url, timeout_s=15.0), url)
    deployment, source = _resolve(transport, manifest, address)
    path = manifest_path(config, deployment.chain_id)
    existing = _existing(path)
    if existing is not None and existing.addresses != deployment.addresses and not force:
        raise DeploymentExistsError(
            f"this home already has another deployment for chain {deployment.chain_id} in {path} "
            f"(TrainingLedger {existing.addresses.get('TrainingLedger', '?')}); pass --force to replace "
            f"it with TrainingLedger {deployment.address('TrainingLedger')}"
        )
    save_deployment(config, deployment)
    write_config(config.home, rpc_url=url)
    document = {
        "rpc_url": url,
        "chain_id": deployment.chain_id,
        "manifest": str(path),
        "source": source,
        "contracts": deployment.addresses,
        "deployed_block": deployment.deployed_block,
        "code_verified": True,
        "config": str(config.config_path),
    }
    if json:
        emit_json(document)
        return
    console.print(
        f"joined chain {deployment.chain_id} at {url}: this build's contracts verified; manifest "
        f"{path}, RPC URL kept in {config.config_path}"
    )
    emit_table("contracts", ["name", "address"], [[n, a] for n, a in deployment.addresses.items()])


def _existing(path: Path) -> Deployment | None:
    from ledger.deploy import Deployment
    from ledger.errors import ConfigurationError

    try:
        return Deployment.from_dict(jsonlib.loads(path.read_text()))
    except (OSError, ValueError, ConfigurationError):
        return None


@app.command()
@user_errors
def status(json: JsonFlag = False) -> None:
    """The network this home uses: RPC URL (and where it is set), chain id, contracts, checks."""
    from ledger.chain.client import resolve_rpc_url
    from ledger.chain.transport import NO_RETRY, Transport, make_provider
    from ledger.deploy import load_deployment, manifest_path, verify_build
    from ledger.errors import LedgerError

    config = settings()
    url = resolve_rpc_url(config)
    document: dict[str, Any] = {
        "rpc_url": url,
        "rpc_url_from": config.rpc_url_source(),
        "config": str(config.config_path),
        "reachable": False,
        "chain_id": None,
        "block_number": None,
        "manifest": None,
        "contracts": {},
        "deployed_block": None,
        "verified": False,
        "problem": None,
    }
    transport = Transport(make_provider(url, timeout_s=5.0), url, NO_RETRY)
    try:
        chain_id = int(transport.request("eth_chainId", []), 16)
        document.update(reachable=True, chain_id=chain_id)
        document["block_number"] = int(transport.request("eth_blockNumber", []), 16)
        document["manifest"] = str(manifest_path(config, chain_id))
        deployment = load_deployment(config, transport, chain_id)
        document.update(contracts=deployment.addresses, deployed_block=deployment.deployed_block)
        verify_build(transport, deployment)
        document["verified"] = True
    except LedgerError as error:
        document["problem"] = " ".join(str(error).split())
    if json:
        emit_json(document)
        return
    state = "[green]verified[/]" if document["verified"] else "[yellow]not verified[/]"
    console.print(
        f"network {state}  rpc {url} (from {document['rpc_url_from']})  "
        f"chain id {document['chain_id'] or '-'}  "
        f"block {document['block_number'] if document['block_number'] is not None else '-'}"
    )
    if document["problem"]:
        console.print(f"  {document['problem']}")
    if document["contracts"]:
        emit_table("contracts", ["name", "address"], [[n, a] for n, a in document["contracts"].items()])
