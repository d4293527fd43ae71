"""The Flower strategy on an open job: verified updates of datasets outside any list are committed."""

from __future__ import annotations

from typing import Any

from fl_jobs import Job
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

from fl_node.flower import wire
from fl_node.flower.strategy import LedgerStrategy
from fl_node.messages import NodeUpdate, RoundRequest
from fl_node.model import initial_state
from ledger.modelfile import model_from_bytes
from ledger.purposes import purpose_id


class _Proxy:
    cid = "node"


def _fit_res(update: NodeUpdate) -> FitRes:
    state = model_from_bytes(update.update_bytes)
    return FitRes(
        Status(Code.OK, ""),
        ndarrays_to_parameters(wire.state_to_ndarrays(state)),
        update.num_examples,
        wire.attestation_to_metrics(update.attestation),
    )


def _round(job: Job, strategy: LedgerStrategy, state: Any) -> tuple[Any, dict[str, Any]]:
    strategy.configure_fit(1, strategy.initialize_parameters(None), _NoClients())  # type: ignore[arg-type]
    instructions = strategy._instructions[1]
    request = RoundRequest(
        job_id=state.job_id,
        round_number=instructions.round_number,
        job_datasets=instructions.job_datasets,
        base_model_cid=state.last_model_cid,
        base_digest=state.last_digest,
        spec_json=instructions.spec_json,
        seed=state.seed,
        participants=tuple(job.federation.dataset_ids),
    )
    replies = [node.handle(request) for node in job.runner.nodes]
    results = [(_Proxy(), _fit_res(r)) for r in replies if isinstance(r, NodeUpdate)]
    return strategy.aggregate_fit(1, results, [])  # type: ignore[arg-type]


class _NoClients:
    def sample(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def num_available(self) -> int:
        return 0

    def wait_for(self, *args: Any, **kwargs: Any) -> bool:
        return True


def test_an_open_job_round_through_the_flower_strategy_is_committed(job: Job) -> None:
    state = job.runner.coordinator.create_job(
        purpose=purpose_id("ai-training"),
        datasets=job.federation.dataset_ids,
        spec=job.federation.spec,
        initial_state=initial_state(job.federation.spec),  # type: ignore[arg-type]
        seed=7,
        open_job=True,
    )
    strategy = LedgerStrategy(job.runner.coordinator, state)
    parameters, metrics = _round(job, strategy, state)
    assert parameters is not None, strategy.records[-1].refused
    assert metrics["sov.committed"] is True and metrics["sov.participants"] == 3
    assert strategy.records[-1].refused == {}
    assert job.lab.get_job(state.job_id).last_round == 1
