"""The embedded runner: a coordinator and N data-owner nodes on one machine.

Each node has its own account and its own chain connection, exactly as it would at a
hospital; only the process boundary is missing. `prepare` turns a dataset into the
nodes' partitions (canonical files whose CIDs are the on-chain dataset ids), `enroll`
registers those datasets and grants the lab its usage right, and `EmbeddedRunner` runs
the job round by round. `run_offline` is the same learning with the ledger switched off,
the baseline for the overhead benchmark and the byte-identity check.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.aggregation import aggregate_updates
from ledger.chain.client import LedgerClient
from ledger.errors import DatasetAlreadyRegisteredError
from ledger.keys import DEV_MNEMONIC, DevAccountOffDevnetError, dev_account
from ledger.modelfile import model_from_bytes, model_to_bytes
from ledger.provenance import model_digest
from ledger.purposes import purpose_id
from ledger.secp import DigestSigner
from ledger.store import ContentStore, cid_of, content_root

from .coordinator import Coordinator, JobState, RoundOutcome
from .data import Dataset, Partition, load_dataset, load_examples, make_partitions
from .messages import NodeRefusal, NodeReply, RoundRequest
from .model import initial_state
from .node import DataOwnerNode
from .spec import ModelSpec, default_spec
from .train import configure_worker, evaluate, round_seed, train_local

DEVNET_CHAIN_ID = 31337
DEVNET_FUNDS_WEI = 10**22


@dataclass(frozen=True)
class TrainConfig:
    """What `sov train` and `sov demo` ask for."""

    data: str = "breast_cancer"
    label: str | None = None
    nodes: int = 4
    rounds: int = 5
    partition: str = "iid"
    seed: int = 0
    purpose: str = "ai-training"
    grant_seconds: int = 24 * 3600
    quorum: int = 1
    node_timeout_s: float = 300.0
    spec_overrides: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Federation:
    """The data side of a job: the dataset, each node's partition and its dataset id."""

    dataset: Dataset
    partitions: tuple[Partition, ...]
    dataset_ids: tuple[int, ...]
    spec: ModelSpec


def prepare(config: TrainConfig) -> Federation:
    """Loads the data, deals it to the nodes and computes each partition's dataset id."""
    dataset = load_dataset(config.data, label=config.label, seed=config.seed)
    partitions = make_partitions(dataset, config.nodes, config.partition, config.seed)
    ids = tuple(int.from_bytes(content_root(cid_of(p.to_bytes())), "big") for p in partitions)
    spec = default_spec(dataset.num_features, dataset.num_classes, seed=config.seed, **config.spec_overrides)
    return Federation(dataset, tuple(partitions), ids, spec)


def prepare_registered(
    files: list[Path], spec: ModelSpec, *, label: str | None = None, eval_file: Path | None = None
) -> Federation:
    """A federation of files the hospitals registered themselves: each file is one node's data.

    The dataset ids are the files' CIDs (what `sov dataset register` put on chain); tables are
    prepared by the spec's preprocessing, as the hospitals' own nodes would. Without
    `eval_file` the coordinator computes no test metrics.
    """
    partitions = []
    for node, path in enumerate(files):
        examples = load_examples(path, spec.preprocessing, label=label)
        partitions.append(Partition(node=node, x=examples.x, y=examples.y))
    ids = tuple(int.from_bytes(content_root(cid_of(path.read_bytes())), "big") for path in files)
    if len(set(ids)) != len(ids):
        raise ValueError("--datasets lists the same file content twice")
    if eval_file is not None:
        held_out = load_examples(eval_file, spec.preprocessing, label=label)
        x_test, y_test = held_out.x, held_out.y
    else:
        x_test = np.zeros((0, spec.input_dim), dtype=np.float32)
        y_test = np.zeros((0,), dtype=np.int64)
    classes = (
        spec.preprocessing.classes if spec.preprocessing else tuple(str(i) for i in range(spec.num_classes))
    )
    dataset = Dataset(
        name="registered",
        x_train=np.concatenate([p.x for p in partitions]),
        y_train=np.concatenate([p.y for p in partitions]),
        x_test=x_test,
        y_test=y_test,
        feature_names=tuple(f"f{i}" for i in range(spec.input_dim)),
        class_names=classes,
    )
    return Federation(dataset, tuple(partitions), ids, spec)


def owner_account(index: int, *, chain_id: int) -> LocalAccount:
    """The devnet key of hospital `index` (1-based; the lab is dev0), on a devnet only.

    These keys are public: on any other chain they would sign for anyone, so they are refused.
    """
    if chain_id != DEVNET_CHAIN_ID:
        raise DevAccountOffDevnetError(f"dev{index}", chain_id)
    if index < 10:
        return dev_account(index)
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


def fund_on_devnet(client: LedgerClient, address: str) -> None:
    """Gives a derived devnet account gas money (devnets only: anvil and hardhat know this call)."""
    if client.chain_id != DEVNET_CHAIN_ID:
        return
    balance = int(client.transport.request("eth_getBalance", [address, "latest"]), 16)
    if balance == 0:
        client.transport.request("hardhat_setBalance", [address, hex(DEVNET_FUNDS_WEI)])


