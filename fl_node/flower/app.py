"""The ServerApp and ClientApp the Flower deployment engine loads (see `project/pyproject.toml`).

ServerApp (the lab): its run config names the lab's data directory, chain, account, the
job's datasets, purpose and model spec; it anchors the initial model, creates the job
on-chain and runs `num-rounds` rounds under `LedgerStrategy`, writing a JSON report of
every round (committed or not, who refused and why) to `report` when given.

ClientApp (a hospital): trains the job's model on the partition its SuperNode's node
config names, behind `ledger_gate_mod`, which checks the chain first and signs the update.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from flwr.app import Context
from flwr.client import Client, NumPyClient
from flwr.clientapp import ClientApp
from flwr.common import NDArrays, Scalar
from flwr.server import ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.serverapp import ServerApp

from ledger.chain.client import LedgerClient
from ledger.keys import Keystore
from ledger.modelfile import model_to_bytes
from ledger.purposes import purpose_id
from ledger.settings import Settings
from ledger.store import cid_of, open_store

from ..coordinator import Coordinator
from ..data import load_examples
from ..errors import FLError
from ..model import initial_state
from ..spec import ModelSpec
from ..train import configure_worker, round_seed, train_local
from . import wire
from .mod import ledger_gate_mod
from .node_site import NodeSite
from .strategy import LedgerStrategy

UserConfig = dict[str, bool | bytes | float | int | str]


class RunConfigError(FLError, ValueError):
    """The run config of a ledger Flower run lacks a key or holds a value that does not fit."""


def _route_logs_to_flower() -> None:
    """Our loggers print through Flower's console handler, so `flwr run --stream` shows them."""
    ours = logging.getLogger("fl_node")
    if not ours.handlers:
        for handler in logging.getLogger("flwr").handlers:
            ours.addHandler(handler)
        ours.setLevel(logging.INFO)


# ----------------------------------------------------------------------------- client


class LedgerNodeClient(NumPyClient):
    """Trains the job's model on this node's partition (the mod has already gated the round)."""

    def __init__(self, site: NodeSite) -> None:
        self.site = site

    def fit(self, parameters: NDArrays, config: dict[str, Scalar]) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """One round of local training from the delivered global model."""
        instructions = wire.RoundInstructions.from_config(config)
        spec = instructions.spec
        state = wire.ndarrays_to_state(spec, parameters)
        # Same seed as the embedded runner's node for the same job, round and dataset.
        seed = round_seed(instructions.seed, instructions.round_number, self.site.dataset_id)
        configure_worker()
        partition = self.site.examples(spec.preprocessing)
        new_state, num_examples, metrics = train_local(spec, state, partition.x, partition.y, round_seed=seed)
        return wire.state_to_ndarrays(new_state), num_examples, {k: float(v) for k, v in metrics.items()}


def client_fn(context: Context) -> Client:
    """The ClientApp's client for this SuperNode."""
    _route_logs_to_flower()
    return LedgerNodeClient(NodeSite.from_node_config(context.node_config)).to_client()


client_app = ClientApp(client_fn=client_fn, mods=[ledger_gate_mod])


# ----------------------------------------------------------------------------- server


def _text(config: UserConfig, key: str, *, required: bool = True) -> str:
    value = config.get(key, "")
    if not isinstance(value, str):
        raise RunConfigError(f"run config {key!r} must be a string, got {value!r}")
    if required and not value:
        raise RunConfigError(f"run config {key!r} is required; pass it with `flwr run -c '{key}=\"...\"'`")
    return value


def _int(config: UserConfig, key: str, default: int) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RunConfigError(f"run config {key!r} must be an integer, got {value!r}")
    return value


