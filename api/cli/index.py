"""`sov index sync|rebuild|status`: the SQLite event index (a cache; the chain is the truth)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from .chain import open_client
from .common import JsonFlag, console, emit_json, settings, user_errors

if TYPE_CHECKING:
    from ledger.index import EventIndex

app = typer.Typer(
    help="The event index: sync new events, or rebuild it from the chain.", no_args_is_help=True
)


def _open() -> EventIndex:
    from ledger.index import EventIndex

    config = settings()
    return EventIndex(config, open_client(config))


@app.command()
@user_errors
def sync(json: JsonFlag = False) -> None:
    """Index the events since the last sync (resumes after a crash, rewinds on a reorg)."""
    index = _open()
    added = index.sync()
    _report(index, {"new_events": added}, json)


@app.command()
@user_errors
def rebuild(json: JsonFlag = False) -> None:
    """Drop the index and recreate it from the chain."""
    index = _open()
    events = index.rebuild()
    _report(index, {"events": events}, json)


@app.command()
@user_errors
def status(json: JsonFlag = False) -> None:
    """Where the index is and up to which block it is synced."""
    _report(_open(), {}, json)


def _report(index: EventIndex, extra: dict[str, int], json: bool) -> None:
    document = {
        "path": str(index.path),
        "chain_id": index.chain_id,
        "synced_block": index.synced_block(),
        **extra,
    }
    if json:
        emit_json(document)
    else:
        console.print(" ".join(f"{key} {value}" for key, value in document.items()))
