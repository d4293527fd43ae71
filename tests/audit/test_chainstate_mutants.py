"""`HistoricalReader` against a real anvil: batched and one-by-one answers and what they mean.

For `make mutation`: each case kills in a fraction of a second what would otherwise cost a
surviving mutant every audit test (batches that silently fall back to one-by-one reads, answers
of the wrong shape, refused reads next to answered ones).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_abi.abi import encode
from web3 import HTTPProvider

from ledger.audit.chainstate import HistoricalReader, StateQuery, StatusQuery, probe_history
from ledger.chain.types import AuthorizationStatus, BlockRef, DatasetState, GrantTerms
from ledger.errors import RPCError
from tests.audit.forge import AI, Lab


def test_one_by_one_answers_are_json_rpc_shaped(lab: Lab) -> None:
    reader = HistoricalReader(lab.lab)
    head = reader._single("eth_blockNumber", [])
    assert set(head) == {"result"} and int(head["result"], 16) >= 1
    unknown = reader._single("eth_nosuchmethod", [])
    assert unknown == {"error": {"message": "Method not found", "code": -32601}}
    # an error that is not about history: no answer, and nothing learnt about the node's history
    assert reader._result(unknown) is None
    assert (reader.has_history, reader.reason) == (None, "")
    future = reader._single("eth_call", [{"to": "0x" + "00" * 20, "data": "0x"}, hex(10**6)])
    assert set(future) == {"error"} and future["error"]["code"] == -32602
    assert reader._result(future) is None
    assert reader.has_history is False
    assert reader.reason == future["error"]["message"]
    assert "BlockOutOfRange" in reader.reason
    # an answer after a refusal keeps the verdict
    assert reader._result({"result": "0x00ff"}) == b"\x00\xff"
    assert reader.has_history is False


def test_a_first_answer_means_history(lab: Lab) -> None:
    reader = HistoricalReader(lab.lab)
    assert reader._result({"result": "0x01"}) == b"\x01"
    assert reader.has_history is True
    assert reader._result({"error": {"code": 3}}) is None  # no message: not a history refusal
    assert reader.has_history is True


def test_historical_reads_return_what_the_contracts_said_then(lab: Lab) -> None:
    h0, h1, _ = lab.hospitals
    coordinator = lab.lab.address or ""
    before = lab.lab.latest_block().number
    now = lab.lab.latest_block().timestamp
    terms = GrantTerms(epsilon=4.0, delta=1e-6, min_participants=2, max_rounds=9)
    h1.client.issue_grant(h1.dataset_id, coordinator, AI, now, now + 3600, terms=terms)
    h0.client.retire_dataset(h0.dataset_id)
    after = lab.lab.latest_block().number
    reader = HistoricalReader(lab.lab)
    states = reader.dataset_states(
        [StateQuery(h0.dataset_id, before), StateQuery(h0.dataset_id, after), StateQuery(12345, after)]
    )
    assert states == {
        StateQuery(h0.dataset_id, before): DatasetState(h0.owner, 0, False),
        StateQuery(h0.dataset_id, after): DatasetState(h0.owner, 0, True),
        StateQuery(12345, after): DatasetState("0x" + "00" * 20, 0, False),
    }
    queries = [
        StatusQuery(h1.dataset_id, coordinator, AI, before),
        StatusQuery(h1.dataset_id, coordinator, AI, after),
    ]
    assert reader.grant_terms(queries) == {queries[0]: GrantTerms(), queries[1]: terms}
    statuses = reader.authorization_statuses(
        [
            *queries,
            StatusQuery(h0.dataset_id, coordinator, AI, after),
            StatusQuery(12345, coordinator, AI, after),
        ]
    )
    assert list(statuses.values()) == [
        AuthorizationStatus.AUTHORIZED,
        AuthorizationStatus.AUTHORIZED,
        AuthorizationStatus.DATASET_RETIRED,
        AuthorizationStatus.UNKNOWN_DATASET,
    ]
    assert reader.has_history is True


class _Recorder:
    """Counts a reader's batches and fails the test on any one-by-one request."""

    def __init__(self, reader: HistoricalReader, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        batch = reader._batch

        def counted(provider: Any, requests: list[tuple[str, list[Any]]]) -> list[Any] | None:
            self.sizes.append(len(requests))
            return batch(provider, requests)

        def refused(method: str, params: list[Any]) -> dict[str, Any]:
            raise AssertionError(f"sent {method} one by one although the node takes batches")

        monkeypatch.setattr(reader, "_batch", counted)
        monkeypatch.setattr(reader, "_single", refused)


def test_reads_go_out_in_batches_of_the_batch_size(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = HistoricalReader(lab.lab, batch_size=2)
    recorder = _Recorder(reader, monkeypatch)
    expected = [lab.lab.transport.request("eth_getBlockByNumber", [hex(n), False]) for n in (1, 2, 3)]
    refs = reader.headers([1, 2, 3])
    assert recorder.sizes == [2, 1]
    assert refs == [
        BlockRef(n, block["hash"], int(block["timestamp"], 16))
        for n, block in zip((1, 2, 3), expected, strict=True)
    ]
    assert all(len(ref.hash) == 66 for ref in refs)


def test_a_web3_provider_batches_through_make_batch_request(lab: Lab) -> None:
    reader = HistoricalReader(lab.lab)
    requests: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", [hex(n), False]) for n in (1, 2)]
    answers = reader._batch(HTTPProvider(lab.node.rpc_url), requests)
    assert answers is not None
    assert [int(a["result"]["number"], 16) for a in answers] == [1, 2]


class _Posting:
    """A provider whose node answers every batch with `answer` (a lying or batch-less node)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.bodies: list[Any] = []

    def post(self, body: bytes) -> bytes:
        self.bodies.append(json.loads(body))
        return json.dumps(self.answer).encode()


def test_a_batch_answer_of_the_wrong_shape_means_no_batch_support(lab: Lab) -> None:
    reader = HistoricalReader(lab.lab)
    requests: list[tuple[str, list[Any]]] = [("eth_chainId", []), ("eth_blockNumber", [])]
    whole = _Posting({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "no batches"}})
    assert reader._batch(whole, requests) is None
    assert whole.bodies == [
        [
            {"jsonrpc": "2.0", "id": 0, "method": "eth_chainId", "params": []},
            {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
        ]
    ]
    assert reader._batch(_Posting([{"id": 0, "result": "0x1"}]), requests) is None
    # answers may come in any order: they are put back in request order by id, when every one has one
    shuffled = [{"id": 1, "result": "0xb"}, {"id": 0, "result": "0xa"}]
    assert reader._batch(_Posting(shuffled), requests) == [shuffled[1], shuffled[0]]
    untagged = ["0xb", {"id": 0, "result": "0xa"}]
    assert reader._batch(_Posting(untagged), requests) == untagged


def test_a_missing_block_names_the_method_and_node(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = HistoricalReader(lab.lab)
    with pytest.raises(RPCError) as raised:
        reader.headers([10**6])
    assert (raised.value.method, raised.value.url) == ("eth_getBlockByNumber", lab.lab.rpc_url)
    assert str(raised.value).startswith(f"block 1000000 is not available at {lab.lab.rpc_url}: ")
    monkeypatch.setattr(reader, "_send", lambda requests: ["not an object"])
    with pytest.raises(RPCError, match="block 5 is not available"):
        reader.headers([5])


def test_probing_history(lab: Lab, pruned_lab: Lab) -> None:
    head = lab.lab.latest_block().number
    assert probe_history(lab.lab, head) == (True, "")
    ok, why = probe_history(pruned_lab.lab, 1)
    assert ok is False and why not in ("", "None")


def test_refused_reads_do_not_hide_the_answered_ones(pruned_lab: Lab) -> None:
    h0 = pruned_lab.hospitals[0]
    coordinator = pruned_lab.lab.address or ""
    head = pruned_lab.lab.latest_block().number
    reader = HistoricalReader(pruned_lab.lab)
    old, new = StateQuery(h0.dataset_id, 1), StateQuery(h0.dataset_id, head)
    assert reader.dataset_states([old, new]) == {old: None, new: DatasetState(h0.owner, 0, False)}
    old_grant, new_grant = (StatusQuery(h0.dataset_id, coordinator, AI, block) for block in (1, head))
    terms = reader.grant_terms([old_grant, new_grant])
    assert terms[old_grant] is None and terms[new_grant] is not None
    assert reader.has_history is False


def test_a_transferred_deed_reads_its_epoch(lab: Lab) -> None:
    # last in the module: it moves h2's deed, which the cases above read as the hospital's own
    h2 = lab.hospitals[2]
    h2.client.transfer_dataset(h2.dataset_id, lab.hospitals[0].owner)
    state = HistoricalReader(lab.lab).dataset_states(
        [StateQuery(h2.dataset_id, lab.lab.latest_block().number)]
    )
    assert list(state.values()) == [DatasetState(lab.hospitals[0].owner, 1, False)]


def test_a_block_before_the_contracts_is_history_too(lab: Lab) -> None:
    # jobCount fails there (no code yet), which only a node that has that block's state can say.
    before = lab.lab.deployment.deployed_block - 1
    assert probe_history(lab.lab, before) == (
        True,
        f"TrainingLedger.jobCount returned no data at block {before}: there is no contract code at "
        f"{lab.lab.deployment.address('TrainingLedger')} there (a block before its deployment, or another "
        "chain's addresses)",
    )


def test_grant_terms_the_node_cannot_give_are_unknown(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    h0 = lab.hospitals[0]
    coordinator = lab.lab.address or ""
    reader = HistoricalReader(lab.lab)
    head = lab.lab.latest_block().number
    # before the deployment there is no code: the node answers with no data
    before, now = (
        StatusQuery(h0.dataset_id, coordinator, AI, b) for b in (lab.lab.deployment.deployed_block - 1, head)
    )
    assert reader.grant_terms([before, now]) == {before: None, now: GrantTerms()}
    # a node that answers a grant no contract could hold (a DP budget without its delta)
    bad = encode(list(reader._grant_fn.output_types), [(0, 2**40, 0, False, False, 0, 100, 0, 0, 0)])
    monkeypatch.setattr(HistoricalReader, "_calls", lambda self, calls: dict.fromkeys(calls, bad))
    assert reader.grant_terms([now]) == {now: None}
