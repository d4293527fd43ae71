"""`HistoricalReader` against a real anvil: the one-by-one fallback's answers and what they mean.

For `make mutation`; batched historical reads are exercised by every audit test.
"""

from __future__ import annotations

from ledger.audit.chainstate import HistoricalReader
from tests.audit.forge import Lab


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
