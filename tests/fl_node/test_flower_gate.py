"""The Flower mod is the same gate: squatted deeds and swapped specs refused, v2 attestations signed.

The mod runs against a real anvil with the node's own data directory (deployment manifest,
devnet account) and the hospital's partition file; the wrapped ClientApp is a stand-in that
must never run for a refused round.
"""

from __future__ import annotations

from pathlib import Path

from fl_jobs import Job
from flwr.app import Context, Message, RecordDict
from flwr.common import (
    Code,
    FitRes,
    Status,
    parameters_to_ndarrays,
)
from flwr.compat.common.recorddict_compat import (
    fitres_to_recorddict,
    recorddict_to_fitins,
    recorddict_to_fitres,
)

from fl_node.flower import wire
from fl_node.flower.mod import ledger_gate_mod
from fl_node.messages import NodeUpdate, RoundRequest
from ledger.chain.types import GrantTerms
from ledger.deploy import save_deployment
from ledger.modelfile import model_from_bytes, model_to_bytes
from ledger.settings import Settings
from tests.flower.flower_messages import train_message as flower_train_message


def train_message(job: Job, spec_json: str | None = None) -> Message:
    state = job.job
    instructions = wire.RoundInstructions(
        job_id=state.job_id,
        round_number=state.last_round + 1,
        job_datasets=state.job_datasets,
        spec_json=state.spec.model_dump_json() if spec_json is None else spec_json,
        seed=state.seed,
    )
    arrays = wire.state_to_ndarrays(model_from_bytes(job.store.get(state.last_model_cid)))
    return flower_train_message(arrays, instructions.to_config())


def node_context(job: Job, tmp_path: Path, index: int, account: str, **extra: str) -> Context:
    home = tmp_path / f"home-{account}"
    save_deployment(Settings(home=home), job.lab.deployment)
    partition = tmp_path / f"partition-{index}.npz"
    partition.write_bytes(job.federation.partitions[index].to_bytes())
    node_config = {
        "sov-home": str(home),
        "rpc-url": job.lab.rpc_url,
        "account": account,
        "partition": str(partition),
        **extra,
    }
    return Context(run_id=1, node_id=1, node_config=dict(node_config), state=RecordDict(), run_config={})


def returns_the_base_model(message: Message, context: Context) -> Message:
    """A stand-in ClientApp: answers with the weights it was sent and 10 examples."""
    fit_ins = recorddict_to_fitins(message.content, keep_input=True)
    fit_res = FitRes(Status(Code.OK, "ok"), fit_ins.parameters, 10, {})
    return Message(fitres_to_recorddict(fit_res, keep_input=False), reply_to=message)


def never_runs(message: Message, context: Context) -> Message:
    raise AssertionError("the ClientApp must not run for a refused round")


def refusal(job: Job, message: Message, context: Context) -> dict[str, object]:
    block, record = job.lab.latest_block().number, job.lab.get_job(job.job.job_id)
    reply = ledger_gate_mod(message, context, never_runs)
    fit_res = recorddict_to_fitres(reply.content, keep_input=False)
    assert fit_res.status.code == Code.FIT_NOT_IMPLEMENTED
    assert (job.lab.latest_block().number, job.lab.get_job(job.job.job_id)) == (block, record)
    return dict(fit_res.metrics)


def test_mod_signs_a_v2_attestation_the_coordinator_accepts(job: Job, tmp_path: Path) -> None:
    message = train_message(job)
    reply = ledger_gate_mod(message, node_context(job, tmp_path, 0, "dev1"), returns_the_base_model)
    fit_res = recorddict_to_fitres(reply.content, keep_input=False)
    assert fit_res.status.code == Code.OK
    assert fit_res.metrics[wire.BASE_DIGEST] == "0x" + job.job.last_digest.hex()
    assert fit_res.metrics[wire.SPEC_DIGEST] == "0x" + job.job.spec.spec_digest().hex()
    request = RoundRequest(
        job.job.job_id,
        1,
        job.job.job_datasets,
        job.job.last_model_cid,
        job.job.last_digest,
        job.job.spec.model_dump_json(),
        job.job.seed,
    )
    signed = wire.attestation_from_metrics(
        fit_res.metrics, job_id=job.job.job_id, round_number=1, num_examples=10
    )
    state = wire.ndarrays_to_state(job.job.spec, parameters_to_ndarrays(fit_res.parameters))
    update = NodeUpdate(job.dataset(0), model_to_bytes(state), 10, signed)
    assert job.runner.coordinator.verify_update(request, update) is None


def test_mod_refuses_a_deed_held_by_another_account(job: Job, tmp_path: Path) -> None:
    # dev2 holds the deed of partition 1, not of partition 0: its node must not speak for 0.
    metrics = refusal(job, train_message(job), node_context(job, tmp_path, 0, "dev2"))
    assert metrics[wire.REFUSED] == "not_owner"
    assert f"is owned by {job.owner(0).address}, not by this node's account {job.owner(1).address}" in str(
        metrics[wire.REFUSAL_MESSAGE]
    )


def test_mod_refuses_a_spec_other_than_the_jobs(job: Job, tmp_path: Path) -> None:
    swapped = job.job.spec.model_copy(update={"lr": 0.9})
    metrics = refusal(
        job, train_message(job, swapped.model_dump_json()), node_context(job, tmp_path, 0, "dev1")
    )
    assert metrics[wire.REFUSED] == "spec_mismatch"
    assert f"hashes to 0x{swapped.spec_digest().hex()}" in str(metrics[wire.REFUSAL_MESSAGE])


def test_mod_refuses_a_malformed_owner_wallet(job: Job, tmp_path: Path) -> None:
    context = node_context(job, tmp_path, 0, "dev1", **{"owner-wallet": "0x1234"})
    metrics = refusal(job, train_message(job), context)
    assert metrics[wire.REFUSED] == "node_misconfigured"
    assert "'owner-wallet' must be a 20-byte hex address; got '0x1234'" in str(metrics[wire.REFUSAL_MESSAGE])


def test_mod_refuses_a_grant_with_a_privacy_budget(job: Job, tmp_path: Path) -> None:
    # The Flower ClientApp has no DP-SGD: a grant that sets epsilon must not be served by it.
    lab, owner = job.lab, job.owner(0)
    grant = lab.get_grant(job.dataset(0), lab.address, job.job.purpose)
    owner.issue_grant(
        job.dataset(0),
        str(lab.address),
        job.job.purpose,
        grant.not_before,
        grant.expires_at,
        GrantTerms(epsilon=3.0, delta=1e-5),
    )
    metrics = refusal(job, train_message(job), node_context(job, tmp_path, 0, "dev1"))
    assert metrics[wire.REFUSED] == "dp_not_supported"
    assert "sets a privacy budget (epsilon 3)" in str(metrics[wire.REFUSAL_MESSAGE])
