"""The research lab's coordinator: create the job, run rounds, anchor and commit them.

A round: select the job's datasets that are authorised now, send the current model to
their nodes, collect signed updates with a timeout and a quorum, verify every
attestation (job, round, dataset, base and spec digests, update digest, example count,
and a signature by the dataset's owner or one its EIP-1271 wallet accepts), store and pin
every accepted update in the content store, aggregate them with
the arithmetic of `ledger.aggregation.aggregate_updates` (the audit's function), folding
each update as the round's set is final (`StreamingFedAvg`, memory O(model)),
store the model and the round manifest (which lists each update's CID) and pin them, and
only then commit the round on-chain. If the contract rejects a participant whose grant
ended in between, the round is recomputed without it: a model built on an unauthorised
dataset is never committed.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

import numpy as np

from ledger.aggregation import HOLD_BYTES, StreamingFedAvg
from ledger.chain.client import LedgerClient
from ledger.chain.types import AuthorizationStatus, Receipt
from ledger.errors import ContractRevertError, LedgerError
from ledger.modelfile import model_from_bytes, model_to_bytes
from ledger.participants import MASK_CAPACITY
from ledger.provenance import (
    AttestationError,
    RoundManifest,
    attestation_leaf,
    eip1271_accepts,
    eip1271_call_data,
    model_digest,
    recover_signer,
)
from ledger.secp import fast_recover
from ledger.store import ContentStore, LocalBlockstore

from .errors import FLError, QuorumError, RoundNotCommittedError
from .messages import NodeRefusal, NodeReply, NodeUpdate, RoundRequest
from .spec import ModelSpec
from .train import evaluate

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@functools.lru_cache(maxsize=16)
def _spec_digest(spec_json: str) -> bytes:
    """The digest of the spec a round request carries (the job's, as the coordinator sent it)."""
    return ModelSpec.model_validate_json(spec_json).spec_digest()


class NodeHandle(Protocol):
    """How the coordinator reaches a node: in-process, a child process, or over a network."""

    dataset_id: int

    def handle(self, request: RoundRequest) -> NodeReply:
        """Runs one round on the node; raises if the node cannot be reached."""
        ...


@dataclass(frozen=True)
class StoreRetryPolicy:
    """How long a ready round waits for the content store before it is given up (never committed)."""

    attempts: int = 6
    first_delay_s: float = 0.2
    factor: float = 2.0


@dataclass
class JobState:
    """What the coordinator knows of its job: all of it re-readable from chain and store."""

    job_id: int
    purpose: bytes
    job_datasets: tuple[int, ...]
    spec: ModelSpec
    seed: int
    last_round: int
    last_digest: bytes
    last_model_cid: str


@dataclass(frozen=True)
class RoundOutcome:
    """One committed round as the demo, CLI and tests report it."""

    round_number: int
    model_digest: bytes
    model_cid: str
    manifest_cid: str
    participants: tuple[int, ...]
    refused: dict[int, str]
    block_number: int
    metrics: dict[str, float] = field(default_factory=dict)
    recomputed_without: tuple[int, ...] = ()
    update_cids: dict[int, str] = field(default_factory=dict)
    # Seconds spent in each phase of the round (select, collect, aggregate, evaluate, anchor, commit).
    timings: dict[str, float] = field(default_factory=dict)


class Coordinator:
    """Runs a job's rounds for the lab's account."""

    def __init__(
        self,
        client: LedgerClient,
        store: ContentStore,
        *,
        eval_features: np.ndarray | None = None,
        eval_labels: np.ndarray | None = None,
        timeout_s: float = 120.0,
        quorum: int = 1,
        store_retry: StoreRetryPolicy | None = None,
        hold_bytes: int = HOLD_BYTES,
    ) -> None:
        if client.address is None:
            raise FLError("the coordinator needs a signing account")
        self.client = client
        self.store = store
        self.eval_features = eval_features
        self.eval_labels = eval_labels
        self.timeout_s = timeout_s
        self.quorum = quorum
        self.store_retry = store_retry or StoreRetryPolicy()
        self.hold_bytes = hold_bytes
        self._pool: ThreadPoolExecutor | None = None
        self._pool_workers = 0

    @property
    def address(self) -> str:
        """The lab's account: the job's coordinator and the grantee every check names."""
        assert self.client.address is not None
        return self.client.address

    def create_job(
        self,
        *,
        purpose: bytes,
        datasets: Sequence[int],
        spec: ModelSpec,
        initial_state: dict[str, object],
        seed: int,
        open_job: bool = False,
    ) -> JobState:
        """Anchors the initial model and the spec, then creates the job on-chain.

        The spec's canonical JSON is stored as the raw block its on-chain digest names, so an
        auditor given the store (or a CAR of it) can say which model and preparation the job used.
        More datasets than the participant bitmask holds (256), or `open_job`, make an open job
        (no dataset list on chain; its rounds are committed in batches, `commit_large_round`).
        """
        job_datasets = tuple(sorted(datasets))
        initial_bytes = model_to_bytes(initial_state)  # type: ignore[arg-type]
        initial_cid = self._store_with_retry(initial_bytes)
        digest = model_digest(initial_bytes)
        self._store_with_retry(spec.canonical_json())
        if open_job or len(job_datasets) > MASK_CAPACITY:
            job_id, _ = self.client.create_open_job(purpose, digest, spec.spec_digest())
            return JobState(job_id, purpose, (), spec, seed, 0, digest, initial_cid)
        job_id, _ = self.client.create_job(purpose, job_datasets, digest, spec.spec_digest())
        return JobState(job_id, purpose, job_datasets, spec, seed, 0, digest, initial_cid)

    def refresh(self, job: JobState, initial_model_cid: str) -> JobState:
        """Brings `job` in line with the chain, the source of truth.

        After a crash (of the coordinator or the chain) the chain may be ahead of what the
        coordinator remembers, or behind it (a devnet restored from its last state dump).
        The job continues from the last round the chain holds: no round is committed twice
        and none is skipped, since the contract only accepts the next consecutive round.
        """
        record = self.client.get_job(job.job_id)
        if (record.last_round, record.last_digest) == (job.last_round, job.last_digest):
            return job
        return self.resume(job.job_id, spec=job.spec, seed=job.seed, initial_model_cid=initial_model_cid)

    def resume(self, job_id: int, *, spec: ModelSpec, seed: int, initial_model_cid: str) -> JobState:
        """The state of an existing job, rebuilt from chain events and the content store."""
        record = self.client.get_job(job_id)
        if record.coordinator.lower() != self.address.lower():
            raise FLError(f"job {job_id} is coordinated by {record.coordinator}, not by {self.address}")
        events = self.client.get_logs(self.client.deployment.deployed_block)
        created = next((e for e in events if e.name == "JobCreated" and e.args["jobId"] == job_id), None)
        if created is None:
            raise FLError(f"no JobCreated event for job {job_id} on chain {self.client.chain_id}")
        if bytes(created.args["specDigest"]) != spec.spec_digest():
            raise FLError(f"job {job_id} was created with another model spec (digest mismatch)")
        model_cid = initial_model_cid
        if record.last_round > 0:
            committed = next(
                e
                for e in events
                if e.name == "RoundCommitted"
                and e.args["jobId"] == job_id
                and e.args["round"] == record.last_round
            )
            manifest = RoundManifest.from_bytes(self.store.get(str(committed.args["manifestCid"])))
            model_cid = manifest.model_cid
        if model_digest(self.store.get(model_cid)) != record.last_digest:
            raise FLError(
                f"job {job_id} round {record.last_round}: the stored model {model_cid} does not hash to the "
                f"committed digest 0x{record.last_digest.hex()}"
            )
        return JobState(
            job_id=job_id,
            purpose=record.purpose,
            job_datasets=tuple(int(d) for d in created.args["datasets"]),
            spec=spec,
            seed=seed,
            last_round=record.last_round,
            last_digest=record.last_digest,
            last_model_cid=model_cid,
        )

    def run_round(
        self,
        job: JobState,
        nodes: Sequence[NodeHandle],
        *,
        on_dispatch: Callable[[int], None] | None = None,
    ) -> RoundOutcome:
        """Runs and commits the job's next round; returns what was committed."""
        round_number = job.last_round + 1
        started = time.perf_counter()
        refused: dict[int, str] = {}
        selected = []
        statuses, owners = self._select_reads(job, nodes)
        for node, status in zip(nodes, statuses, strict=True):
            # An open job (no dataset list) takes every node whose grant authorises now.
            in_job = not job.job_datasets or node.dataset_id in job.job_datasets
            if status is AuthorizationStatus.AUTHORIZED and in_job:
                selected.append(node)
            else:
                refused[node.dataset_id] = f"not selected: {status.name.lower()}"
        if on_dispatch is not None:
            on_dispatch(round_number)
        request = RoundRequest(
            job_id=job.job_id,
            round_number=round_number,
            job_datasets=job.job_datasets,
            base_model_cid=job.last_model_cid,
            base_digest=job.last_digest,
            spec_json=job.spec.model_dump_json(),
            seed=job.seed,
            participants=tuple(node.dataset_id for node in selected),
        )
        fold = StreamingFedAvg(hold_bytes=self.hold_bytes)
        update_cids: dict[int, str] = {}
        selected_at = time.perf_counter()
        updates = self._collect(selected, request, refused, owners, fold, update_cids)
        timings = {"select": selected_at - started, "collect": time.perf_counter() - selected_at}
        outcome = self.aggregate_and_commit(
            job, round_number, updates, refused, fold=fold, update_cids=update_cids
        )
        return replace(outcome, timings={**timings, **outcome.timings})

    def _select_reads(
        self, job: JobState, nodes: Sequence[NodeHandle]
    ) -> tuple[list[AuthorizationStatus], dict[int, str]]:
        """Each node's authorisation now and its dataset's owner (to check attestations): one batched read.

        The owners are read once per round; the contract re-checks every grant (deed epoch
        included) at commit, so an owner change in between cannot slip through.
        """
        if not nodes:
            return [], {}
        ids = [node.dataset_id for node in nodes]
        answers = self.client.call_many(
            [("DatasetRegistry", "datasetState", [i]) for i in ids]
            + [("UsageGrants", "authorizationStatus", [i, self.address, job.purpose]) for i in ids]
        )
        # Owners as the chain returns them (checksummed by the ABI decoder); compared lower-cased.
        owners = {i: str(answer[0]) for i, answer in zip(ids, answers[: len(ids)], strict=True)}
        return [AuthorizationStatus(int(status)) for (status,) in answers[len(ids) :]], owners

    def _reply(
        self, node: NodeHandle, request: RoundRequest, owner: str | None
    ) -> tuple[NodeReply, str | None, str | None]:
        """A node's reply, the problem found when verifying an update (None if sound) and its CID.

        Runs in the round's worker thread: a sound update is put and pinned here, while
        other nodes still train, so the store's file writes leave the round's critical path.
        """
        reply = node.handle(request)
        if not isinstance(reply, NodeUpdate):
            return reply, None, None
        problem = self.verify_update(request, reply, owner)
        if problem:
            return reply, problem, None
        return reply, None, self._store_with_retry(reply.update_bytes)

    def _collect(
        self,
        nodes: Sequence[NodeHandle],
        request: RoundRequest,
        refused: dict[int, str],
        owners: Mapping[int, str],
        fold: StreamingFedAvg,
        update_cids: dict[int, str],
    ) -> list[NodeUpdate]:
        """The round's verified updates in ascending dataset id, each stored, pinned and offered to `fold`.

        Replies are handled as they arrive; an update's bytes stay in memory only while
        `fold` holds them (the returned updates carry none), so the coordinator's memory is
        bounded by the model, not by the number of nodes.
        """
        updates: list[NodeUpdate] = []
        if not nodes:
            return updates
        pool = self._pool_for(len(nodes))
        futures = {
            pool.submit(self._reply, node, request, owners.get(node.dataset_id)): node.dataset_id
            for node in nodes
        }
        pending = set(futures)
        try:
            for future in as_completed(futures, timeout=self.timeout_s):
                pending.discard(future)
                dataset_id = futures[future]
                try:
                    reply, problem, cid = future.result()
                except RoundNotCommittedError:
                    raise  # the content store is down: the round cannot be anchored
                except Exception as error:  # a dead node is a missing reply, not a failed round
                    refused[dataset_id] = f"unreachable: {error}"
                    continue
                if isinstance(reply, NodeRefusal):
                    refused[dataset_id] = f"{reply.reason}: {reply.message}"
                    continue
                if problem:
                    refused[dataset_id] = f"rejected update: {problem}"
                    continue
                assert isinstance(reply, NodeUpdate) and cid is not None
                update_cids[dataset_id] = cid
                fold.offer(dataset_id, reply.update_bytes, reply.num_examples)
                updates.append(replace(reply, update_bytes=b""))
                del reply
        except FutureTimeout:
            for future in pending:
                future.cancel()
                refused[futures[future]] = f"timed out after {self.timeout_s:.0f} s"
            # Its workers may stay busy with the nodes that did not answer: the next round gets a new pool.
            self._drop_pool()
        return sorted(updates, key=lambda update: update.dataset_id)

    def _pool_for(self, workers: int) -> ThreadPoolExecutor:
        """One thread pool for the coordinator's rounds (not a new pool and threads per round)."""
        if self._pool is None or self._pool_workers < workers:
            self._drop_pool()
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="round")
            self._pool_workers = workers
        return self._pool

    def _drop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool, self._pool_workers = None, 0

    def close(self) -> None:
        """Stops the round threads (idle between rounds); the coordinator stays usable."""
        self._drop_pool()

    def verify_update(
        self, request: RoundRequest, update: NodeUpdate, owner: str | None = None
    ) -> str | None:
        """What is wrong with a node's update (None if sound): binding, digests, count and signer.

        `owner` is the dataset's owner when the caller already read it this round.

        The attestation must name this job, round and dataset, the round's base model (the
        job's last committed digest) and the job's spec digest, hash the bytes that came
        with it, state the same example count, and be signed by the dataset's owner, or be
        accepted by the owner's EIP-1271 `isValidSignature` when the owner is a contract.
        """
        att = update.attestation.attestation
        if (att.job_id, att.round, att.dataset_id) != (
            request.job_id,
            request.round_number,
            update.dataset_id,
        ):
            return "attestation names another job, round or dataset"
        if att.base_digest != request.base_digest:
            return (
                f"attestation names base model 0x{att.base_digest.hex()}, but round {request.round_number} "
                f"builds on 0x{request.base_digest.hex()} (job {request.job_id}'s last committed digest)"
            )
        spec_digest = _spec_digest(request.spec_json)
        if att.spec_digest != spec_digest:
            return (
                f"attestation names spec digest 0x{att.spec_digest.hex()}, but job {request.job_id}'s "
                f"spec digest is 0x{spec_digest.hex()}"
            )
        if att.update_digest != model_digest(update.update_bytes):
            return "update bytes do not match the attested digest"
        if att.num_examples != update.num_examples or update.num_examples <= 0:
            return "example count does not match the attestation"
        ledger = self.client.deployment.addresses["TrainingLedger"]
        signature = update.attestation.signature
        try:
            leaf = attestation_leaf(self.client.chain_id, ledger, att)
            # libsecp256k1 directly for a well-formed signature; recover_signer explains the others.
            signer = fast_recover(leaf, signature) or recover_signer(leaf, signature)
        except AttestationError as error:
            return f"attestation signature is malformed: {error}"
        owner = owner or self.client.dataset_state(update.dataset_id).owner
        if signer.lower() == owner.lower():
            return None
        # A contract owner (a hospital's multisig or smart account) vouches for its node keys.
        _, [answer] = self.client.read_batch(
            [], [(owner, eip1271_call_data(leaf, update.attestation.signature))]
        )
        if answer is not None and eip1271_accepts(answer):
            return None
        return (
            f"attestation signed by {signer}, not by the dataset owner {owner} "
            "(nor accepted by it as an EIP-1271 wallet)"
        )

    def aggregate_and_commit(
        self,
        job: JobState,
        round_number: int,
        updates: list[NodeUpdate],
        refused: dict[int, str],
        *,
        fold: StreamingFedAvg | None = None,
        update_cids: dict[int, str] | None = None,
    ) -> RoundOutcome:
        """Stores every update, aggregates, anchors model and manifest, then commits.

        Updates are aggregated in ascending dataset id (the manifest's order) with the
        arithmetic of `aggregate_updates` (the audit's function; `StreamingFedAvg` folds
        them one at a time); each update is put and pinned before anything is committed and
        the manifest lists its CID. `fold` and `update_cids` come from `run_round`, which
        stored and offered each update as it arrived (its updates carry no bytes); without
        them the updates' bytes are stored and offered here. A dataset the contract refuses
        at commit is dropped and the round recomputed without it, from the stored updates.
        Raises `QuorumError` when too few updates remain and `RoundNotCommittedError` when
        the content store stays down; in both cases nothing is committed.
        """
        dropped: list[int] = []
        updates = sorted(updates, key=lambda update: update.dataset_id)
        if fold is None or update_cids is None:
            fold, update_cids = StreamingFedAvg(hold_bytes=self.hold_bytes), {}
            for update in updates:
                update_cids[update.dataset_id] = self._store_with_retry(update.update_bytes)
                fold.offer(update.dataset_id, update.update_bytes, update.num_examples)
            updates = [replace(update, update_bytes=b"") for update in updates]
        cids = update_cids
        timings: dict[str, float] = {}

        def load(dataset_id: int) -> bytes | bytearray:
            return self._get_with_retry(cids[dataset_id])

        while True:
            if len(updates) < max(1, self.quorum):
                raise QuorumError(
                    f"round {round_number} of job {job.job_id}: {len(updates)} valid update(s), "
                    f"quorum is {self.quorum}; refused: {refused}"
                )
            clock = time.perf_counter()
            model_bytes = fold.result([update.dataset_id for update in updates], load)
            digest = model_digest(model_bytes)
            timings["aggregate"] = timings.get("aggregate", 0.0) + time.perf_counter() - clock
            # The model is stored and pinned in a round thread while it is evaluated (file writes
            # beside torch, both mostly outside the GIL); the manifest needs both.
            stored = self._pool_for(1).submit(self._store_with_retry, model_bytes)
            clock = time.perf_counter()
            metrics = self._evaluate(job.spec, model_bytes)
            timings["evaluate"] = timings.get("evaluate", 0.0) + time.perf_counter() - clock
            clock = time.perf_counter()
            model_cid = stored.result()
            round_cids = {update.dataset_id: update_cids[update.dataset_id] for update in updates}
            manifest = self._manifest(job, updates, digest, model_cid, round_cids, metrics)
            manifest_cid = self._store_with_retry(manifest.to_bytes())
            timings["anchor"] = timings.get("anchor", 0.0) + time.perf_counter() - clock
            clock = time.perf_counter()
            try:
                receipt = self._commit(
                    job, round_number, digest, manifest_cid, [u.dataset_id for u in updates], manifest
                )
            except ContractRevertError as revert:
                dataset_id = revert.args_by_name.get("datasetId")
                if not isinstance(dataset_id, int) or dataset_id not in {u.dataset_id for u in updates}:
                    raise
                # The grant ended between the node's check and the commit: recompute without it.
                log.warning("round %d: %s; recomputing without that dataset", round_number, revert)
                refused[dataset_id] = f"dropped at commit: {revert.error_name}"
                dropped.append(dataset_id)
                updates = [update for update in updates if update.dataset_id != dataset_id]
                continue
            timings["commit"] = timings.get("commit", 0.0) + time.perf_counter() - clock
            job.last_round, job.last_digest, job.last_model_cid = round_number, digest, model_cid
            return RoundOutcome(
                round_number=round_number,
                model_digest=digest,
                model_cid=model_cid,
                manifest_cid=manifest_cid,
                participants=tuple(update.dataset_id for update in updates),
                refused=dict(refused),
                block_number=receipt.block_number,
                metrics=metrics,
                recomputed_without=tuple(dropped),
                update_cids=round_cids,
                timings=timings,
            )

    def _commit(
        self,
        job: JobState,
        round_number: int,
        digest: bytes,
        manifest_cid: str,
        participants: list[int],
        manifest: RoundManifest,
    ) -> Receipt:
        """One commitRound (participant bitmask), or for an open job a large round in batches."""
        if job.job_datasets:
            return self.client.commit_round(
                job.job_id,
                round_number,
                job.last_digest,
                digest,
                manifest_cid,
                job.job_datasets,
                participants,
                manifest.attestations_root,
            )
        return self.client.commit_large_round(
            job.job_id,
            round_number,
            job.last_digest,
            digest,
            manifest_cid,
            participants,
            manifest.attestations_root,
        )

    def _manifest(
        self,
        job: JobState,
        updates: list[NodeUpdate],
        digest: bytes,
        model_cid: str,
        update_cids: Mapping[int, str],
        metrics: dict[str, float],
    ) -> RoundManifest:
        return RoundManifest.from_attestations(
            purpose=job.purpose,
            spec_digest=job.spec.spec_digest(),
            parent_digest=job.last_digest,
            model_digest=digest,
            model_cid=model_cid,
            signed_attestations=[update.attestation for update in updates],
            update_cids=update_cids,
            metrics=metrics,
        )

    def _evaluate(self, spec: ModelSpec, model_bytes: bytes) -> dict[str, float]:
        if self.eval_features is None or self.eval_labels is None:
            return {}
        return dict(evaluate(spec, model_from_bytes(model_bytes), self.eval_features, self.eval_labels))

    def _get_with_retry(self, cid: str) -> bytes | bytearray:
        """A stored update read back for the fold, checked against its CID by the store.

        The local store reads it into one buffer (`get_buffer`): `get` would hold its blocks
        and the joined file at once, twice the update, on top of the fold's running sum.
        """
        read = self.store.get_buffer if isinstance(self.store, LocalBlockstore) else self.store.get
        return self._with_store_retry(lambda: read(cid), f" reading {cid}")

    def _store_with_retry(self, data: bytes) -> str:
        def put_and_pin() -> str:
            cid = self.store.put(data)
            self.store.pin(cid)
            return cid

        return self._with_store_retry(put_and_pin, "")

    def _with_store_retry(self, operation: Callable[[], _T], doing: str) -> _T:
        """Runs a content-store operation under `store_retry`; a store that stays down ends the round."""
        policy = self.store_retry
        delay = policy.first_delay_s
        for attempt in range(1, policy.attempts + 1):
            try:
                return operation()
            except (LedgerError, OSError) as error:
                if attempt == policy.attempts:
                    raise RoundNotCommittedError(
                        f"content store unavailable after {attempt} attempts{doing} ({error}); "
                        "the round was not committed"
                    ) from error
                log.warning("content store failed (%s); retrying in %.1f s", error, delay)
                time.sleep(delay)
                delay *= policy.factor
        raise AssertionError("unreachable")