@dataclass
class Enrollment:
    """The on-chain side of a federation: who owns which dataset and the lab's grants."""

    lab: LedgerClient
    owners: list[LedgerClient]
    expires_at: int


def enroll(
    lab: LedgerClient, federation: Federation, config: TrainConfig, *, uri_prefix: str = "sov://"
) -> Enrollment:
    """Hospitals register their partitions (idempotent) and grant the lab `config.purpose`."""
    owners: list[LedgerClient] = []
    now = lab.latest_block().timestamp
    expires_at = now + config.grant_seconds
    purpose = purpose_id(config.purpose)
    assert lab.address is not None
    for index, (partition, dataset_id) in enumerate(
        zip(federation.partitions, federation.dataset_ids, strict=True)
    ):
        account = owner_account(index + 1, chain_id=lab.chain_id)
        fund_on_devnet(lab, account.address)
        owner = lab.with_account(account)
        try:
            owner.register_dataset(
                dataset_id.to_bytes(32, "big"), uri=f"{uri_prefix}{config.data}/node-{partition.node}"
            )
        except DatasetAlreadyRegisteredError:
            # A rerun of the same data: fine if this hospital already holds the deed.
            if owner.dataset_state(dataset_id).owner.lower() != account.address.lower():
                raise
        owner.issue_grant(dataset_id, lab.address, purpose, now, expires_at)
        owners.append(owner)
    return Enrollment(lab, owners, expires_at)


def enroll_registered(
    lab: LedgerClient,
    federation: Federation,
    owner_key: Callable[[str], LocalAccount | None],
    purpose: str,
) -> Enrollment:
    """The owners of already registered datasets; `owner_key(address)` is the owner's key or None.

    Nothing is registered or granted: each dataset must be registered, its owner's key must
    be known to `owner_key` (its node signs the attestations), and the lab must hold a valid
    grant for `purpose` now; otherwise `ValueError` says which dataset and what to run.
    """
    assert lab.address is not None
    states = lab.dataset_states(list(federation.dataset_ids))
    statuses = lab.authorization_statuses(list(federation.dataset_ids), lab.address, purpose_id(purpose))
    owners: list[LedgerClient] = []
    for dataset_id, state, status in zip(federation.dataset_ids, states, statuses, strict=True):
        if not state.registered:
            raise ValueError(
                f"dataset {dataset_id:#066x} is not registered: its owner runs `sov dataset register FILE`"
            )
        key = owner_key(state.owner)
        if key is None:
            raise ValueError(
                f"dataset {dataset_id:#066x} is owned by {state.owner}, whose key is not in this SOV_HOME's "
                "keystore; on one machine every hospital's account must be here (or run `sov node` there)"
            )
        if status.name != "AUTHORIZED":
            raise ValueError(
                f"the lab {lab.address} may not use dataset {dataset_id:#066x} for '{purpose}' "
                f"({status.name.lower()}); its owner runs `sov grant issue {dataset_id:#066x} {lab.address}`"
            )
        owners.append(lab.with_account(key))
    return Enrollment(lab, owners, 0)


class LocalNode:
    """An in-process node; local training is serialised because torch's RNG is process-global.

    The nodes of a process gate in their own threads and hand their training to one trainer
    thread, which runs them one after the other: the next training starts as the last one
    ends, without waking a thread that waited for a lock (each such wake-up cost a scheduler
    slice on a loaded machine, ten times a round).
    """

    _trainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-training")

    def __init__(self, node: DataOwnerNode) -> None:
        self.node = node
        self.dataset_id = node.dataset_id

    def handle(self, request: RoundRequest) -> NodeReply:
        """Runs the node's round: gate concurrently, train in turn, attest (`DataOwnerNode.handle`)."""
        admitted = self.node.admit(request)
        if isinstance(admitted, NodeRefusal):
            return admitted
        return self._trainer.submit(self.node.train, request, admitted).result()


class _SharedReads:
    """A content store whose `get` keeps the last few files read (content is immutable by CID)."""

    def __init__(self, store: ContentStore, keep: int = 2) -> None:
        self.store = store
        self.keep = keep
        self._recent: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, cid: str) -> bytes:
        """The verified bytes of `cid`: from the last reads, or from the store (which verifies them)."""
        with self._lock:
            data = self._recent.get(cid)
            if data is None:
                data = self.store.get(cid)
                self._recent[cid] = data
                while len(self._recent) > self.keep:
                    self._recent.pop(next(iter(self._recent)))
            return data

    def put(self, data: bytes) -> str:
        """Stores through to the underlying store."""
        return self.store.put(data)

    def has(self, cid: str) -> bool:
        """Whether the underlying store holds `cid`."""
        return self.store.has(cid)

    def pin(self, cid: str) -> None:
        """Pins in the underlying store."""
        self.store.pin(cid)

    def export_car(self, cids: Iterable[str], out: BinaryIO) -> None:
        """Exports from the underlying store."""
        self.store.export_car(cids, out)

    def import_car(self, src: BinaryIO) -> list[str]:
        """Imports into the underlying store."""
        return self.store.import_car(src)


