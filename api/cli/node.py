"""`sov node run|status`: the hospital's side of a federation, on the hospital's own machine.

`sov node run` starts the hospital's Flower SuperNode in hospital mode (only the ClientApp
installed here runs, behind the ledger gate; see `fl_node.flower.hospital`) for the one
file the hospital registered with `sov dataset register`. Before anything starts it checks
on-chain that this very file's CID is a registered deed held by the node's account (or by
the EIP-1271 wallet given with `--owner-wallet`), and refuses to start otherwise.

`sov node status` shows what the node decided in each round and why: the executor's gate
appends every decision to `$SOV_HOME/node/decisions.jsonl`.

Flower (and torch) are imported by the node's child processes, never by this module.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
import tomllib
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from ledger.errors import LedgerError
from ledger.settings import Settings
from ledger.store import cid_of_file, content_root

from . import parse
from .chain import open_client
from .common import JsonFlag, console, emit_json, emit_table, err_console, settings, user_errors

app = typer.Typer(
    help="The hospital's node: run its Flower SuperNode behind the ledger gate, see what it decided.",
    no_args_is_help=True,
)

NODE_TABLE_KEYS = ("data", "label", "account", "superlink", "owner-wallet")
TABLE_SUFFIXES = (".csv", ".parquet", ".npz")


class NodeStartRefusedError(LedgerError, PermissionError):
    """The node will not start: its file is not a deed its account holds, or its settings do not fit."""


def node_dir(config: Settings) -> Path:
    """Where the node keeps its state: decisions, logs, the SuperExec secret."""
    return config.home / "node"


def _load_node_file(path: Path) -> dict[str, str]:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"node config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None
    table = raw.get("node", raw)
    unknown = sorted(set(table) - set(NODE_TABLE_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown node setting(s) {unknown}; valid: {list(NODE_TABLE_KEYS)}")
    bad = sorted(key for key, value in table.items() if not isinstance(value, str))
    if bad:
        raise ValueError(f"{path}: node setting(s) {bad} must be strings")
    return dict(table)


def check_node_file(config: Settings, data: Path, account: str, owner_wallet: str | None) -> dict[str, Any]:
    """What the node will serve, checked on-chain: raises `NodeStartRefusedError` unless the file's
    deed is registered and held by `account` (or `owner_wallet`)."""
    if not data.is_file():
        raise FileNotFoundError(f"data file {data} does not exist")
    if data.suffix.lower() not in TABLE_SUFFIXES:
        raise ValueError(f"--data must be a {', '.join(TABLE_SUFFIXES)} file, got {data.name}")
    client = open_client(config, account)
    cid = cid_of_file(data)
    dataset_id = int.from_bytes(content_root(cid), "big")
    state = client.dataset_state(dataset_id)
    facts: dict[str, Any] = {
        "data": str(data.resolve()),
        "cid": cid,
        "dataset_id": f"{dataset_id:#066x}",
        "account": account,
        "address": client.address,
        "chain_id": client.chain_id,
        "owner_wallet": owner_wallet,
    }
    if not state.registered:
        raise NodeStartRefusedError(
            f"{data} (CID {cid}, dataset {dataset_id:#066x}) is not registered on chain {client.chain_id}; "
            f"the node serves only the very file its owner registered: "
            f"sov dataset register {data} --account {account}"
        )
    holders = {str(client.address).lower()} | ({owner_wallet.lower()} if owner_wallet else set())
    if state.owner.lower() not in holders:
        mine = f"{client.address}" + (f" or its wallet {owner_wallet}" if owner_wallet else "")
        raise NodeStartRefusedError(
            f"{data} (dataset {dataset_id:#066x}) is registered to {state.owner}, not to account "
            f"{account!r} ({mine}); a node serves only a dataset its own account holds"
        )
    if state.retired:
        raise NodeStartRefusedError(f"dataset {dataset_id:#066x} ({data}) was retired by its owner")
    return facts


def _check_label(data: Path, label: str | None) -> None:
    if data.suffix.lower() == ".npz":
        return
    if not label:
        raise ValueError(f"--label is needed for a table ({data.name}): the name of its label column")
    from fl_node.data import read_table

    header, _ = read_table(data)
    if label not in header:
        raise ValueError(f"{data} has no column {label!r}; its columns are: {', '.join(header)}")


@app.command()
@user_errors
def run(
    data: Annotated[
        Path | None, typer.Option(help="the registered file (.csv, .parquet or .npz) this node serves")
    ] = None,
    label: Annotated[str | None, typer.Option(help="the label column of a table")] = None,
    account: Annotated[
        str | None, typer.Option("--account", "-a", help="keystore alias of the owner")
    ] = None,
    superlink: Annotated[str | None, typer.Option(help="the lab's SuperLink Fleet API, HOST:PORT")] = None,
    owner_wallet: Annotated[
        str | None, typer.Option(help="the EIP-1271 wallet holding the deed, when not the account itself")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="a TOML file ([node] table: data, label, account, ...)")
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="check the file and deed, then exit")] = False,
    json: JsonFlag = False,
) -> None:
    """Run the hospital's SuperNode (installed ClientApp, ledger gate) for its registered file."""
    options: dict[str, str] = _load_node_file(config_file) if config_file is not None else {}
    given = {"data": data, "label": label, "account": account, "superlink": superlink}
    given["owner-wallet"] = owner_wallet
    for key, value in given.items():
        if value is not None:
            options[key] = str(value)
    missing = [f"--{key}" for key in ("data", "account", "superlink") if not options.get(key)]
    if missing and not (check and "--superlink" in missing and len(missing) == 1):
        raise ValueError(f"sov node run needs {', '.join(missing)} (or a --config file with them)")
    config = settings()
    path = Path(options["data"]).expanduser()
    wallet = parse.address(options["owner-wallet"], "--owner-wallet") if options.get("owner-wallet") else None
    facts = check_node_file(config, path, options["account"], wallet)
    _check_label(path, options.get("label"))
    if options.get("superlink"):
        from fl_node.flower.site_process import parse_address

        parse_address(options["superlink"], "--superlink")
    if check:
        if json:
            emit_json({"ok": True, **facts})
        else:
            console.print(f"ok: {path} is dataset {facts['dataset_id']}, held by {facts['address']}")
        return
    _serve(config, options, facts, json=json)


