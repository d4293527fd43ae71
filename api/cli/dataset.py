"""`sov dataset register|show|list|retire|transfer`: dataset deeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.index import EventIndex, IndexedGrant
from ledger.purposes import purpose_name
from ledger.store import cid_of_file, content_root

from . import parse
from .chain import open_client
from .common import AccountOption, JsonFlag, console, emit_json, emit_table, settings, user_errors

app = typer.Typer(
    help="Dataset deeds: register a content hash, show, list, retire, transfer.", no_args_is_help=True
)


@app.command()
@user_errors
def register(
    path: Annotated[Path, typer.Argument(help="the dataset file; only its content hash goes on-chain")],
    uri: Annotated[str, typer.Option(help="where the owner describes the dataset")] = "",
    name: Annotated[str, typer.Option(help="a label kept in the URI when no --uri is given")] = "",
    parent: Annotated[str | None, typer.Option(help="the dataset this is a new version of")] = None,
    account: AccountOption = "dev1",
    json: JsonFlag = False,
) -> None:
    """Register a dataset: computes its CIDv1 locally (the data is not uploaded) and mints its deed."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file")
    cid = cid_of_file(path)
    client = open_client(settings(), account)
    parent_id = parse.dataset_id(parent) if parent else 0
    dataset_id, receipt = client.register_dataset(
        content_root(cid), parent_id, uri or (f"name:{name}" if name else "")
    )
    document = {
        "dataset_id": str(dataset_id),
        "dataset_id_hex": f"{dataset_id:#066x}",
        "cid": cid,
        "owner": client.address,
        "parent_id": str(parent_id),
        "tx_hash": receipt.tx_hash,
        "block_number": receipt.block_number,
        "gas_used": receipt.gas_used,
    }
    if json:
        emit_json(document)
    else:
        console.print(f"registered dataset {dataset_id:#066x} (CID {cid}) to {client.address}")


@app.command()
@user_errors
def show(
    dataset: Annotated[str, typer.Argument(help="dataset id, 0x content root or CID")], json: JsonFlag = False
) -> None:
    """Owner, retirement, parent and grants of one dataset."""
    config = settings()
    client = open_client(config)
    dataset_id = parse.dataset_id(dataset)
    state = client.dataset_state(dataset_id)
    if not state.registered:
        raise LookupError(f"dataset {dataset_id:#066x} is not registered on chain {client.chain_id}")
    index = EventIndex(config, client)
    index.sync()
    record = index.dataset(dataset_id)
    grants = index.grants(dataset_id=dataset_id)
    rows = [_grant_row(g) for g in grants]
    document: dict[str, Any] = {
        "dataset_id": str(dataset_id),
        "dataset_id_hex": f"{dataset_id:#066x}",
        "owner": state.owner,
        "epoch": state.epoch,
        "retired": state.retired,
        "parent_id": str(record.parent_id),
        "uri": record.uri,
        "registered_block": record.block_number,
        "grants": rows,
    }
    if json:
        emit_json(document)
        return
    console.print(
        f"dataset {dataset_id:#066x}\n  owner {state.owner}  retired {state.retired}  "
        f"registered at block {record.block_number}  uri {record.uri or '-'}"
    )
    emit_table(
        "grants",
        ["grantee", "purpose", "not before", "expires", "revoked"],
        [[g["grantee"], g["purpose"], g["not_before"], g["expires_at"], g["revoked"]] for g in rows],
    )


def _grant_row(grant: IndexedGrant) -> dict[str, object]:
    return {
        "grantee": grant.grantee,
        "purpose": purpose_name(grant.purpose),
        "not_before": parse.iso(grant.not_before),
        "expires_at": parse.iso(grant.expires_at),
        "revoked": grant.revoked,
    }


@app.command("list")
@user_errors
def list_(
    owner: Annotated[str | None, typer.Option(help="only datasets this address owns")] = None,
    json: JsonFlag = False,
) -> None:
    """Every registered dataset (from the event index, synced first)."""
    config = settings()
    client = open_client(config)
    index = EventIndex(config, client)
    index.sync()
    wanted = parse.address(owner, "owner") if owner else None
    listed: list[dict[str, Any]] = [
        {
            "dataset_id": str(d.dataset_id),
            "dataset_id_hex": f"{d.dataset_id:#066x}",
            "owner": d.owner,
            "retired": d.retired,
            "parent_id": str(d.parent_id),
            "uri": d.uri,
            "block_number": d.block_number,
        }
        for d in index.datasets()
        if wanted is None or d.owner.lower() == wanted.lower()
    ]
    if json:
        emit_json(listed)
    else:
        emit_table(
            f"{len(listed)} dataset(s)",
            ["dataset id", "owner", "retired", "block", "uri"],
            [
                [r["dataset_id_hex"][:18] + "...", r["owner"], r["retired"], r["block_number"], r["uri"]]
                for r in listed
            ],
        )


@app.command()
@user_errors
def retire(
    dataset: Annotated[str, typer.Argument(help="dataset id, 0x content root or CID")],
    account: AccountOption = "dev1",
    json: JsonFlag = False,
) -> None:
    """Withdraw consent, irreversibly: no grant on the dataset authorises from this block on."""
    client = open_client(settings(), account)
    dataset_id = parse.dataset_id(dataset)
    receipt = client.retire_dataset(dataset_id)
    if json:
        emit_json(
            {
                "dataset_id": str(dataset_id),
                "retired": True,
                "tx_hash": receipt.tx_hash,
                "block_number": receipt.block_number,
            }
        )
    else:
        console.print(f"dataset {dataset_id:#066x} retired at block {receipt.block_number}")


@app.command()
@user_errors
def transfer(
    dataset: Annotated[str, typer.Argument(help="dataset id, 0x content root or CID")],
    to: Annotated[str, typer.Argument(help="the new owner's address")],
    account: AccountOption = "dev1",
    json: JsonFlag = False,
) -> None:
    """Hand the deed to another owner. Grants issued before the transfer stop authorising."""
    client = open_client(settings(), account)
    dataset_id = parse.dataset_id(dataset)
    receipt = client.transfer_dataset(dataset_id, parse.address(to, "new owner"))
    if json:
        emit_json({"dataset_id": str(dataset_id), "owner": parse.address(to), "tx_hash": receipt.tx_hash})
    else:
        console.print(f"dataset {dataset_id:#066x} now belongs to {parse.address(to)}")
