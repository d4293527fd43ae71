"""`sov audit TARGET` and `sov impact`: verify a model's provenance; list what depends on a dataset or grant.

Both exit 0 only when every check passed, so scripts can gate on them. `sov audit` prints one
of three verdicts: VERIFIED (exit 0), FAILED (a check failed; exit 1) or NOT VERIFIED (no
check failed but some could not be made: the lab did not hand over a round's update bytes,
or the RPC node keeps no state at the rounds' blocks; exit 1). Every fact comes from the
chain (logs and views at each round's block); the local index is only compared with it.
"""

from __future__ import annotations

import json as jsonlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from . import parse
from .chain import open_client
from .common import JsonFlag, console, emit_json, fail, settings, user_errors


class AuditFormat(StrEnum):
    """Renderings of an audit report."""

    table = "table"
    json = "json"
    prov = "prov"
    html = "html"


TargetArg = Annotated[
    str, typer.Argument(help="a model CID, a model file, a model digest (0x...) or a job id")
]
FormatOption = Annotated[
    AuditFormat, typer.Option("--format", "-f", help="table (default), json, prov (W3C PROV-JSON) or html")
]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="write the json/prov/html document to this file")
]
AllOption = Annotated[bool, typer.Option("--all", help="list every check in the table, not only failures")]
NoChainOption = Annotated[
    bool,
    typer.Option(
        "--no-historical-calls",
        "--index-only",
        help="do not ask the contracts at each round's block (faster; those checks are then reported "
        "'not checked' and the verdict is NOT VERIFIED)",
    ),
]


@user_errors
def audit(
    target: TargetArg,
    json: JsonFlag = False,
    format: FormatOption = AuditFormat.table,
    output: OutputOption = None,
    all_checks: AllOption = False,
    index_only: NoChainOption = False,
) -> None:
    """Rebuild a model's lineage from the chain and the content store, and verify every hash,
    signature, grant and aggregate. Exit status 0 only when VERIFIED (every check passed);
    1 when FAILED or NOT VERIFIED (some check could not be made)."""
    from ledger.audit import audit as run_audit
    from ledger.index import EventIndex
    from ledger.store import open_store

    config = settings()
    client = open_client(config)
    store = open_store(config)
    with EventIndex(config, client) as index:
        report = run_audit(target, client=client, index=index, store=store, chain_checks=not index_only)
    chosen = AuditFormat.json if json else format
    if chosen is AuditFormat.table:
        report.print(console.get(), all_checks=all_checks)
    else:
        if chosen is AuditFormat.html:
            text = report.to_html()
        else:
            document = report.to_json() if chosen is AuditFormat.json else report.to_prov()
            text = jsonlib.dumps(document, indent=2, sort_keys=True) + "\n"
        if output is not None:
            output.write_text(text, encoding="utf-8")
            console.print(f"wrote {chosen.value} report to {output}: {report.summary()}", highlight=False)
        else:
            sys.stdout.write(text)
    raise typer.Exit(code=report.exit_code)


def _parse_grant(text: str, dataset: str | None) -> tuple[int, str, str]:
    parts = (
        [part.strip() for part in text.split(":")]
        if text.count(":")
        else [part.strip() for part in text.split(",")]
    )
    if len(parts) == 2 and dataset is not None:
        return parse.dataset_id(dataset), parse.address(parts[0], "grantee"), parts[1]
    if len(parts) == 3:
        return parse.dataset_id(parts[0]), parse.address(parts[1], "grantee"), parts[2]
    raise fail(
        f"--grant {text!r}: give DATASET:GRANTEE:PURPOSE, or GRANTEE:PURPOSE together with --dataset "
        "(e.g. --grant 0x70997970C51812dc3A010C7d01b50e0d17dc79C8:ai-training)"
    )


@user_errors
def impact(
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="dataset id, 0x content root or CID")
    ] = None,
    grant: Annotated[
        str | None,
        typer.Option("--grant", "-g", help="DATASET:GRANTEE:PURPOSE (or GRANTEE:PURPOSE with --dataset)"),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Every model version that depends on a dataset (or one grant), and proof that none was
    built from it after its grant or consent ended. Exit status 0 only when none was."""
    from rich.table import Table

    from ledger.audit import impact as run_impact
    from ledger.index import EventIndex
    from ledger.store import open_store

    if dataset is None and grant is None:
        raise fail("give --dataset ID or --grant DATASET:GRANTEE:PURPOSE")
    config = settings()
    client = open_client(config)
    store = open_store(config)
    key = None if grant is None else _parse_grant(grant, dataset)
    dataset_id = parse.dataset_id(dataset) if dataset is not None else None
    with EventIndex(config, client) as index:
        report = run_impact(index=index, client=client, store=store, dataset_id=dataset_id, grant=key)
    if json:
        emit_json(report.to_json())
        raise typer.Exit(code=report.exit_code)
    table = Table(title=f"model versions depending on {report.subject()}")
    for column in (
        "job",
        "round",
        "block",
        "model digest",
        "model CID",
        "use",
        "grant at round",
        "after end",
        "verdict",
    ):
        table.add_column(column, overflow="fold")
    for v in report.versions:
        table.add_row(
            str(v.job_id),
            str(v.round),
            str(v.block_number),
            "0x" + v.model_digest.hex()[:16] + "…",
            v.model_cid or "?",
            "direct" if v.direct else "via earlier round",
            v.grant_status or "-",
            "; ".join(v.after_end) or "-",
            "[bold red]VIOLATION[/]" if v.violation else "[green]ok[/]",
        )
    console.print(table)
    for line in report.ends:
        console.print(f"  {line}", highlight=False)
    console.print(f"[bold {'green' if report.ok else 'red'}]{report.summary()}[/]", highlight=False)
    raise typer.Exit(code=report.exit_code)
