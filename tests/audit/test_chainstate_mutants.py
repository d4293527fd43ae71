"""`HistoricalReader` against a real anvil: the one-by-one fallback's answers and what they mean.

For `make mutation`; batched historical reads are exercised by every audit test.
"""

from __future__ import annotations

from ledger.audit.chainstate import HistoricalReader, StateQuery, StatusQuery
from ledger.chain.types import AuthorizationStatus, DatasetState, GrantTerms
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
