"""A Flower Strategy wrapper that anchors and commits every round on the ledger.

`LedgerStrategy` leaves client selection and evaluation to an inner strategy (FedAvg by
default) and takes over what the ledger guarantees:

- `configure_fit` adds the round's instructions (job, round, dataset list, spec, seed) to
  every node's `FitIns`, so each node's `ledger_gate_mod` can check the chain itself;
- `aggregate_fit` reads the refusals, verifies every update against its signed
  attestation (`Coordinator.verify_update`: base and spec digests, update digest, example
  count, signer = the dataset's owner on chain or accepted by its EIP-1271 wallet), then
  hands the verified updates to the coordinator's aggregate-anchor-commit step: every
  update stored and pinned, `ledger.aggregation.aggregate_updates` (the audit's FedAvg),
  model and round manifest (listing the update CIDs) stored and pinned, `commitRound`
  on-chain, and a recomputation without any dataset whose grant ended before the commit. The
  parameters it returns are exactly the committed model's, so the next round's nodes
  receive the model whose digest the chain holds.

A round without enough valid updates is not committed; Flower keeps the previous model
and the next Flower round retries the same ledger round.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg, Strategy

from ledger.errors import LedgerError
from ledger.modelfile import model_from_bytes, model_to_bytes

from ..coordinator import Coordinator, JobState, RoundOutcome
from ..errors import FLError, QuorumError, RoundNotCommittedError
from ..messages import NodeUpdate, RoundRequest
from . import wire

log = logging.getLogger(__name__)

FitFailure = tuple[ClientProxy, FitRes] | BaseException
EvaluateFailure = tuple[ClientProxy, EvaluateRes] | BaseException


def _hex(dataset_id: int) -> str:
    return f"0x{dataset_id:064x}"


@dataclass
class FlowerRoundRecord:
    """One Flower round as the ledger saw it: committed (with its outcome) or not."""

    flower_round: int
    round_number: int
    outcome: RoundOutcome | None
    refused: dict[int, str] = field(default_factory=dict)
    unattributed: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (dataset ids as 0x-hex uint256)."""
        record: dict[str, Any] = {
            "flower_round": self.flower_round,
            "round": self.round_number,
            "committed": self.outcome is not None,
            "refused": {_hex(d): why for d, why in sorted(self.refused.items())},
            "unattributed_failures": list(self.unattributed),
        }
        if self.error is not None:
            record["error"] = self.error
        if self.outcome is not None:
            o = self.outcome
            record.update(
                model_digest="0x" + o.model_digest.hex(),
                model_cid=o.model_cid,
                manifest_cid=o.manifest_cid,
                participants=[_hex(d) for d in o.participants],
                block_number=o.block_number,
                metrics=dict(o.metrics),
                recomputed_without=[_hex(d) for d in o.recomputed_without],
            )
        return record