def build_strategy(run_config: UserConfig) -> tuple[LedgerStrategy, ServerConfig]:
    """Connects the lab, anchors the initial model, creates the job and wraps FedAvg.

    Run config keys: `sov-home`, `rpc-url`, `account` (the lab's alias), `datasets`
    (comma-separated 0x-hex dataset ids), `purpose`, `spec` (a ModelSpec JSON file), `seed`,
    `num-rounds`, `min-nodes` (nodes to wait for and sample), `quorum`, `round-timeout`
    (seconds), `eval-data` (a partition file for the coordinator's test metrics, optional),
    `report` (where to write the JSON report, optional).

    With `job-id` (non-zero) the job exists already (`sov job create`): it is read back from
    the chain and the store (`Coordinator.resume`, which checks the spec against the job's
    on-chain digest) and the run continues from its last committed round up to
    `until-round` (`num-rounds` is then ignored): a round the chain holds is never run again.
    `lab-pid` and `lab-boot-id` name the `sov job run` process that asked for this run: when
    it is on this machine and dies, this ServerApp stops too (the lab's process is the lab).
    """
    settings = Settings(home=Path(_text(run_config, "sov-home")), rpc_url=_text(run_config, "rpc-url"))
    _watch_lab_process(run_config)
    reader = LedgerClient.connect(settings)
    client = reader.with_account(
        Keystore(settings).account(_text(run_config, "account"), chain_id=reader.chain_id)
    )
    store = open_store(settings)
    spec = ModelSpec.from_json(Path(_text(run_config, "spec")).read_text())
    eval_path = _text(run_config, "eval-data", required=False)
    eval_partition = load_examples(Path(eval_path), spec.preprocessing) if eval_path else None
    coordinator = Coordinator(
        client,
        store,
        eval_features=None if eval_partition is None else eval_partition.x,
        eval_labels=None if eval_partition is None else eval_partition.y,
        quorum=_int(run_config, "quorum", 1),
    )
    existing = _int(run_config, "job-id", 0)
    try:
        datasets = [
            int(part, 16)
            for part in _text(run_config, "datasets", required=not existing).split(",")
            if part.strip()
        ]
    except ValueError:
        given = run_config["datasets"]
        raise RunConfigError(
            f"run config 'datasets' must be comma-separated 0x-hex dataset ids, got {given!r}"
        ) from None
    seed = _int(run_config, "seed", 0)
    if existing:
        job = coordinator.resume(
            existing,
            spec=spec,
            seed=seed,
            initial_model_cid=cid_of(model_to_bytes(initial_state(spec))),
        )
        num_rounds = max(0, _int(run_config, "until-round", job.last_round) - job.last_round)
    else:
        job = coordinator.create_job(
            purpose=purpose_id(_text(run_config, "purpose")),
            datasets=datasets,
            spec=spec,
            initial_state=dict(initial_state(spec)),
            seed=seed,
        )
        num_rounds = _int(run_config, "num-rounds", 3)
    min_nodes = _int(run_config, "min-nodes", 2)
    inner = FedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=min_nodes,
        min_available_clients=min_nodes,
    )
    report = _text(run_config, "report", required=False)
    strategy = LedgerStrategy(coordinator, job, inner=inner, report_path=Path(report) if report else None)
    timeout = _int(run_config, "round-timeout", 300)
    server_config = ServerConfig(num_rounds=num_rounds, round_timeout=float(timeout))
    logging.getLogger(__name__).info(
        "ledger job %d %s on chain %d for %d dataset(s), at round %d; %d round(s) to run",
        job.job_id,
        "resumed" if existing else "created",
        client.chain_id,
        len(job.job_datasets),
        job.last_round,
        num_rounds,
    )
    return strategy, server_config


def boot_id() -> str:
    """This machine's boot id (Linux), which tells whether a pid names a process here."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot, /proc), or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def _watch_lab_process(run_config: UserConfig) -> None:
    """Stops this process when the lab's `sov job run` (same machine) is gone, even after a SIGKILL."""
    pid = _int(run_config, "lab-pid", 0)
    started = _int(run_config, "lab-start", 0)
    if pid <= 0 or not boot_id() or _text(run_config, "lab-boot-id", required=False) != boot_id():
        return

    def watch() -> None:
        while process_start_ticks(pid) == started:
            time.sleep(0.5)
        logging.getLogger(__name__).warning("the lab's process %d is gone; this ServerApp stops", pid)
        os._exit(3)

    threading.Thread(target=watch, name="lab-watch", daemon=True).start()


def server_fn(context: Context) -> ServerAppComponents:
    """The ServerApp's strategy and round settings from the run config."""
    _route_logs_to_flower()
    strategy, server_config = build_strategy(dict(context.run_config))
    return ServerAppComponents(strategy=strategy, config=server_config)


server_app = ServerApp(server_fn=server_fn)
