"""`sov store ...` and `sov cid`: put, get and move content by its CIDv1.

`app` is the `store` command group; `cid_command` is the top-level `sov cid PATH`.
The group reads `Settings` once, in its callback (or reuses the parent's), and every
command turns a `LedgerError` or an unreadable file into one line on stderr and exit 1.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import error_code, error_message, fail, is_user_error

if TYPE_CHECKING:
    from ledger.settings import Settings
    from ledger.store import ContentStore, ProgressCallback

app = typer.Typer(
    name="store",
    help="Content store: put, get, export and import content by CIDv1 (identical to Kubo's).",
    no_args_is_help=True,
)


@contextlib.contextmanager
def _user_errors(json_output: bool = False) -> Iterator[None]:
    """Turn expected failures into one clean line (and a JSON error with --json), exit 1."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if not is_user_error(exc):
            raise
        raise fail(error_message(exc), json_output=json_output, error_code=error_code(exc)) from None


def _settings(ctx: typer.Context) -> Settings:
    from ledger.settings import Settings

    obj = ctx.obj
    if isinstance(obj, Settings):
        return obj
    nested = getattr(obj, "settings", None)
    return nested if isinstance(nested, Settings) else Settings()


def _store(ctx: typer.Context) -> ContentStore:
    from ledger.store import open_store

    return open_store(_settings(ctx))


def _print_json(payload: dict[str, Any]) -> None:
    typer.echo(jsonlib.dumps(payload, indent=2))


def _describe(cid: str, size: int) -> dict[str, Any]:
    from ledger.store import content_root

    root = content_root(cid)
    return {
        "cid": cid,
        "size": size,
        "content_root": "0x" + root.hex(),
        "dataset_id": str(int.from_bytes(root)),
    }


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[Any]:
    """Write to a temporary file beside `path` and rename it into place only on success,
    so a failed command never leaves a partial file under the requested name."""
    directory = path.resolve().parent
    handle, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


# Hashing runs at a few hundred MiB/s: below this a bar would only flicker.
_PROGRESS_MIN_BYTES = 64 * 1024 * 1024


@contextlib.contextmanager
def _progress(path: Path, label: str) -> Iterator[ProgressCallback | None]:
    """A progress bar on stderr for a large file when stderr is a terminal, else nothing."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    try:
        total = path.stat().st_size
    except OSError:
        total = 0
    console = Console(stderr=True)
    if total < _PROGRESS_MIN_BYTES or not console.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{label} {path.name}", total=total)
        yield lambda done: bar.update(task, completed=done)


@app.callback()
def _group(ctx: typer.Context) -> None:
    """Content store commands; the backend comes from SOV_STORE (local or kubo)."""
    ctx.obj = _settings(ctx)


@app.command("put")
def put_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="file to store", dir_okay=False)],
    pin: Annotated[bool, typer.Option("--pin", help="pin the content after storing it")] = False,
    json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Store a file and print its CIDv1."""
    from ledger.store import put_path

    with _user_errors(json):
        store = _store(ctx)
        with _progress(path, "storing") as on_progress:
            cid = put_path(store, path, on_progress)
        if pin:
            store.pin(cid)
        size = path.stat().st_size
    if json:
        _print_json({**_describe(cid, size), "pinned": pin, "store": _settings(ctx).store})
    else:
        typer.echo(cid)


@app.command("get")
def get_command(
    ctx: typer.Context,
    cid: Annotated[str, typer.Argument(help="CIDv1 (base32) to read")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="write to this file instead of stdout", dir_okay=False),
    ] = None,
) -> None:
    """Write the verified bytes of CID to stdout (or -o FILE)."""
    with _user_errors():
        data = _store(ctx).get(cid)
        if output is None:
            stdout = sys.stdout.buffer
            stdout.write(data)
            stdout.flush()
        else:
            with _atomic_output(output) as out:
                out.write(data)


@app.command("export-car")
def export_car_command(
    ctx: typer.Context,
    cids: Annotated[list[str], typer.Argument(help="root CIDs to export")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CAR file to write", dir_okay=False)],
    json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Export the DAGs of one or more CIDs as a CARv1 file."""
    with _user_errors(json):
        with _atomic_output(output) as out:
            _store(ctx).export_car(cids, out)
        size = output.stat().st_size
    if json:
        _print_json({"roots": cids, "path": str(output), "bytes": size})
    else:
        typer.echo(f"wrote {size} bytes with {len(cids)} root(s) to {output}")


@app.command("import-car")
def import_car_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CARv1 file to import", dir_okay=False)],
    json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Import a CARv1 file (every block verified) and pin its roots."""
    with _user_errors(json), open(path, "rb") as src:
        roots = _store(ctx).import_car(src)
    if json:
        _print_json({"roots": roots})
    else:
        for root in roots:
            typer.echo(root)


def cid_command(
    path: Annotated[Path, typer.Argument(help="file to hash", dir_okay=False)],
    json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print the CIDv1 that `ipfs add --cid-version=1 --only-hash PATH` gives (nothing is stored)."""
    from ledger.store import cid_of_file

    with _user_errors(json):
        with _progress(path, "hashing") as on_progress:
            cid = cid_of_file(path, on_progress)
        size = path.stat().st_size
    if json:
        _print_json(_describe(cid, size))
    else:
        typer.echo(cid)
