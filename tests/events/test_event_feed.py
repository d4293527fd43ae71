"""`ledger.events.EventFeed` on a real anvil: CloudEvents with stable ids, resumable, reorg-aware."""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime

import pytest
from change_kit import DEMO_TYPES, run_demo

from ledger.events import (
    EventFeed,
    InvalidCursorError,
    UnknownEventTypeError,
    event_id,
    normalise_types,
    parse_cursor,
)
from ledger.purposes import purpose_id
from tests.conftest import DeployedChain

ID = re.compile(r"^31337:\d+:\d+:[0-9a-f]{16}$")


def test_the_demo_reads_as_cloudevents_with_stable_ids(deployed: DeployedChain) -> None:
    facts = run_demo(deployed.clients)
    events = EventFeed(deployed[0]).poll()
    assert [e.type for e in events] == DEMO_TYPES
    for event in events:
        body = event.to_cloudevent()
        assert body["specversion"] == "1.0" and body["datacontenttype"] == "application/json"
        assert ID.match(body["id"]), body["id"]
        # CloudEvents: attribute names are lower-case letters and digits (extensions at most 20).
        assert all(re.fullmatch(r"[a-z0-9]{1,20}", name) for name in body), sorted(body)
        assert body["source"].startswith("sov://31337/0x") and body["type"].startswith(
            "org.sovereign-ledger."
        )
        header = deployed[0].block(event.block_number)
        assert body["time"] == datetime.fromtimestamp(header.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert body["blockhash"] == header.hash
        assert body["id"] == event_id(31337, event.block_number, header.hash, event.tx_hash, event.log_index)
    assert len({e.id for e in events}) == len(events)
    revoked = events[DEMO_TYPES.index("org.sovereign-ledger.grant.revoked")]
    d1 = f"0x{facts.dataset_ids[0]:064x}"
    assert revoked.subject == f"{d1}/{facts.lab}/ai-training"
    assert revoked.source == f"sov://31337/{deployed.deployment.address('UsageGrants')}"
    assert revoked.data == {
        "datasetId": d1,
        "grantee": facts.lab,
        "purpose": "0x" + purpose_id("ai-training").hex(),
        "purposeName": "ai-training",
    }
    assert revoked.block_number == facts.revoke_block
    rounds = [e for e in events if e.type.endswith("round.committed")]
    assert [(r.subject, r.data["round"]) for r in rounds] == [(str(facts.job_id), 1), (str(facts.job_id), 2)]
    assert rounds[1].data["participants"] == [f"0x{facts.dataset_ids[1]:064x}"]
    # Another feed, later, renders the same bytes for the same events: ids are stable.
    again = EventFeed(deployed[1]).start_at(facts.first_block).poll()
    assert [e.to_json() for e in again] == [e.to_json() for e in events]


def test_resuming_after_any_event_gives_the_rest_without_duplicates_or_gaps(deployed: DeployedChain) -> None:
    facts = run_demo(deployed.clients)
    events = EventFeed(deployed[0]).poll()
    ids = [e.id for e in events]
    for k, event in enumerate(events):
        feed = EventFeed(deployed[0]).resume_after(event.id)
        assert [e.id for e in feed.poll()] == ids[k + 1 :]
        assert feed.cursor == (ids[-1] if k + 1 < len(ids) else event.id)
    from_revoke = EventFeed(deployed[0]).start_at(facts.revoke_block).poll()
    assert [e.id for e in from_revoke] == ids[DEMO_TYPES.index("org.sovereign-ledger.grant.revoked") :]
    # A feed that polls as events land sees each once, in order.
    feed = EventFeed(deployed[0]).start_at(facts.last_block + 1)
    assert feed.poll() == []
    assert deployed[1].address is not None
    dataset, _ = deployed[1].register_dataset(b"\x07" * 32)
    assert [e.type for e in feed.poll()] == ["org.sovereign-ledger.dataset.registered"]
    assert feed.poll() == []
    deployed[1].retire_dataset(dataset)
    assert [e.subject for e in feed.poll()] == [f"0x{dataset:064x}"]


def test_a_revocation_is_seen_within_one_block(deployed: DeployedChain) -> None:
    lab, owner = deployed[0], deployed[1]
    assert lab.address is not None
    dataset, _ = owner.register_dataset(b"\x11" * 32)
    now = lab.latest_block().timestamp
    owner.issue_grant(dataset, lab.address, "ai-training", now - 10, now + 3600)
    instant = EventFeed(lab, types=("grant.revoked",)).start_at_head()
    confirmed = EventFeed(lab, confirmations=1, types=("grant.revoked",)).start_at_head()
    receipt = owner.revoke_grant(dataset, lab.address, purpose_id("ai-training"))
    # A watch started now, with one confirmation, still gets the revocation once it is covered.
    late = EventFeed(lab, confirmations=1, types=("grant.revoked",)).start_at_head()
    seen = instant.poll()
    assert [e.block_number for e in seen] == [receipt.block_number]
    assert confirmed.poll() == []  # not yet covered by a block
    deployed[0].transport.request("evm_mine", [])
    assert [e.id for e in confirmed.poll()] == [seen[0].id]
    assert [e.id for e in late.poll()] == [seen[0].id]


def test_a_reorg_rewinds_the_feed_and_the_new_branch_gets_new_ids(deployed: DeployedChain) -> None:
    lab, owner = deployed[0], deployed[1]
    assert lab.address is not None
    snapshot = lab.transport.request("evm_snapshot", [])
    dataset, _ = owner.register_dataset(b"\x21" * 32)
    feed = EventFeed(lab)
    orphaned = feed.poll()
    assert [e.type for e in orphaned] == ["org.sovereign-ledger.dataset.registered"]
    assert lab.transport.request("evm_revert", [snapshot]) is True
    # The other branch: a different dataset in the same block number, then one more.
    other, _ = deployed[2].register_dataset(b"\x22" * 32)
    lab.transport.request("evm_mine", [])
    replaced = feed.poll()
    assert [e.subject for e in replaced] == [f"0x{other:064x}"]
    assert replaced[0].block_number == orphaned[0].block_number and replaced[0].id != orphaned[0].id
    # A consumer that resumes from the orphaned event gets the new branch's block whole.
    resumed = EventFeed(lab).resume_after(orphaned[0].id).poll()
    assert [e.id for e in resumed] == [replaced[0].id]
    assert dataset != other


def test_bad_cursors_and_type_filters_are_refused_with_the_expected_form(deployed: DeployedChain) -> None:
    with pytest.raises(InvalidCursorError, match=r"expected <chainId>:<block>:<logIndex>:<16 hex digits>"):
        parse_cursor("block-12")
    with pytest.raises(InvalidCursorError, match="is an event of chain 5; this feed reads chain 31337"):
        EventFeed(deployed[0]).resume_after("5:12:0:0123456789abcdef")
    head = deployed[0].latest_block().number
    with pytest.raises(
        InvalidCursorError, match=f"names block 999999, but chain 31337 is at block {head}: the chain"
    ):
        EventFeed(deployed[0]).resume_after("31337:999999:0:0123456789abcdef")
    with pytest.raises(UnknownEventTypeError, match=re.escape("did you mean 'grant.revoked'")):
        normalise_types(["grant.revokd"])
    assert normalise_types(["org.sovereign-ledger.round.committed, grant"]) == ("round.committed", "grant")
    with pytest.raises(ValueError, match="confirmations must be 0 or more; got -1"):
        EventFeed(deployed[0], confirmations=-1)


class _CappedRPC:
    """A JSON-RPC proxy in front of the node that refuses eth_getLogs over `cap` blocks, as
    hosted providers do; everything else is forwarded as is."""

    def __init__(self, upstream: str, cap: int) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import httpx

        self.refused = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = json.loads(body)
                if isinstance(request, dict) and request.get("method") == "eth_getLogs":
                    query = request["params"][0]
                    span = int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1
                    if span > cap:
                        proxy.refused += 1
                        answer = {"jsonrpc": "2.0", "id": request["id"], "error": {
                            "code": -32005, "message": f"query exceeds max block range {cap}"}}  # fmt: skip
                        self._reply(json.dumps(answer).encode())
                        return
                self._reply(
                    httpx.post(upstream, content=body, headers={"content-type": "application/json"}).content
                )

            def _reply(self, data: bytes) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_provider_that_caps_log_ranges_gets_smaller_ranges_and_the_same_events(
    deployed: DeployedChain,
) -> None:
    from ledger.chain.client import LedgerClient

    run_demo(deployed.clients)
    direct = EventFeed(deployed[0]).poll()
    proxy = _CappedRPC(deployed.rpc_url, cap=3)
    try:
        feed = EventFeed(LedgerClient.from_url(proxy.url, deployed.deployment))
        assert feed.poll() == direct
        assert proxy.refused >= 1 and feed.chunk_blocks <= 3
    finally:
        proxy.close()


def test_authority_losses_name_revocations_retirements_and_transfers_of_the_jobs_grants_only(
    deployed: DeployedChain,
) -> None:
    from ledger.events import authority_losses

    lab, h1, h2, h3, other = deployed[0], deployed[1], deployed[2], deployed[3], deployed[4]
    assert lab.address is not None and other.address is not None and h3.address is not None
    d1, _ = h1.register_dataset(secrets.token_bytes(32))
    d2, _ = h2.register_dataset(secrets.token_bytes(32))
    d3, _ = h3.register_dataset(secrets.token_bytes(32))
    outside, _ = h1.register_dataset(secrets.token_bytes(32))
    now = lab.latest_block().timestamp
    for owner, dataset in ((h1, d1), (h1, outside)):
        owner.issue_grant(dataset, lab.address, "ai-training", now - 10, now + 3600)
        owner.issue_grant(dataset, lab.address, "analytics", now - 10, now + 3600)
        owner.issue_grant(dataset, other.address, "ai-training", now - 10, now + 3600)
    feed = EventFeed(lab).start_at_head()
    h1.revoke_grant(d1, other.address, purpose_id("ai-training"))  # another lab's grant
    h1.revoke_grant(d1, lab.address, purpose_id("analytics"))  # another purpose
    h1.revoke_grant(outside, lab.address, purpose_id("ai-training"))  # not a dataset of the job
    assert (
        authority_losses(
            feed.poll(), datasets=[d1, d2, d3], coordinator=lab.address, purpose=purpose_id("ai-training")
        )
        == []
    )
    h1.revoke_grant(d1, lab.address, purpose_id("ai-training"))
    h2.retire_dataset(d2)
    h3.transfer_dataset(d3, other.address)
    losses = authority_losses(
        feed.poll(), datasets=[d1, d2, d3], coordinator=lab.address.lower(), purpose=purpose_id("ai-training")
    )
    assert [loss.dataset_id for loss in losses] == [d1, d2, d3]
    assert [loss.reason for loss in losses] == [
        f"the grant on dataset 0x{d1:064x} to {lab.address} for 'ai-training' was revoked",
        f"dataset 0x{d2:064x} was retired by its owner",
        f"dataset 0x{d3:064x} was transferred to {other.address} (its grants end with the transfer)",
    ]
    assert (
        losses[0].describe().startswith(losses[0].reason + f" in block {losses[0].event.block_number} (tx 0x")
    )