@dataclass
class JobRun:
    """What a finished job reports."""

    job: JobState
    rounds: list[RoundOutcome]
    final_model_bytes: bytes


class EmbeddedRunner:
    """Runs a job over an enrolled federation: coordinator and nodes in this process."""

    def __init__(
        self,
        federation: Federation,
        enrollment: Enrollment,
        store: ContentStore,
        config: TrainConfig,
        node_store: Callable[[int], ContentStore] | None = None,
    ) -> None:
        configure_worker()
        self.federation = federation
        self.config = config
        self.coordinator = Coordinator(
            enrollment.lab,
            store,
            eval_features=federation.dataset.x_test if federation.dataset.y_test.size else None,
            eval_labels=federation.dataset.y_test if federation.dataset.y_test.size else None,
            timeout_s=config.node_timeout_s,
            quorum=config.quorum,
        )
        # The in-process nodes share one store: the round's base model is read and verified
        # once, not once per node.
        shared_reads = _SharedReads(store)
        self.nodes = [
            LocalNode(
                DataOwnerNode(
                    dataset_id=dataset_id,
                    features=partition.x,
                    labels=partition.y,
                    # Signs its attestations with a key object made once (eth-account remakes it per call).
                    account=DigestSigner(owner.account),  # type: ignore[arg-type]
                    # Each node reads the chain through its own connection, as at a hospital.
                    client=LedgerClient.from_url(owner.rpc_url, owner.deployment, owner.account),
                    store=node_store(index) if node_store else shared_reads,
                )
            )
            for index, (partition, dataset_id, owner) in enumerate(
                zip(federation.partitions, federation.dataset_ids, enrollment.owners, strict=True)
            )
        ]

    @property
    def initial_model_cid(self) -> str:
        """The CID of the initial model, which the spec determines (seeded initialisation)."""
        return cid_of(model_to_bytes(initial_state(self.federation.spec)))

    def resume(self, job_id: int) -> JobState:
        """An existing job of this federation, rebuilt from the chain and the content store."""
        return self.coordinator.resume(
            job_id, spec=self.federation.spec, seed=self.config.seed, initial_model_cid=self.initial_model_cid
        )

    def create_job(self) -> JobState:
        """Anchors the initial model and creates the job on-chain."""
        return self.coordinator.create_job(
            purpose=purpose_id(self.config.purpose),
            datasets=self.federation.dataset_ids,
            spec=self.federation.spec,
            initial_state=initial_state(self.federation.spec),  # type: ignore[arg-type]
            seed=self.config.seed,
        )

    def run(
        self,
        job: JobState,
        *,
        on_round: Callable[[RoundOutcome], None] | None = None,
        on_dispatch: Callable[[int], None] | None = None,
    ) -> JobRun:
        """Runs the remaining rounds of `job` up to `config.rounds`."""
        outcomes: list[RoundOutcome] = []
        initial_cid = self.initial_model_cid
        while True:
            job = self.coordinator.refresh(job, initial_cid)
            if job.last_round >= self.config.rounds:
                break
            outcome = self.coordinator.run_round(job, self.nodes, on_dispatch=on_dispatch)
            outcomes.append(outcome)
            if on_round is not None:
                on_round(outcome)
        return JobRun(job, outcomes, self.coordinator.store.get(job.last_model_cid))


@dataclass(frozen=True)
class OfflineRound:
    """One round of the ledger-free baseline."""

    round_number: int
    model_digest: bytes
    metrics: dict[str, float]


def run_offline(
    federation: Federation,
    rounds: int,
    seed: int,
    on_round: Callable[[OfflineRound], None] | None = None,
) -> bytes:
    """The same federated learning with the ledger switched off; returns the final model bytes.

    Same initial model, same per-node seeds, same aggregation (`aggregate_updates` over the
    update files in ascending dataset id) as the ledger path, so equal inputs give equal bytes.
    """
    configure_worker()
    spec = federation.spec
    model_bytes = model_to_bytes(initial_state(spec))
    order = sorted(zip(federation.dataset_ids, federation.partitions, strict=True), key=lambda pair: pair[0])
    for round_number in range(1, rounds + 1):
        base = model_from_bytes(model_bytes)
        updates, counts = [], []
        for dataset_id, partition in order:
            state, count, _ = train_local(
                spec, base, partition.x, partition.y, round_seed(seed, round_number, dataset_id)
            )
            updates.append(model_to_bytes(state))
            counts.append(count)
        model_bytes = aggregate_updates(updates, counts)
        if on_round is not None:
            aggregated = model_from_bytes(model_bytes)
            metrics = evaluate(spec, aggregated, federation.dataset.x_test, federation.dataset.y_test)
            on_round(OfflineRound(round_number, model_digest(model_bytes), metrics))
    return model_bytes


__all__ = [
    "EmbeddedRunner",
    "Enrollment",
    "Federation",
    "JobRun",
    "LocalNode",
    "TrainConfig",
    "enroll",
    "enroll_registered",
    "prepare",
    "prepare_registered",
    "run_offline",
]
