"""Reading a job from the chain through an RPC provider that caps `eth_getLogs` ranges, as hosted
providers do: the audit splits the range until the node answers, and the verdict is unchanged."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak
from web3.providers.base import BaseProvider

from ledger.audit import audit
from ledger.audit.chainlog import ChainLogs, GrantTimeline, LargeRoundLog, ParticipantBatch
from ledger.chain.client import LedgerClient
from ledger.chain.transport import Transport, make_provider
from ledger.chain.types import Receipt
from ledger.errors import RPCError
from ledger.keys import dev_account
from ledger.participants import participants_hash
from tests.audit.forge import AI, Lab, create_job, enrol_hospital, honest_round

MAX_RANGE = 4


class RangeCappedProvider(BaseProvider):
    """Forwards to a real node, but refuses `eth_getLogs` over more than `max_range` blocks."""

    def __init__(self, url: str, max_range: int = MAX_RANGE, removed: bool = False) -> None:
        super().__init__()
        self.inner = make_provider(url)
        self.max_range = max_range
        self.removed = removed
        self.log_ranges: list[tuple[int, int]] = []
        self.refused = 0

    def make_request(self, method: Any, params: Any) -> Any:
        if method == "eth_getLogs":
            start, end = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            if end - start + 1 > self.max_range:
                self.refused += 1
                return {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "error": {"code": -32005, "message": "query exceeds max range"},
                }
            self.log_ranges.append((start, end))
            answer = self.inner.make_request(method, params)
            if self.removed:  # as after a reorg: every log of the range was dropped from the chain
                answer["result"] = [{**item, "removed": True} for item in answer["result"]]
            return answer
        return self.inner.make_request(method, params)


def _owner_contracts(lab: Lab) -> list[str]:
    return [lab.lab.deployment.address(name) for name in ("DatasetRegistry", "UsageGrants")]


def _capped(lab: Lab, max_range: int, removed: bool = False) -> tuple[ChainLogs, RangeCappedProvider]:
    provider = RangeCappedProvider(lab.node.rpc_url, max_range, removed)
    client = LedgerClient(Transport(provider, lab.node.rpc_url), lab.lab.chain_id, lab.lab.deployment)
    return ChainLogs(client), provider


def test_capped_log_ranges_are_split_and_the_audit_still_verifies(lab: Lab, tmp_path: Path) -> None:
    job = create_job(lab)
    honest_round(lab, job)
    honest_round(lab, job)
    chain, provider = _capped(lab, MAX_RANGE)
    client = chain.client
    assert client.latest_block().number - lab.lab.deployment.deployed_block + 1 > MAX_RANGE

    found = chain.job(job.job_id)
    assert found is not None and [r.round for r in chain.rounds(found)] == [1, 2]
    assert provider.refused > 0
    assert all(end - start + 1 <= MAX_RANGE for start, end in provider.log_ranges)

    started = time.perf_counter()
    report = audit(str(job.job_id), client=client, index=lab.index(tmp_path / "i.sqlite"), store=lab.store)
    assert report.ok, [c.message for c in report.checks if not c.ok]
    assert 0 < report.seconds <= time.perf_counter() - started  # what the report says it took


def test_a_node_that_answers_single_blocks_gets_each_block_once(lab: Lab) -> None:
    addresses = _owner_contracts(lab)
    expected = ChainLogs(lab.lab)._range(addresses, [], 1, 4)
    assert expected, "the hospitals' registrations and grants are in blocks 1-4"
    chain, provider = _capped(lab, 1)
    assert chain._range(addresses, [], 1, 4) == expected
    assert provider.log_ranges == [(1, 1), (2, 2), (3, 3), (4, 4)]


def test_a_single_block_the_node_refuses_is_an_error_not_a_split(lab: Lab) -> None:
    chain, provider = _capped(lab, 0)
    with pytest.raises(RPCError, match="query exceeds max range"):
        chain._range([lab.lab.deployment.address("UsageGrants")], [], 5, 5)
    assert provider.refused == 1


def test_logs_a_reorg_removed_are_not_facts(lab: Lab) -> None:
    addresses = _owner_contracts(lab)
    chain, provider = _capped(lab, 100, removed=True)
    assert chain._range(addresses, [], 1, 4) == []
    assert provider.log_ranges == [(1, 4)]


def test_timelines_are_each_datasets_deed_and_grant_history_for_one_grant_key(
    lab: Lab, tmp_path: Path
) -> None:
    coordinator = lab.lab.address or ""
    h = enrol_hospital(lab, dev_account(6), "timelines")  # registered and granted the lab
    child, _ = h.client.register_dataset(
        keccak(text="timelines: a derived dataset"), h.dataset_id, "ipfs://d"
    )
    now = lab.lab.latest_block().timestamp
    h.client.issue_grant(h.dataset_id, str(dev_account(7).address), AI, now, now + 100)  # another key
    h.client.revoke_grant(h.dataset_id, coordinator, AI)
    h.client.issue_grant(h.dataset_id, coordinator, AI, now, now + 500)
    buyer, next_buyer = dev_account(8), dev_account(9)
    h.client.transfer_dataset(h.dataset_id, buyer.address)
    lab.lab.with_account(buyer).transfer_dataset(h.dataset_id, next_buyer.address)
    lab.lab.with_account(next_buyer).retire_dataset(h.dataset_id)
    index = lab.index(tmp_path / "i.sqlite")
    index.sync()
    unknown = 12345

    timelines, records = ChainLogs(lab.lab).timelines([child, h.dataset_id, unknown, child], coordinator, AI)
    assert sorted(timelines) == sorted([child, h.dataset_id, unknown])
    for d in (h.dataset_id, child):  # the index decodes the same logs with its own code
        record = index.dataset(d)
        assert records[d] == record
        line = timelines[d]
        assert line.registered == (record.block_number, record.log_index)
        assert line.transfers == record.transfers
        assert line.grant_events == tuple(
            replace(e, terms=None) for e in index.grant_history(d, coordinator, AI)
        )
    line = timelines[h.dataset_id]
    assert [e.kind for e in line.grant_events] == ["issued", "revoked", "issued"]
    assert [e.expires_at for e in line.grant_events] == [line.grant_events[0].expires_at, None, now + 500]
    assert line.retired is not None and line.retired[0] == records[h.dataset_id].retired_block
    assert (records[h.dataset_id].owner, records[h.dataset_id].epoch) == (
        next_buyer.address,
        2,
    )  # not the mint
    assert (records[child].parent_id, records[child].uri, records[child].retired_block) == (
        h.dataset_id,
        "ipfs://d",
        None,
    )
    assert unknown not in records and timelines[unknown] == GrantTimeline(unknown, None, None, (), ())


def test_datasets_beyond_one_topic_filter_are_asked_in_chunks(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log filter takes at most `_TOPIC_CHUNK` (100) dataset topics; a job over more is asked
    chunk by chunk, and every chunk's logs count (here with chunks of 2 over the lab's 3 datasets)."""
    coordinator = lab.lab.address or ""
    ids = [h.dataset_id for h in lab.hospitals]
    whole = ChainLogs(lab.lab).timelines(ids, coordinator, AI)
    monkeypatch.setattr("ledger.audit.chainlog._TOPIC_CHUNK", 2)
    assert ChainLogs(lab.lab).timelines(ids, coordinator, AI) == whole
    assert all(whole[0][d].grant_events for d in ids)


