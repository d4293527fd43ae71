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
    from eth_account.signers.local import LocalAccount

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


@dataclass(frozen=True)
class RegisteredData:
    """`sov train --datasets`: files the hospitals registered, and how to prepare them."""

    files: list[Path]
    spec_file: Path | None = None
    eval_file: Path | None = None


def run_training(
    config: Settings,
    train: TrainConfig,
    *,
    lab_alias: str = "dev0",
    registered: RegisteredData | None = None,
    show_progress: bool = True,
    on_dispatch: Callable[[int, Enrollment, Federation], None] | None = None,
    on_round: Callable[[RoundOutcome], None] | None = None,
) -> TrainingSession:
    """Devnet (or SOV_RPC_URL) -> enrollment of the hospitals -> job -> rounds, with progress bars.

    The lab signs as `lab_alias` (a keystore alias; devnet aliases only on a devnet). Without
    `registered` the hospitals are devnet accounts that register partitions of `train.data`
    (the demo; refused off a devnet); with it, the registered files' owners must have their
    keystore accounts in this SOV_HOME and must have granted the lab, and nothing is
    registered or granted.
    """
    from fl_node.runner import EmbeddedRunner, enroll, enroll_registered, prepare

    if config.rpc_url is None:
        status, _ = ensure_devnet(config)
        config = config.model_copy(update={"rpc_url": status.rpc_url})
    client = LedgerClient.connect(config)
    keystore = Keystore(config)
    lab = client.with_account(keystore.account(lab_alias, chain_id=client.chain_id))
    if registered is None:
        federation = prepare(train)
        enrollment = enroll(lab, federation, train)
    else:
        federation = _registered_federation(registered, train)
        aliases = {keystore.address(alias).lower(): alias for alias in keystore.aliases()}

        def owner_key(address: str) -> LocalAccount | None:
            alias = aliases.get(address.lower())
            return None if alias is None else keystore.account(alias, chain_id=client.chain_id)

        enrollment = enroll_registered(lab, federation, owner_key, train.purpose)
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


def _registered_federation(registered: RegisteredData, train: TrainConfig) -> Federation:
    from fl_node.data import draft_preprocessing
    from fl_node.runner import prepare_registered
    from fl_node.spec import default_spec

    from .job import load_spec

    for path in registered.files:
        if not path.is_file():
            raise FileNotFoundError(f"dataset file {path} does not exist")
    if registered.spec_file is not None:
        spec = load_spec(registered.spec_file)
    elif registered.files[0].suffix.lower() == ".npz":
        from fl_node.data import read_partition

        first = read_partition(registered.files[0])
        spec = default_spec(int(first.x.shape[1]), int(first.y.max()) + 1, seed=train.seed)
    else:
        if train.label is None:
            raise ValueError(
                "--label is needed to prepare tables (or give --spec with a [preprocessing] table)"
            )
        reference = registered.eval_file or registered.files[0]
        preprocessing = draft_preprocessing(reference, label=train.label)
        spec = default_spec(
            preprocessing.width, len(preprocessing.classes), seed=train.seed, preprocessing=preprocessing
        )
    return prepare_registered(registered.files, spec, label=train.label, eval_file=registered.eval_file)


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
    account: Annotated[
        str, typer.Option("--account", "-a", help="the lab's keystore alias (dev0 only on a devnet)")
    ] = "dev0",
    datasets: Annotated[
        str | None,
        typer.Option(
            help="registered files (comma-separated) whose owners' accounts are in this SOV_HOME and "
            "granted the lab; nothing is registered or granted"
        ),
    ] = None,
    spec: Annotated[
        Path | None, typer.Option(help="the job's spec (sov job spec) for --datasets tables")
    ] = None,
    eval_data: Annotated[Path | None, typer.Option(help="a held-out table for test metrics")] = None,
    json: JsonFlag = False,
) -> None:
    """Run a federated job on this machine: nodes gate, train and attest; rounds commit.

    Without --datasets, devnet hospitals register partitions of --data and grant the lab
    (a devnet only); with --datasets, the hospitals' own registered files and grants are used.
    """
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
    registered = None
    if datasets is not None:
        files = [Path(part.strip()) for part in datasets.split(",") if part.strip()]
        if not files:
            raise ValueError("--datasets needs at least one registered file")
        registered = RegisteredData(files, spec, eval_data)
    session = run_training(
        settings(), TrainConfig(**options), lab_alias=account, registered=registered, show_progress=not json
    )
    if json:
        emit_json(job_document(session))
        return
    print_rounds(session)
    console.print(
        f"final model {session.run.job.last_model_cid}  "
        f"(audit it: sov audit {session.run.job.last_model_cid})"
    )
