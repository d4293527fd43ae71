"""`sov train`: run a federated job with the embedded runner (devnet, local store, N nodes).

`fl_node` (and with it torch) is imported only when a job runs, so the CLI's other
commands start without it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger.chain.client import LedgerClient
from ledger.keys import Keystore
from ledger.settings import Settings
from ledger.store import open_store

from .common import JsonFlag, console, emit_json, emit_table, err_console, settings, user_errors
from .devnet import ensure_devnet

if TYPE_CHECKING:
    from fl_node.coordinator import JobState, RoundOutcome
    from fl_node.runner import Enrollment, Federation, JobRun, TrainConfig


@dataclass
class TrainingSession:
    """Everything a finished embedded job leaves behind, for reports and the demo."""

    rpc_url: str
    chain_id: int
    contracts: dict[str, str]
    federation: Federation
    enrollment: Enrollment
    run: JobRun


def run_training(
    config: Settings,
    train: TrainConfig,
    *,
    lab_alias: str = "dev0",
    show_progress: bool = True,
    on_dispatch: Callable[[int, Enrollment, Federation], None] | None = None,
    on_round: Callable[[RoundOutcome], None] | None = None,
) -> TrainingSession:
    """Devnet (or SOV_RPC_URL) -> enrollment of the hospitals -> job -> rounds, with progress bars."""
    from fl_node.runner import EmbeddedRunner, enroll, prepare

    if config.rpc_url is None:
        status, _ = ensure_devnet(config)
        config = config.model_copy(update={"rpc_url": status.rpc_url})
    client = LedgerClient.connect(config)
    lab = client.with_account(Keystore(config).account(lab_alias, chain_id=client.chain_id))
    federation = prepare(train)
    enrollment = enroll(lab, federation, train)
    store = open_store(config)
    runner = EmbeddedRunner(federation, enrollment, store, train)
    job = runner.create_job()
    progress = Progress(
        TextColumn("[bold]job {task.fields[job]}[/] round"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err_console.get(),
        disable=not show_progress,
        transient=False,
    )

    def dispatched(round_number: int) -> None:
        if on_dispatch is not None:
            on_dispatch(round_number, enrollment, federation)

    with progress:
        task = progress.add_task("rounds", total=train.rounds, job=job.job_id, status="training")

        def finished(outcome: RoundOutcome) -> None:
            accuracy = outcome.metrics.get("accuracy")
            note = f"acc {accuracy:.3f}" if accuracy is not None else ""
            refused = len(outcome.refused)
            progress.update(
                task,
                advance=1,
                status=f"{note}  {len(outcome.participants)} node(s)"
                + (f", {refused} refused" if refused else ""),
            )
            if on_round is not None:
                on_round(outcome)

        run = runner.run(job, on_round=finished, on_dispatch=dispatched)
    return TrainingSession(
        rpc_url=str(config.rpc_url),
        chain_id=lab.chain_id,
        contracts=dict(lab.deployment.addresses),
        federation=federation,
        enrollment=enrollment,
        run=run,
    )


def round_document(outcome: RoundOutcome) -> dict[str, Any]:
    """One round as JSON: dataset ids as decimal strings (uint256 exceeds JSON numbers)."""
    return {
        "round": outcome.round_number,
        "model_digest": "0x" + outcome.model_digest.hex(),
        "model_cid": outcome.model_cid,
        "manifest_cid": outcome.manifest_cid,
        "participants": [str(d) for d in outcome.participants],
        "update_cids": {str(d): cid for d, cid in sorted(outcome.update_cids.items())},
        "refused": {str(d): reason for d, reason in outcome.refused.items()},
        "recomputed_without": [str(d) for d in outcome.recomputed_without],
        "block_number": outcome.block_number,
        "metrics": outcome.metrics,
    }


def job_document(session: TrainingSession) -> dict[str, Any]:
    """The job as JSON for `sov train --json` and `sov demo --json`."""
    job: JobState = session.run.job
    return {
        "rpc_url": session.rpc_url,
        "chain_id": session.chain_id,
        "contracts": session.contracts,
        "job_id": job.job_id,
        "datasets": [str(d) for d in job.job_datasets],
        "spec_digest": "0x" + job.spec.spec_digest().hex(),
        "rounds": [round_document(o) for o in session.run.rounds],
        "final_model_cid": job.last_model_cid,
        "final_model_digest": "0x" + job.last_digest.hex(),
    }


def print_rounds(session: TrainingSession) -> None:
    """The rounds as a table for people."""
    emit_table(
        f"job {session.run.job.job_id}: {len(session.run.rounds)} round(s) committed",
        ["round", "accuracy", "participants", "refused", "model digest", "manifest CID"],
        [
            [
                o.round_number,
                f"{o.metrics.get('accuracy', float('nan')):.3f}",
                len(o.participants),
                "; ".join(f"{d:#x}"[:10] + "…: " + r.split(":")[0] for d, r in o.refused.items()) or "-",
                "0x" + o.model_digest.hex()[:12] + "…",
                o.manifest_cid[:16] + "…",
            ]
            for o in session.run.rounds
        ],
    )


def _load_job_file(path: Path) -> dict[str, Any]:
    from fl_node.runner import TrainConfig

    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None
    table = raw.get("job", raw)
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"{path}: unknown job setting(s) {unknown}; valid: {sorted(known)}")
    return dict(table)


@user_errors
def train(
    data: Annotated[
        str, typer.Option(help="breast_cancer, digits, or a path to a CSV file")
    ] = "breast_cancer",
    label: Annotated[str | None, typer.Option(help="the label column of a CSV")] = None,
    nodes: Annotated[int, typer.Option(min=1, max=64, help="number of data-owner nodes")] = 4,
    rounds: Annotated[int, typer.Option(min=1, max=1000, help="rounds to run")] = 5,
    partition: Annotated[str, typer.Option(help="iid, dirichlet, dirichlet(0.3), dominant")] = "iid",
    seed: Annotated[int, typer.Option(help="seed of the split, the partitions and the training")] = 0,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="a TOML job file ([job] table)")
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Run a federated job: hospitals register their partitions, grant the lab, nodes train, rounds commit."""
    from fl_node.runner import TrainConfig

    options: dict[str, Any] = {
        "data": data,
        "label": label,
        "nodes": nodes,
        "rounds": rounds,
        "partition": partition,
        "seed": seed,
    }
    if config_file is not None:
        options.update(_load_job_file(config_file))
    session = run_training(settings(), TrainConfig(**options), show_progress=not json)
    if json:
        emit_json(job_document(session))
        return
    print_rounds(session)
    console.print(
        f"final model {session.run.job.last_model_cid}  "
        f"(audit it: sov audit {session.run.job.last_model_cid})"
    )
