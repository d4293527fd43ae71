"""`sov dataset register|show|list|retire|transfer`: dataset deeds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import parse
from .chain import open_client
from .common import (
    AccountOption,
    JsonFlag,
    YesFlag,
    confirm,
    console,
    emit_json,
    emit_table,
    settings,
    user_errors,
)

if TYPE_CHECKING:
    from ledger.chain.client import LedgerClient
    from ledger.index import IndexedGrant

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
    from ledger.store import cid_of_file, content_root

    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    if not path.is_file():
        raise IsADirectoryError(21, "Is a directory", str(path))
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
    from ledger.index import EventIndex

    dataset_id = parse.dataset_id(dataset)
    config = settings()
    client = open_client(config)
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
    from ledger.purposes import purpose_name

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
    from ledger.index import EventIndex

    wanted = parse.address(owner, "owner") if owner else None
    config = settings()
    client = open_client(config)
    index = EventIndex(config, client)
    index.sync()
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
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Withdraw consent, irreversibly: no grant on the dataset authorises from this block on."""
    dataset_id = parse.dataset_id(dataset)
    client = open_client(settings(), account)
    _check_owner(client, dataset_id, "retire")
    confirm(
        f"Retire dataset {dataset_id:#066x}? No grant on it will authorise again; this cannot be undone.",
        yes,
        json_output=json,
    )
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
    yes: YesFlag = False,
    json: JsonFlag = False,
) -> None:
    """Hand the deed to another owner. Grants issued before the transfer stop authorising."""
    dataset_id = parse.dataset_id(dataset)
    new_owner = parse.address(to, "new owner")
    client = open_client(settings(), account)
    _check_owner(client, dataset_id, "transfer")
    confirm(
        f"Transfer dataset {dataset_id:#066x} to {new_owner}? Only the new owner can give it back, "
        "and every grant issued so far stops authorising.",
        yes,
        json_output=json,
    )
    receipt = client.transfer_dataset(dataset_id, new_owner)
    if json:
        emit_json({"dataset_id": str(dataset_id), "owner": parse.address(to), "tx_hash": receipt.tx_hash})
    else:
        console.print(f"dataset {dataset_id:#066x} now belongs to {parse.address(to)}")


def _check_owner(client: LedgerClient, dataset_id: int, action: str) -> None:
    """Refuses before asking when the dataset is unknown (or, to retire, retired already).

    The contract decides the rest (who may act) and its revert is reported as such.
    """
    state = client.dataset_state(dataset_id)
    if not state.registered:
        raise LookupError(f"dataset {dataset_id:#066x} is not registered on chain {client.chain_id}")
    if action == "retire" and state.retired:
        raise ValueError(f"dataset {dataset_id:#066x} is already retired; there is nothing to {action}")
