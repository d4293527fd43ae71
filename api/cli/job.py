"""`sov job spec|create|run|status|export|superlink`: the lab's side of a federation.

The lab writes (or drafts, `sov job spec`) the job's spec: the model, the local training
and the preprocessing every hospital applies to its own table. `sov job create` anchors
the initial model and the spec in the lab's content store and creates the job on-chain
with the spec's digest. `sov job run` runs the job's rounds over a real Flower SuperLink
with the hospitals' SuperNodes: the ServerApp (`fl_node.flower.app`) resumes the job from
the chain (a job with rounds continues after its last committed round, so a round is
never committed twice) and stops when this command's process is gone. `sov job status`
reads the rounds from the chain; `sov job export` writes one CAR with everything an
auditor needs (spec, initial model, every manifest, model and update).

fl_node (and torch, flwr) are imported inside the commands that need them.
"""

from __future__ import annotations

import json as jsonlib
import os
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ledger.errors import LedgerError
from ledger.purposes import PURPOSES, purpose_id, purpose_name
from ledger.store.cid import CID

from . import parse
from .common import JsonFlag, console, emit_json, emit_table, err_console, settings, user_errors

if TYPE_CHECKING:
    from fl_node.spec import ModelSpec
    from ledger.chain.client import LedgerClient
    from ledger.settings import Settings

# The chain client (web3) and the content store load when a command runs, not for `--help`.


def _connect(config: Settings) -> LedgerClient:
    from ledger.chain.client import LedgerClient

    return LedgerClient.connect(config)


def open_store(config: Settings) -> Any:
    """The content store of `config` (imported on first use)."""
    from ledger.store import open_store as open_content_store

    return open_content_store(config)


def open_client(config: Settings, account: str | None = None) -> LedgerClient:
    """A client signing as `account` (see `api.cli.chain.open_client`)."""
    from .chain import open_client as open_chain_client

    return open_chain_client(config, account)


def resolve_rpc_url(config: Settings) -> str:
    """The RPC URL commands use (see `ledger.chain.client.resolve_rpc_url`)."""
    from ledger.chain.client import resolve_rpc_url as resolve

    return resolve(config)


app = typer.Typer(
    help="The lab's jobs: draft a spec, create a job, run it over Flower, show it, export it.",
    no_args_is_help=True,
)

JobArg = Annotated[int, typer.Argument(help="the job id (sov job create prints it)", min=1)]
RAW_CODEC = 0x55
SUPERLINK_WAIT_S = 30.0
MODEL_KEYS = (
    "hidden",
    "activation",
    "dropout",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "proximal_mu",
    "local_epochs",
    "batch_size",
    "seed",
    "input_dim",
    "num_classes",
)


class JobFileError(LedgerError, ValueError):
    """A job spec file or a job's local record cannot be read, or does not fit the chain."""


class JobStoppedError(LedgerError, PermissionError):
    """`sov job run --stop-on-revocation`: a grant the job depends on stopped authorising it."""


# ----------------------------------------------------------------------------- spec files


def load_spec(path: Path) -> ModelSpec:
    """A job spec from TOML ([model] and [preprocessing]) or from ModelSpec JSON."""
    from pydantic import ValidationError

    from fl_node.spec import ModelSpec, PreprocessingSpec

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"spec file {path} does not exist") from None
    try:
        if path.suffix.lower() == ".json":
            return ModelSpec.from_json(text)
        raw = tomllib.loads(text)
        unknown = sorted(set(raw) - {"model", "preprocessing"})
        if unknown:
            raise JobFileError(f"{path}: unknown table(s) {unknown}; valid: [model], [preprocessing]")
        model = dict(raw.get("model", {}))
        bad = sorted(set(model) - set(MODEL_KEYS))
        if bad:
            raise JobFileError(f"{path}: unknown [model] setting(s) {bad}; valid: {list(MODEL_KEYS)}")
        preprocessing = None
        if "preprocessing" in raw:
            preprocessing = PreprocessingSpec.model_validate(raw["preprocessing"])
            model.setdefault("input_dim", preprocessing.width)
            model.setdefault("num_classes", len(preprocessing.classes))
        if "hidden" in model:
            model["hidden"] = tuple(model["hidden"])
        return ModelSpec(**model, preprocessing=preprocessing)
    except tomllib.TOMLDecodeError as error:
        raise JobFileError(f"{path} is not valid TOML: {error}") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in error.errors()
        )
        raise JobFileError(f"{path}: {problems}") from None


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return jsonlib.dumps(value, ensure_ascii=False)


