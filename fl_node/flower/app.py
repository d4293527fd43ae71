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
from ledger.purposes import purpose_id
from ledger.settings import Settings
from ledger.store import open_store

from ..coordinator import Coordinator
from ..data import read_partition
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
        partition = self.site.partition
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
    """
    settings = Settings(home=Path(_text(run_config, "sov-home")), rpc_url=_text(run_config, "rpc-url"))
    reader = LedgerClient.connect(settings)
    client = reader.with_account(
        Keystore(settings).account(_text(run_config, "account"), chain_id=reader.chain_id)
    )
    store = open_store(settings)
    eval_path = _text(run_config, "eval-data", required=False)
    eval_partition = read_partition(Path(eval_path)) if eval_path else None
    coordinator = Coordinator(
        client,
        store,
        eval_features=None if eval_partition is None else eval_partition.x,
        eval_labels=None if eval_partition is None else eval_partition.y,
        quorum=_int(run_config, "quorum", 1),
    )
    try:
        datasets = [int(part, 16) for part in _text(run_config, "datasets").split(",") if part.strip()]
    except ValueError:
        given = run_config["datasets"]
        raise RunConfigError(
            f"run config 'datasets' must be comma-separated 0x-hex dataset ids, got {given!r}"
        ) from None
    spec = ModelSpec.from_json(Path(_text(run_config, "spec")).read_text())
    job = coordinator.create_job(
        purpose=purpose_id(_text(run_config, "purpose")),
        datasets=datasets,
        spec=spec,
        initial_state=dict(initial_state(spec)),
        seed=_int(run_config, "seed", 0),
    )
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
    server_config = ServerConfig(num_rounds=_int(run_config, "num-rounds", 3), round_timeout=float(timeout))
    logging.getLogger(__name__).info(
        "ledger job %d created on chain %d for %d dataset(s)", job.job_id, client.chain_id, len(datasets)
    )
    return strategy, server_config


def server_fn(context: Context) -> ServerAppComponents:
    """The ServerApp's strategy and round settings from the run config."""
    _route_logs_to_flower()
    strategy, server_config = build_strategy(dict(context.run_config))
    return ServerAppComponents(strategy=strategy, config=server_config)


server_app = ServerApp(server_fn=server_fn)
