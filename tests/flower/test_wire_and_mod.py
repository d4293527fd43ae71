"""Fast checks of the Flower engine's message encoding and the mod's refusals (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Context, Message, RecordDict
from flwr.common import (
    Code,
)
from flwr.compat.common.recorddict_compat import recorddict_to_fitres

from fl_node.data import partition_bytes
from fl_node.flower import wire
from fl_node.flower.mod import ledger_gate_mod
from fl_node.model import initial_state
from fl_node.spec import default_spec
from ledger.modelfile import model_to_bytes
from ledger.store import cid_of, content_root
from tests.flower.flower_messages import train_message

SPEC = default_spec(4, 2, hidden=(3,))


def _train_message(config: dict[str, wire.Scalar]) -> Message:
    return train_message(wire.state_to_ndarrays(initial_state(SPEC)), config)


def _context(node_config: dict[str, wire.Scalar]) -> Context:
    return Context(run_id=1, node_id=1, node_config=dict(node_config), state=RecordDict(), run_config={})


def _never_called(message: Message, context: Context) -> Message:
    raise AssertionError("the ClientApp must not run for a refused round")


def test_instructions_round_trip_through_config() -> None:
    ids = (3, 2**255 + 7)
    instructions = wire.RoundInstructions(5, 2, ids, SPEC.model_dump_json(), 11)
    config = instructions.to_config()
    assert wire.RoundInstructions.from_config(config) == instructions
    assert wire.RoundInstructions.from_config(config).spec == SPEC


def test_instructions_name_the_missing_key() -> None:
    config = wire.RoundInstructions(5, 2, (3,), SPEC.model_dump_json(), 11).to_config()
    del config[wire.ROUND]
    with pytest.raises(wire.WireError, match=r"no 'sov.round' entry"):
        wire.RoundInstructions.from_config(config)


def test_model_arrays_round_trip_to_identical_bytes() -> None:
    state = initial_state(SPEC)
    rebuilt = wire.ndarrays_to_state(SPEC, wire.state_to_ndarrays(state))
    assert model_to_bytes(rebuilt) == model_to_bytes(state)


def test_arrays_that_do_not_fit_the_spec_are_refused() -> None:
    arrays = wire.state_to_ndarrays(initial_state(SPEC))
    arrays[0] = np.zeros((9, 9), dtype=np.float32)
    with pytest.raises(wire.WireError, match=r"the spec needs float32"):
        wire.ndarrays_to_state(SPEC, arrays)
    with pytest.raises(wire.WireError, match=r"model has 1 arrays, the job's spec needs 4"):
        wire.ndarrays_to_state(SPEC, arrays[:1])


def test_mod_refuses_a_node_without_ledger_config() -> None:
    message = _train_message(wire.RoundInstructions(1, 1, (3,), SPEC.model_dump_json(), 0).to_config())
    reply = ledger_gate_mod(message, _context({}), _never_called)
    fit_res = recorddict_to_fitres(reply.content, keep_input=False)
    assert fit_res.status.code == Code.FIT_NOT_IMPLEMENTED
    assert fit_res.metrics[wire.REFUSED] == "node_misconfigured"
    assert "needs 'data'" in str(fit_res.metrics[wire.REFUSAL_MESSAGE])
    assert fit_res.num_examples == 0 and fit_res.parameters.tensors == []


def test_mod_refuses_a_round_from_a_server_without_a_job(tmp_path: Path) -> None:
    data = partition_bytes(np.zeros((2, 4), dtype=np.float32), np.array([0, 1], dtype=np.int64))
    path = tmp_path / "part.npz"
    path.write_bytes(data)
    node_config: dict[str, wire.Scalar] = {
        "sov-home": str(tmp_path / "home"),
        "rpc-url": "http://127.0.0.1:9",
        "account": "dev1",
        "partition": str(path),
    }
    reply = ledger_gate_mod(_train_message({}), _context(node_config), _never_called)
    fit_res = recorddict_to_fitres(reply.content, keep_input=False)
    assert fit_res.metrics[wire.REFUSED] == "no_job"
    # The refusal names the node's own dataset: the id of the file it holds.
    expected = int.from_bytes(content_root(cid_of(data)), "big")
    assert wire.dataset_id_from_metrics(fit_res.metrics) == expected
    # Nothing was written on the node's side but its decision log, which names the refusal.
    written = sorted(str(p.relative_to(tmp_path / "home")) for p in (tmp_path / "home").rglob("*"))
    assert written == ["node", "node/decisions.jsonl"]
    [decision] = [
        json.loads(line) for line in (tmp_path / "home/node/decisions.jsonl").read_text().splitlines()
    ]
    assert (decision["decision"], decision["reason"]) == ("refused", "no_job")
    assert decision["dataset_id"] == f"0x{expected:064x}"