class LedgerStrategy(Strategy):
    """Wraps a Flower strategy so that every round is gated, verified, anchored and committed."""

    def __init__(
        self,
        coordinator: Coordinator,
        job: JobState,
        *,
        inner: Strategy | None = None,
        report_path: Path | None = None,
        on_round: Callable[[FlowerRoundRecord], None] | None = None,
    ) -> None:
        self.coordinator = coordinator
        self.job = job
        self.inner = inner if inner is not None else FedAvg(fraction_fit=1.0, fraction_evaluate=0.0)
        self.report_path = report_path
        self.on_round = on_round
        self.records: list[FlowerRoundRecord] = []
        self._instructions: dict[int, wire.RoundInstructions] = {}

    def __repr__(self) -> str:
        return f"LedgerStrategy(job={self.job.job_id}, inner={self.inner!r})"

    # ------------------------------------------------------------------ model

    def _committed_parameters(self) -> Parameters:
        """The job's last committed model, read back from the content store and checked."""
        data = self.coordinator.store.get(self.job.last_model_cid)
        state = model_from_bytes(data, expected_digest=self.job.last_digest)
        return ndarrays_to_parameters(wire.state_to_ndarrays(state))

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        """The job's current committed model (round 0: the anchored initial model)."""
        return self._committed_parameters()

    # ------------------------------------------------------------------ fit

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """The inner strategy's selection, each `FitIns` carrying the ledger round's instructions."""
        instructions = wire.RoundInstructions(
            job_id=self.job.job_id,
            round_number=self.job.last_round + 1,
            job_datasets=self.job.job_datasets,
            spec_json=self.job.spec.model_dump_json(),
            seed=self.job.seed,
        )
        self._instructions[server_round] = instructions
        extra = instructions.to_config()
        return [
            (client, FitIns(ins.parameters, {**ins.config, **extra}))
            for client, ins in self.inner.configure_fit(server_round, parameters, client_manager)
        ]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[FitFailure],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Verify, aggregate, anchor and commit; returns the committed model or None."""
        instructions = self._instructions.pop(server_round)
        record = FlowerRoundRecord(server_round, instructions.round_number, None)
        self._read_failures(failures, record)
        updates = self._verified_updates(instructions, results, record)
        try:
            outcome = self.coordinator.aggregate_and_commit(
                self.job, instructions.round_number, updates, record.refused
            )
        except (QuorumError, RoundNotCommittedError) as error:
            record.error = str(error)
            log.warning("ledger round %d not committed: %s", instructions.round_number, error)
            self._finish(record)
            return None, {"sov.committed": False}
        record.outcome = outcome
        record.refused = dict(outcome.refused)
        self._finish(record)
        metrics: dict[str, Scalar] = {
            "sov.committed": True,
            "sov.round": outcome.round_number,
            "sov.participants": len(outcome.participants),
            "sov.block_number": outcome.block_number,
        }
        metrics.update(outcome.metrics)
        return self._committed_parameters(), metrics

    def _read_failures(self, failures: list[FitFailure], record: FlowerRoundRecord) -> None:
        for failure in failures:
            if isinstance(failure, BaseException):
                # A node that crashed or timed out cannot say which dataset it holds.
                record.unattributed.append(f"{type(failure).__name__}: {failure}")
                continue
            proxy, res = failure
            dataset_id = wire.dataset_id_from_metrics(res.metrics)
            reason = str(res.metrics.get(wire.REFUSED, "failed"))
            text = str(res.metrics.get(wire.REFUSAL_MESSAGE, res.status.message))
            if dataset_id is None:
                record.unattributed.append(f"node {proxy.cid}: {res.status.message}")
            else:
                record.refused[dataset_id] = f"{reason}: {text}"

    def _verified_updates(
        self,
        instructions: wire.RoundInstructions,
        results: list[tuple[ClientProxy, FitRes]],
        record: FlowerRoundRecord,
    ) -> list[NodeUpdate]:
        request = RoundRequest(
            job_id=self.job.job_id,
            round_number=instructions.round_number,
            job_datasets=self.job.job_datasets,
            base_model_cid=self.job.last_model_cid,
            base_digest=self.job.last_digest,
            spec_json=instructions.spec_json,
            seed=self.job.seed,
        )
        by_dataset: dict[int, NodeUpdate] = {}
        for proxy, res in results:
            try:
                signed = wire.attestation_from_metrics(
                    res.metrics,
                    job_id=request.job_id,
                    round_number=request.round_number,
                    num_examples=int(res.num_examples),
                )
                state = wire.ndarrays_to_state(self.job.spec, parameters_to_ndarrays(res.parameters))
            except (FLError, LedgerError) as error:
                record.unattributed.append(f"node {proxy.cid}: reply without a valid attestation: {error}")
                continue
            dataset_id = signed.attestation.dataset_id
            # An open job (no dataset list, large rounds) admits any dataset its grant covers;
            # the coordinator checks the grant again when it commits.
            if self.job.job_datasets and dataset_id not in self.job.job_datasets:
                record.refused[dataset_id] = "rejected update: the dataset is not one of the job's"
                continue
            if dataset_id in by_dataset:
                # Two nodes claiming one dataset: neither weight can be trusted.
                record.refused[dataset_id] = "rejected update: two nodes sent updates for this dataset"
                del by_dataset[dataset_id]
                continue
            update = NodeUpdate(
                dataset_id=dataset_id,
                update_bytes=model_to_bytes(state),
                num_examples=int(res.num_examples),
                attestation=signed,
                metrics=wire.training_metrics(res.metrics),
            )
            try:
                problem = self.coordinator.verify_update(request, update)
            except LedgerError as error:
                problem = str(error)
            if problem:
                record.refused[dataset_id] = f"rejected update: {problem}"
            else:
                by_dataset[dataset_id] = update
        return [by_dataset[d] for d in sorted(by_dataset)]

    def _finish(self, record: FlowerRoundRecord) -> None:
        self.records.append(record)
        for dataset_id, why in sorted(record.refused.items()):
            log.warning(
                "ledger round %d: dataset %s left out: %s", record.round_number, _hex(dataset_id), why
            )
        if record.outcome is not None:
            o = record.outcome
            log.info(
                "ledger round %d committed in block %d: model %s, manifest %s, %d participant(s)",
                o.round_number,
                o.block_number,
                o.model_cid,
                o.manifest_cid,
                len(o.participants),
            )
        if self.report_path is not None:
            self.write_report(self.report_path)
        if self.on_round is not None:
            self.on_round(record)

    def report(self) -> dict[str, Any]:
        """The run so far: the job and every Flower round's ledger record."""
        client = self.coordinator.client
        return {
            "engine": "flower",
            "chain_id": client.chain_id,
            "training_ledger": client.deployment.address("TrainingLedger"),
            "job_id": self.job.job_id,
            "job_datasets": [_hex(d) for d in self.job.job_datasets],
            "last_round": self.job.last_round,
            "last_digest": "0x" + self.job.last_digest.hex(),
            "last_model_cid": self.job.last_model_cid,
            "rounds": [record.to_json() for record in self.records],
        }

    def write_report(self, path: Path) -> None:
        """Writes `report()` as JSON, atomically (a reader never sees half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.report(), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)

    # ------------------------------------------------------------------ evaluation

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        """Federated evaluation is the inner strategy's business."""
        return self.inner.configure_evaluate(server_round, parameters, client_manager)

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[EvaluateFailure],
    ) -> tuple[float | None, dict[str, Scalar]]:
        """Delegated to the inner strategy."""
        return self.inner.aggregate_evaluate(server_round, results, failures)

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict[str, Scalar]] | None:
        """Delegated to the inner strategy (the coordinator's own test metrics go in the manifest)."""
        return self.inner.evaluate(server_round, parameters)