def test_large_rounds_are_the_batches_added_since_the_last_commit_or_abort(lab: Lab) -> None:
    ids = sorted(h.dataset_id for h in lab.hospitals)
    digests = [keccak(text=f"chainlog: open job model {i}") for i in range(3)]
    job_id, _ = lab.lab.create_open_job(AI, digests[0], keccak(text="chainlog: spec"))
    lab.lab.begin_large_round(job_id, 1, digests[0])
    lab.lab.add_round_participants(job_id, 1, ids[:1])
    lab.lab.abort_large_round(job_id, 1)  # its batch is not part of round 1
    lab.lab.begin_large_round(job_id, 1, digests[0])
    batches = [lab.lab.add_round_participants(job_id, 1, part) for part in (ids[:2], ids[2:])]
    root, listed = digests[2], participants_hash(ids)  # the batches hash to `listed`; `root` is unchecked
    lab.lab.finalize_large_round(job_id, 1, digests[1], "bafkreione", 3, listed, root)
    lab.lab.begin_large_round(job_id, 2, digests[1])
    batches.append(lab.lab.add_round_participants(job_id, 2, ids))
    lab.lab.finalize_large_round(job_id, 2, digests[2], "bafkreitwo", 3, listed, root)

    chain = ChainLogs(lab.lab)
    job = chain.job(job_id)
    assert job is not None
    found = chain.large_rounds(job)

    def batch(receipt: Receipt) -> ParticipantBatch:
        added = receipt.event("RoundParticipantsAdded")
        return ParticipantBatch(
            tuple(added.args["participants"]),
            receipt.block_number,
            added.log_index,
            receipt.tx_hash,
            lab.lab.block(receipt.block_number).timestamp,
        )

    assert found == {
        1: LargeRoundLog(1, 3, participants_hash(ids), (batch(batches[0]), batch(batches[1]))),
        2: LargeRoundLog(2, 3, participants_hash(ids), (batch(batches[2]),)),
    }
    assert found[1].participants == tuple(ids)
    assert found[1].batch_of(ids[2]) == batch(batches[1]) and found[1].batch_of(12345) is None