def _serve(config: Settings, options: dict[str, str], facts: dict[str, Any], *, json: bool) -> None:
    from fl_node.flower.site_process import PartyProcesses, start_hospital_node

    state_dir = node_dir(config)
    node_config: dict[str, str | int | float | bool] = {
        "sov-home": str(config.home.resolve()),
        "rpc-url": _rpc_url(config),
        "account": options["account"],
        "data": facts["data"],
    }
    if options.get("label"):
        node_config["label"] = options["label"]
    if facts["owner_wallet"]:
        node_config["owner-wallet"] = facts["owner_wallet"]
    processes = PartyProcesses(state_dir)
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        start_hospital_node(processes, superlink=options["superlink"], node_config=node_config)
        status = {
            **facts,
            "superlink": options["superlink"],
            "label": options.get("label"),
            "pid": os.getpid(),
            "started": dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds"),
            "logs": str(state_dir),
        }
        (state_dir / "node.json").write_text(jsonlib_dumps(status))
        if json:
            emit_json(status)
        else:
            err_console.print(
                f"node for dataset {facts['dataset_id']} ({Path(facts['data']).name}) -> SuperLink "
                f"{options['superlink']}; logs in {state_dir}; see `sov node status`",
                highlight=False,
            )
        while not stopping:
            ended = processes.exited()
            if ended is not None:
                name, code = ended
                raise NodeStartRefusedError(f"the node's {name} exited ({code}): {processes.log(name, 1500)}")
            time.sleep(0.5)
    finally:
        processes.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def jsonlib_dumps(value: Any) -> str:
    """Indented, sorted JSON with a final newline."""
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def _rpc_url(config: Settings) -> str:
    from ledger.chain.client import resolve_rpc_url

    return str(resolve_rpc_url(config))


def read_decisions(path: Path) -> list[dict[str, Any]]:
    """The decisions a node logged, oldest first (a torn last line is skipped)."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            found.append(entry)
    return found


def _running(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@app.command()
@user_errors
def status(json: JsonFlag = False) -> None:
    """What this node serves and what it decided in each round (trained or refused, and why)."""
    config = settings()
    state_dir = node_dir(config)
    node_file = state_dir / "node.json"
    node = jsonlib_loads(node_file) if node_file.exists() else {}
    decisions = read_decisions(state_dir / "decisions.jsonl")
    document = {"node": node, "running": _running(node.get("pid")), "decisions": decisions}
    if json:
        emit_json(document)
        return
    if node:
        console.print(
            f"node for dataset {node.get('dataset_id')} ({node.get('data')}), account {node.get('account')}, "
            f"SuperLink {node.get('superlink')}: {'running' if document['running'] else 'not running'}",
            highlight=False,
        )
    else:
        console.print(f"no node has run with SOV_HOME={config.home} (`sov node run` starts one)")
    emit_table(
        f"{len(decisions)} decision(s)",
        ["time", "job", "round", "decision", "why / update"],
        [
            [
                d.get("time", "?"),
                d.get("job_id", "?"),
                d.get("round", "?"),
                d.get("decision", "?"),
                _why(d),
            ]
            for d in decisions
        ],
    )


def _why(decision: dict[str, Any]) -> str:
    if decision.get("decision") == "refused":
        return f"{decision.get('reason')}: {decision.get('message')}"
    if decision.get("decision") == "trained":
        return f"{decision.get('num_examples')} examples, update {decision.get('update_digest')}"
    return str(decision.get("message", ""))


def jsonlib_loads(path: Path) -> dict[str, Any]:
    """A JSON object from `path` ({} when it holds something else)."""
    try:
        value = json.loads(path.read_text())
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