def spec_toml(spec: ModelSpec) -> str:
    """The spec as the TOML `load_spec` reads (same spec, same digest)."""
    document = spec.model_dump(mode="json")
    preprocessing = document.pop("preprocessing")
    lines = ["# The job's spec: its sha256 (canonical JSON) is the job's on-chain spec digest.", "[model]"]
    lines += [f"{key} = {_toml(value)}" for key, value in document.items()]
    if preprocessing is not None:
        lines += [
            "",
            "# How every hospital prepares its own table (scaling, encoding, imputation).",
            "[preprocessing]",
        ]
        lines += [f"label = {_toml(preprocessing['label'])}", f"classes = {_toml(preprocessing['classes'])}"]
        for column in preprocessing["columns"]:
            lines += ["", "[[preprocessing.columns]]"]
            lines += [f"{key} = {_toml(value)}" for key, value in column.items()]
    return "\n".join(lines) + "\n"


@app.command("spec")
@user_errors
def spec_command(
    reference: Annotated[Path, typer.Argument(help="a reference table (.csv/.parquet) the parties agree on")],
    label: Annotated[str, typer.Option(help="the label column")],
    output: Annotated[Path, typer.Option("--output", "-o", help="where to write the spec (TOML)")],
    hidden: Annotated[str, typer.Option(help="hidden layer widths, comma-separated")] = "32",
    local_epochs: Annotated[int, typer.Option(min=1, help="local epochs per round")] = 2,
    lr: Annotated[float, typer.Option(min=0.0, help="learning rate")] = 3e-3,
    seed: Annotated[int, typer.Option(min=0, help="seed of the initial weights and the rounds")] = 0,
    json: JsonFlag = False,
) -> None:
    """Draft a job spec: preprocessing constants fitted on a reference table, and the model recipe."""
    from fl_node.data import draft_preprocessing
    from fl_node.spec import ModelSpec

    try:
        widths = tuple(int(part) for part in hidden.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--hidden must be comma-separated integers, got {hidden!r}") from None
    preprocessing = draft_preprocessing(reference, label=label)
    spec = ModelSpec(
        input_dim=preprocessing.width,
        num_classes=len(preprocessing.classes),
        hidden=widths,
        local_epochs=local_epochs,
        lr=lr,
        seed=seed,
        preprocessing=preprocessing,
    )
    output.write_text(spec_toml(spec))
    digest = "0x" + spec.spec_digest().hex()
    if json:
        emit_json({"spec": str(output), "spec_digest": digest, "preprocessing": preprocessing.describe()})
    else:
        console.print(f"wrote {output}: spec digest {digest}; {preprocessing.describe()}", highlight=False)


# ----------------------------------------------------------------------------- the lab's job records


def _record_path(config: Settings, client: LedgerClient, job_id: int) -> Path:
    ledger = client.deployment.address("TrainingLedger").lower()
    return config.home / "jobs" / f"{client.chain_id}-{ledger}" / f"{job_id}.json"


def spec_cid(spec: ModelSpec) -> str:
    """The CID of the spec's canonical JSON: a raw block whose sha256 is the on-chain spec digest."""
    return str(CID(RAW_CODEC, spec.spec_digest()))


def job_spec(config: Settings, client: LedgerClient, job_id: int) -> tuple[ModelSpec, dict[str, Any]]:
    """The job's spec and the lab's record of it; the spec is checked against the on-chain digest."""
    from fl_node.spec import ModelSpec

    record_path = _record_path(config, client, job_id)
    job = client.get_job(job_id)
    if int(job.coordinator, 16) == 0:
        raise JobFileError(f"job {job_id} does not exist on chain {client.chain_id}")
    record: dict[str, Any] = {}
    if record_path.exists():
        record = jsonlib.loads(record_path.read_text())
        spec = ModelSpec.from_json(jsonlib.dumps(record["spec"]))
    else:
        cid = str(CID(RAW_CODEC, job.spec_digest))
        store = open_store(config)
        if not store.has(cid):
            raise JobFileError(
                f"job {job_id}: this SOV_HOME holds neither the job's record nor its spec {cid} "
                f"(spec digest 0x{job.spec_digest.hex()}); run it from the home that created it"
            )
        spec = ModelSpec.from_json(store.get(cid))
    if spec.spec_digest() != job.spec_digest:
        raise JobFileError(
            f"job {job_id}: the local spec hashes to 0x{spec.spec_digest().hex()}, the chain holds "
            f"0x{job.spec_digest.hex()}"
        )
    return spec, record


@app.command()
@user_errors
def create(
    datasets: Annotated[str, typer.Option(help="the job's dataset ids (or CIDs), comma-separated")],
    spec: Annotated[Path, typer.Option(help="the job's spec (TOML, see sov job spec; or JSON)")],
    account: Annotated[str, typer.Option("--account", "-a", help="the lab's keystore alias")],
    purpose: Annotated[str, typer.Option("--purpose", "-p", help=f"one of {', '.join(PURPOSES)}")] = (
        "ai-training"
    ),
    json: JsonFlag = False,
) -> None:
    """Create a job: anchor the initial model and the spec in the lab's store, then createJob on-chain."""
    from fl_node.coordinator import Coordinator
    from fl_node.model import initial_state

    model_spec = load_spec(spec)
    ids = sorted({parse.dataset_id(part) for part in datasets.split(",") if part.strip()})
    if not ids:
        raise ValueError("--datasets needs at least one dataset id")
    config = settings()
    client = open_client(config, account)
    unknown = [d for d, state in zip(ids, client.dataset_states(ids), strict=True) if not state.registered]
    if unknown:
        raise ValueError(
            f"dataset(s) {', '.join(f'{d:#066x}' for d in unknown)} are not registered on chain "
            f"{client.chain_id}; a job lists registered datasets only"
        )
    store = open_store(config)
    coordinator = Coordinator(client, store)
    state = coordinator.create_job(
        purpose=purpose_id(purpose),
        datasets=ids,
        spec=model_spec,
        initial_state=dict(initial_state(model_spec)),
        seed=model_spec.seed,
    )
    record = {
        "job_id": state.job_id,
        "chain_id": client.chain_id,
        "training_ledger": client.deployment.address("TrainingLedger"),
        "account": account,
        "purpose": purpose_name(state.purpose),
        "datasets": [f"{d:#066x}" for d in state.job_datasets],
        "spec": model_spec.model_dump(mode="json"),
        "spec_digest": "0x" + model_spec.spec_digest().hex(),
        "spec_cid": spec_cid(model_spec),
        "initial_model_cid": state.last_model_cid,
        "initial_model_digest": "0x" + state.last_digest.hex(),
    }
    path = _record_path(config, client, state.job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(jsonlib.dumps(record, indent=2, sort_keys=True) + "\n")
    if json:
        emit_json(record)
    else:
        console.print(
            f"job {state.job_id} created on chain {client.chain_id}: {len(ids)} dataset(s), purpose "
            f"'{record['purpose']}', spec {record['spec_digest']}",
            highlight=False,
        )


# ----------------------------------------------------------------------------- running a job


def _flower_home(work: Path, superlink: str) -> Path:
    home = work / "flwr-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "lab"\n\n[superlink.lab]\naddress = "{superlink}"\ninsecure = true\n'
    )
    return home


@app.command("run")
@user_errors
def run_command(
    job: JobArg,
    superlink: Annotated[str, typer.Option(help="the SuperLink, HOST:PORT (hospitals' nodes connect to it)")],
    rounds: Annotated[int, typer.Option(min=1, max=1000, help="run until the job has this many rounds")],
    account: Annotated[
        str | None, typer.Option("--account", "-a", help="the lab's alias (default: the one that created it)")
    ] = None,
    start_superlink: Annotated[
        bool, typer.Option("--start-superlink", help="start a SuperLink on HOST:PORT for this run")
    ] = False,
    min_nodes: Annotated[
        int | None, typer.Option(min=1, help="nodes to wait for each round (default: the job's datasets)")
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option(help="a table the lab evaluates each round's model on (job's preprocessing)"),
    ] = None,
    round_timeout: Annotated[int, typer.Option(min=1, help="seconds a round waits for nodes")] = 300,
    stop_on_revocation: Annotated[
        bool,
        typer.Option(
            "--stop-on-revocation",
            help="stop the whole job as soon as a grant it depends on is revoked (or a dataset is "
            "retired or transferred), instead of training on without that dataset",
        ),
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Run (or resume) a job over Flower until it has ROUNDS rounds; no round is committed twice."""
    from fl_node.flower.app import boot_id, process_start_ticks
    from fl_node.flower.federation import PROJECT_DIR, toml_value
    from fl_node.flower.site_process import PartyProcesses, answers, parse_address
    from fl_node.flower.site_process import start_superlink as spawn

    config = settings()
    client = _connect(config)
    model_spec, record = job_spec(config, client, job)
    lab_alias = account or record.get("account")
    if not lab_alias:
        raise ValueError(f"job {job}: no record of the lab's account here; pass --account")
    lab = open_client(config, lab_alias)
    chain_job = lab.get_job(job)
    if chain_job.coordinator.lower() != str(lab.address).lower():
        raise PermissionError(f"job {job} is coordinated by {chain_job.coordinator}, not by {lab.address}")
    if chain_job.last_round >= rounds:
        _finish(lab, job, rounds, json, note=f"job {job} already has {chain_job.last_round} round(s)")
        return
    revocations = _revocation_watch(lab, job, rounds) if stop_on_revocation else None
    host, port = parse_address(superlink, "--superlink")
    work = _record_path(config, lab, job).with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    processes = PartyProcesses(work)
    try:
        probe = "127.0.0.1" if host == "0.0.0.0" else host
        deadline = time.monotonic() + (0 if start_superlink else SUPERLINK_WAIT_S)
        while not answers(probe, port) and time.monotonic() < deadline:
            time.sleep(0.5)  # a SuperLink started a moment ago may not listen yet
        if start_superlink or not answers(probe, port):
            if not start_superlink:
                raise ConnectionError(
                    f"no SuperLink answers at {superlink}; start one "
                    f"(sov job superlink --address {superlink}) or pass --start-superlink"
                )
            spawn(processes, host=host, port=port)
        spec_path = work / "spec.json"
        spec_path.write_text(model_spec.model_dump_json())
        report_path = work / "report.json"
        run_config: dict[str, str | int] = {
            "sov-home": str(config.home.resolve()),
            "rpc-url": resolve_rpc_url(config),
            "account": lab_alias,
            "job-id": job,
            "until-round": rounds,
            "spec": str(spec_path),
            "seed": model_spec.seed,
            "min-nodes": min_nodes or len(record.get("datasets", [])) or 1,
            "round-timeout": round_timeout,
            "report": str(report_path),
            "lab-pid": os.getpid(),
            "lab-start": process_start_ticks(os.getpid()) or 0,
            "lab-boot-id": boot_id(),
        }
        if eval_data is not None:
            run_config["eval-data"] = str(eval_data.resolve())
        config_path = work / "run-config.toml"
        config_path.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in run_config.items()))
        processes.env = {
            "FLWR_HOME": str(_flower_home(work, f"{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"))
        }
        flwr = str(Path(sys.executable).parent / "flwr")
        process = processes.spawn(
            "flwr-run",
            [flwr, "run", str(PROJECT_DIR), "lab", "--stream", "--run-config", str(config_path)],
        )
        seen = chain_job.last_round
        if not json:
            err_console.print(
                f"job {job}: at round {seen}; running to round {rounds} over {superlink}", highlight=False
            )
        while process.poll() is None:
            if revocations is not None:
                revocations()
            now = lab.get_job(job).last_round
            if now != seen and not json:
                err_console.print(f"job {job}: round {now} committed", highlight=False)
            seen = now
            time.sleep(1.0)
        if process.returncode != 0:
            raise ConnectionError(
                f"flwr run exited with {process.returncode}: {processes.log('flwr-run', 2500)}"
            )
    finally:
        processes.stop()
    final = lab.get_job(job).last_round
    if final < rounds:
        raise ConnectionError(
            f"job {job} stopped at round {final} of {rounds} (see {work}/flwr-run.log and "
            f"{report_path}); run `sov job run {job}` again to continue"
        )
    _finish(lab, job, rounds, json, note=f"job {job}: {final} round(s) committed")


def _revocation_watch(lab: LedgerClient, job_id: int, rounds: int) -> Callable[[], None]:
    """A check that raises `JobStoppedError` once the job lost a grant it depends on.

    Refuses at once when a grant is already revoked (or its dataset retired or transferred);
    afterwards each call reads the new events (`ledger.events`) from the block after the first
    check, so a revocation is seen in the first poll after the block that carries it.
    """
    from ledger.chain.types import AuthorizationStatus
    from ledger.events import EventFeed, authority_losses

    assert lab.address is not None
    coordinator = lab.address
    chain_job = lab.get_job(job_id)
    datasets = _job_datasets(lab, job_id)
    feed = EventFeed(lab, types=("grant.revoked", "dataset.retired", "dataset.transferred"))
    feed.start_at_head()
    lost = {
        AuthorizationStatus.REVOKED: "the grant to {lab} was revoked",
        AuthorizationStatus.DATASET_RETIRED: "the dataset was retired",
        AuthorizationStatus.OWNER_CHANGED: "the deed changed hands (its grants ended)",
    }
    statuses = lab.authorization_statuses(datasets, coordinator, chain_job.purpose)
    for dataset, status in zip(datasets, statuses, strict=True):
        if status in lost:
            raise JobStoppedError(
                f"job {job_id} not started (--stop-on-revocation): on dataset {dataset:#066x} "
                + lost[status].format(lab=coordinator)
                + f" before this run; {chain_job.last_round} of {rounds} round(s) are committed"
            )

    def check() -> None:
        losses = authority_losses(
            feed.poll(), datasets=datasets, coordinator=coordinator, purpose=chain_job.purpose
        )
        if losses:
            done = lab.get_job(job_id).last_round
            raise JobStoppedError(
                f"job {job_id} stopped (--stop-on-revocation) at round {done} of {rounds}: "
                f"{losses[0].describe()}; the run's processes were stopped and it commits no further round"
            )

    return check


def _job_datasets(client: LedgerClient, job_id: int) -> list[int]:
    """The job's dataset ids, from its JobCreated log."""
    for event in client.get_logs(client.deployment.deployed_block):
        if event.name == "JobCreated" and int(event.args["jobId"]) == job_id:
            return [int(d) for d in event.args["datasets"]]
    raise JobFileError(f"job {job_id} has no JobCreated event on chain {client.chain_id}")


def _finish(client: LedgerClient, job_id: int, rounds: int, json: bool, *, note: str) -> None:
    document = job_document(client, job_id)
    if json:
        emit_json(document)
    else:
        console.print(note, highlight=False)


# ----------------------------------------------------------------------------- status and export


def committed_rounds(client: LedgerClient, job_id: int) -> list[dict[str, Any]]:
    """The job's committed rounds, in round order, as read from the chain's logs.

    A standard round's participants are its RoundCommitted's list. A large round (an open job's,
    committed in batches) has an empty list there: its participants are the RoundParticipantsAdded
    batches since the job's last abort, `participant_count` of them with hash chain
    `participants_hash` (its LargeRoundCommitted), which is how the event index and the audit
    rebuild them too.
    """
    rounds: dict[int, dict[str, Any]] = {}
    large: dict[int, dict[str, Any]] = {}
    pending: list[int] = []
    for event in client.get_logs(client.deployment.deployed_block):
        if event.args.get("jobId") != job_id:
            continue
        if event.name == "RoundCommitted":
            number = int(event.args["round"])
            rounds[number] = {
                "round": number,
                "model_digest": "0x" + bytes(event.args["modelDigest"]).hex(),
                "manifest_cid": str(event.args["manifestCid"]),
                "mode": "standard",
                "participant_count": len(event.args["participants"]),
                "participants": [f"{int(d):#066x}" for d in event.args["participants"]],
                "block_number": event.block_number,
            }
        elif event.name == "RoundParticipantsAdded":
            pending.extend(int(d) for d in event.args["participants"])
        elif event.name == "LargeRoundAborted":
            pending = []
        elif event.name == "LargeRoundCommitted":
            large[int(event.args["round"])] = {
                "mode": "large",
                "participant_count": int(event.args["participantCount"]),
                "participants_hash": "0x" + bytes(event.args["participantsHash"]).hex(),
                "participants": [f"{d:#066x}" for d in pending],
            }
            pending = []
    for number, committed in large.items():
        if number in rounds:
            rounds[number].update(committed)
    return [rounds[number] for number in sorted(rounds)]


def job_document(client: LedgerClient, job_id: int) -> dict[str, Any]:
    """The job as the chain has it: coordinator, purpose, spec digest, every committed round."""
    job = client.get_job(job_id)
    if int(job.coordinator, 16) == 0:
        raise JobFileError(f"job {job_id} does not exist on chain {client.chain_id}")
    return {
        "job_id": job_id,
        "chain_id": client.chain_id,
        "coordinator": job.coordinator,
        "purpose": purpose_name(job.purpose),
        "spec_digest": "0x" + job.spec_digest.hex(),
        "last_round": job.last_round,
        "last_digest": "0x" + job.last_digest.hex(),
        "rounds": committed_rounds(client, job_id),
    }


@app.command()
@user_errors
def status(job: JobArg, json: JsonFlag = False) -> None:
    """The job's committed rounds (from the chain) and, where this home ran it, who refused and why."""
    config = settings()
    client = _connect(config)
    document = job_document(client, job)
    report_path = _record_path(config, client, job).with_suffix("") / "report.json"
    refusals: dict[str, dict[str, str]] = {}
    if report_path.exists():
        for entry in jsonlib.loads(report_path.read_text()).get("rounds", []):
            if entry.get("refused"):
                refusals[str(entry["round"])] = entry["refused"]
    document["refused"] = refusals
    try:
        spec, _ = job_spec(config, client, job)
        document["preprocessing"] = None if spec.preprocessing is None else spec.preprocessing.describe()
    except (JobFileError, LedgerError):
        document["preprocessing"] = None
    if json:
        emit_json(document)
        return
    console.print(
        f"job {job} on chain {document['chain_id']}: coordinator {document['coordinator']}, purpose "
        f"'{document['purpose']}', {document['last_round']} round(s); spec {document['spec_digest']}"
        + (f"\n  preprocessing: {document['preprocessing']}" if document["preprocessing"] else ""),
        highlight=False,
    )
    emit_table(
        "rounds",
        ["round", "block", "participants", "manifest CID", "left out"],
        [
            [
                r["round"],
                r["block_number"],
                f"{r['participant_count']} (large)" if r["mode"] == "large" else r["participant_count"],
                r["manifest_cid"],
                "; ".join(
                    f"{d[:10]}…: {why.split(':')[0]}" for d, why in refusals.get(str(r["round"]), {}).items()
                )
                or "-",
            ]
            for r in document["rounds"]
        ],
    )


@app.command()
@user_errors
def export(
    job: JobArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="the CAR file to write")],
    json: JsonFlag = False,
) -> None:
    """Write one CAR with the job's spec, initial model and every round's manifest, model and updates."""
    from ledger.provenance import RoundManifest

    config = settings()
    client = _connect(config)
    store = open_store(config)
    spec, record = job_spec(config, client, job)
    cids: list[str] = [spec_cid(spec)]
    if record.get("initial_model_cid"):
        cids.append(str(record["initial_model_cid"]))
    rounds = committed_rounds(client, job)
    for entry in rounds:
        manifest = RoundManifest.from_bytes(store.get(entry["manifest_cid"]))
        cids += [entry["manifest_cid"], manifest.model_cid, *manifest.update_cids()]
    missing = [cid for cid in dict.fromkeys(cids) if not store.has(cid)]
    if missing:
        raise JobFileError(
            f"this home's content store lacks {len(missing)} block(s) of job {job}: {missing[:3]}"
        )
    unique = list(dict.fromkeys(cids))
    tmp = output.with_name(output.name + ".part")
    with tmp.open("wb") as out:
        store.export_car(unique, out)
    tmp.replace(output)
    document = {
        "job_id": job,
        "car": str(output),
        "roots": unique,
        "rounds": len(rounds),
        "bytes": output.stat().st_size,
    }
    if json:
        emit_json(document)
    else:
        console.print(
            f"wrote {output}: job {job}, {len(rounds)} round(s), {len(unique)} root(s) "
            f"({document['bytes']} bytes); an auditor runs `sov store import-car {output}`, "
            f"then `sov audit {job}`",
            highlight=False,
        )


@app.command()
@user_errors
def superlink(
    address: Annotated[str, typer.Option(help="HOST:PORT the hospitals' nodes and `sov job run` use")] = (
        "127.0.0.1:9092"
    ),
) -> None:
    """Run the lab's Flower SuperLink in the foreground (no run-time dependency installs) until stopped."""
    import signal

    from fl_node.flower.site_process import PartyProcesses, parse_address, start_superlink

    host, port = parse_address(address, "--address")
    processes = PartyProcesses(settings().home / "superlink")
    stopping: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda s, _f: stopping.append(s)) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        start_superlink(processes, host=host, port=port)
        err_console.print(f"SuperLink on {host}:{port}; logs in {processes.log_dir}", highlight=False)
        while not stopping:
            ended = processes.exited()
            if ended is not None:
                raise ConnectionError(f"the SuperLink exited ({ended[1]}): {processes.log('superlink')}")
            time.sleep(0.5)
    finally:
        processes.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
