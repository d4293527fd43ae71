"""A hospital's node prepares its own registered table with the job's preprocessing, and logs why.

Against a real anvil: the node config names the CSV the hospital registered (its CID is the
dataset id) and its label column. The gate checks the chain, then the node prepares the
table with the spec the job's digest names; a table that does not fit the job is refused
(`data_mismatch`) before the ClientApp runs, and every decision lands in the node's log.
"""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import Context, Message, RecordDict
from flwr.common import Code, FitRes, Status
from flwr.compat.common.recorddict_compat import (
    fitres_to_recorddict,
    recorddict_to_fitins,
    recorddict_to_fitres,
)

from fl_node.coordinator import Coordinator, JobState
from fl_node.data import draft_preprocessing
from fl_node.flower import wire
from fl_node.flower.app import LedgerNodeClient
from fl_node.flower.mod import ledger_gate_mod
from fl_node.flower.node_site import NodeSite
from fl_node.model import initial_state
from fl_node.spec import ModelSpec
from ledger.modelfile import model_from_bytes
from ledger.purposes import purpose_id
from ledger.store import LocalBlockstore, cid_of_file, content_root
from tests.flower.flower_messages import train_message
from tests.parties.conftest import Parties

LAB, HOSPITAL_A, HOSPITAL_B = 1, 2, 3


def _job(parties: Parties, tables: dict[int, Path]) -> tuple[JobState, LocalBlockstore]:
    chain = parties.chain
    lab = chain[LAB]
    now = lab.latest_block().timestamp
    ids = []
    for owner, table in tables.items():
        dataset_id, _ = chain[owner].register_dataset(content_root(cid_of_file(table)))
        chain[owner].issue_grant(dataset_id, lab.address, "ai-training", now - 60, now + 3600)
        ids.append(dataset_id)
    prep = draft_preprocessing(parties.data / "reference.csv", label="diagnosis")
    spec = ModelSpec(input_dim=prep.width, num_classes=2, hidden=(8,), preprocessing=prep)
    store = LocalBlockstore(parties.root / "lab-blocks")
    job = Coordinator(lab, store).create_job(
        purpose=purpose_id("ai-training"),
        datasets=ids,
        spec=spec,
        initial_state=dict(initial_state(spec)),
        seed=0,
    )
    return job, store


def _message(job: JobState, store: LocalBlockstore) -> Message:
    instructions = wire.RoundInstructions(
        job.job_id, job.last_round + 1, job.job_datasets, job.spec.model_dump_json(), job.seed
    )
    arrays = wire.state_to_ndarrays(model_from_bytes(store.get(job.last_model_cid)))
    return train_message(arrays, instructions.to_config())


def _context(parties: Parties, name: str, account: int, table: Path, label: str) -> Context:
    node_config = {
        "sov-home": str(parties.home(name)),
        "rpc-url": parties.chain.rpc_url,
        "account": f"dev{account}",
        "data": str(table),
        "label": label,
    }
    return Context(run_id=1, node_id=1, node_config=dict(node_config), state=RecordDict(), run_config={})


def _decisions(parties: Parties, name: str) -> list[dict[str, object]]:
    path = parties.root / name / "node" / "decisions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_node_trains_on_its_registered_table_prepared_by_the_jobs_spec(parties: Parties) -> None:
    table = parties.data / "hospital-a.csv"
    job, store = _job(parties, {HOSPITAL_A: table, HOSPITAL_B: parties.data / "hospital-b.csv"})
    seen: list[int] = []

    def client_app(message: Message, context: Context) -> Message:
        # What the installed ClientApp trains on: the table prepared with the job's constants.
        site = NodeSite.from_node_config(context.node_config)
        examples = site.examples(job.spec.preprocessing)
        seen.append(int(examples.x.shape[1]))
        fit_ins = recorddict_to_fitins(message.content, keep_input=True)
        fit_res = FitRes(Status(Code.OK, "ok"), fit_ins.parameters, examples.num_examples, {})
        return Message(fitres_to_recorddict(fit_res, keep_input=False), reply_to=message)

    context = _context(parties, "hospital-a", HOSPITAL_A, table, "diagnosis")
    reply = ledger_gate_mod(_message(job, store), context, client_app)
    fit_res = recorddict_to_fitres(reply.content, keep_input=False)
    assert fit_res.status.code == Code.OK
    assert seen == [job.spec.input_dim]
    assert fit_res.num_examples == sum(1 for _ in table.open()) - 1  # every labelled row
    [decision] = _decisions(parties, "hospital-a")
    assert decision["decision"] == "trained" and decision["round"] == 1
    assert decision["dataset_id"] == f"0x{int.from_bytes(content_root(cid_of_file(table)), 'big'):064x}"
    assert decision["spec_digest"] == "0x" + job.spec.spec_digest().hex()
    assert "standardised" in str(decision["preprocessing"])
    # The real ClientApp's client prepares the same examples (one cached preparation).
    assert LedgerNodeClient(NodeSite.from_node_config(context.node_config)).site.examples(
        job.spec.preprocessing
    ).x.shape == (fit_res.num_examples, job.spec.input_dim)


def test_node_refuses_a_table_that_does_not_fit_the_jobs_preprocessing(parties: Parties) -> None:
    # Hospital B registered a table without one of the job's columns.
    header, *rows = (parties.data / "hospital-b.csv").read_text().splitlines()
    names = header.split(",")
    drop = names.index("mean radius")
    lacking = parties.data / "hospital-b-lacking.csv"
    lacking.write_text(
        "\n".join(",".join(c for i, c in enumerate(r.split(",")) if i != drop) for r in [header, *rows])
        + "\n"
    )
    job, store = _job(parties, {HOSPITAL_A: parties.data / "hospital-a.csv", HOSPITAL_B: lacking})

    def never_runs(message: Message, context: Context) -> Message:
        raise AssertionError("the ClientApp must not run for a refused round")

    before = parties.chain[LAB].latest_block().number
    for label, expected in (
        ("diagnosis", "has no feature column 'mean radius'"),
        ("outcome", "this node's label column is 'outcome', but the job's preprocessing uses 'diagnosis'"),
    ):
        context = _context(parties, "hospital-b", HOSPITAL_B, lacking, label)
        reply = ledger_gate_mod(_message(job, store), context, never_runs)
        fit_res = recorddict_to_fitres(reply.content, keep_input=False)
        assert fit_res.status.code == Code.FIT_NOT_IMPLEMENTED
        assert fit_res.metrics[wire.REFUSED] == "data_mismatch"
        assert expected in str(fit_res.metrics[wire.REFUSAL_MESSAGE])
    assert parties.chain[LAB].latest_block().number == before  # nothing was sent to the chain
    decisions = _decisions(parties, "hospital-b")
    assert [(d["decision"], d["reason"]) for d in decisions] == [("refused", "data_mismatch")] * 2
    assert "mean radius" in str(decisions[0]["message"])
