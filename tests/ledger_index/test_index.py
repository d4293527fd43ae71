"""EventIndex against a real anvil running the shipped contracts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from index_world import (
    AI_TRAINING,
    ANALYTICS,
    REPO,
    Chain,
    Deployment,
    build_world,
    dataset_root,
    digest,
    dump,
    free_port,
)
from web3 import HTTPProvider, Web3

from ledger.errors import LedgerError, UnreachableError
from ledger.index import EventIndex, GrantStatus, NotIndexedError, SyncProgress
from ledger.settings import Settings


def open_index(chain: Chain, path: Path, **kwargs: int) -> EventIndex:
    return EventIndex(path, w3=chain.w3, deployment=chain.deployment, **kwargs)


def test_sync_indexes_every_fact_of_the_world(chain: Chain, tmp_path: Path) -> None:
    w = build_world(chain)
    index = open_index(chain, tmp_path / "index.sqlite", chunk_size=4)
    count = index.sync()
    head = chain.w3.eth.block_number
    assert index.synced_block() == head
    assert count == len(index.events())
    assert index.sync() == 0  # nothing new

    by_id = {d.dataset_id: d for d in index.datasets()}
    assert set(by_id) == {w.d_a1, w.d_a2, w.d_b}
    a1, a2, b = by_id[w.d_a1], by_id[w.d_a2], by_id[w.d_b]
    assert (a1.registrant, a1.owner, a1.epoch, a1.uri, a1.parent_id) == (
        w.owner_a,
        w.buyer,
        1,
        "ipfs://a1",
        0,
    )
    assert [t.to_address for t in a1.transfers] == [w.owner_a, w.buyer]
    assert a1.transfers[1].block_number == w.transfer_block
    assert (a2.parent_id, a2.owner, a2.epoch, a2.retired) == (w.d_a1, w.owner_a, 0, False)
    assert (b.retired_block, b.retired) == (w.retire_block, True)
    assert index.dataset(w.d_b) == b

    job = index.job(1)
    assert [j.job_id for j in index.jobs()] == [1]
    assert (job.coordinator, job.purpose, job.datasets) == (w.coordinator, AI_TRAINING, tuple(w.job_datasets))
    assert (job.initial_model_digest, job.spec_digest, job.rounds_committed) == (
        digest("init"),
        digest("spec"),
        4,
    )

    rounds = index.rounds(1)
    assert [r.round for r in rounds] == [1, 2, 3, 4]
    assert [r.block_number for r in rounds] == [w.round_blocks[n] for n in (1, 2, 3, 4)]
    assert rounds[1].participants == tuple(sorted([w.d_a1, w.d_b]))
    assert rounds[3].parent_digest == rounds[2].model_digest == digest("r3")
    for r in rounds:
        block = chain.w3.eth.get_block(r.block_number)
        assert r.block_hash == "0x" + bytes(block["hash"]).hex()
        assert r.timestamp == block["timestamp"]
        assert r.manifest_cid == f"bafkreimanifest{r.round}"
    assert [r.round for r in index.rounds_using_dataset(w.d_a1)] == [1, 2, 4]
    assert [r.round for r in index.rounds_using_dataset(w.d_a2)] == [1]
    assert [r.round for r in index.rounds_by_model_digest(digest("r2"))] == [2]

    grants = {(g.dataset_id, g.purpose): g for g in index.grants(grantee=w.coordinator)}
    assert len(grants) == 5
    assert grants[(w.d_a2, ANALYTICS)].status_at(chain.now()) is GrantStatus.EXPIRED
    assert grants[(w.d_a2, AI_TRAINING)].revoked_block == w.revoke_block
    assert grants[(w.d_a1, AI_TRAINING)].issued_block == w.regrant_block  # the re-grant replaced the old one
    assert grants[(w.d_a1, AI_TRAINING)].epoch == 1
    assert grants[(w.d_b, AI_TRAINING)].dataset_retired_block == w.retire_block
    assert [g.dataset_id for g in index.grants(dataset_id=w.d_b)] == [w.d_b, w.d_b]
    history = index.grant_history(w.d_a1, w.coordinator, AI_TRAINING)
    assert [(e.kind, e.block_number) for e in history] == [
        ("issued", history[0].block_number),
        ("issued", w.regrant_block),
    ]
    now = chain.now()
    assert grants[(w.d_a1, AI_TRAINING)].status_at(now) is GrantStatus.AUTHORIZED
    assert grants[(w.d_b, ANALYTICS)].status_at(now) is GrantStatus.DATASET_RETIRED


def test_grant_state_matches_the_contract_at_every_block(chain: Chain, tmp_path: Path) -> None:
    w = build_world(chain)
    index = open_index(chain, tmp_path / "index.sqlite")
    index.sync()
    unknown = int.from_bytes(dataset_root("never-registered"), "big")
    statuses: set[GrantStatus] = set()
    # From the block where all three contracts exist.
    for block in range(chain.deployment.deployed_block + 2, chain.w3.eth.block_number + 1):
        for dataset_id in (w.d_a1, w.d_a2, w.d_b, unknown):
            for purpose in (AI_TRAINING, ANALYTICS):
                on_chain = chain.grants.functions.authorizationStatus(
                    dataset_id, w.coordinator, purpose
                ).call(block_identifier=block)
                state = index.grant_state_at(dataset_id, w.coordinator, purpose, block)
                assert state.status == on_chain, (block, hex(dataset_id), purpose.hex())
                statuses.add(state.status)
            owner, _epoch, _retired = chain.registry.functions.datasetState(dataset_id).call(
                block_identifier=block
            )
            indexed_owner = index.owner_at(dataset_id, block)
            assert (indexed_owner or "0x0000000000000000000000000000000000000000") == owner
    # The world exercises every reason the contract can give.
    assert statuses == set(GrantStatus)


def test_grant_state_at_a_round_sees_the_same_block_revocation(chain: Chain, tmp_path: Path) -> None:
    w = build_world(chain)
    index = open_index(chain, tmp_path / "index.sqlite")
    index.sync()
    rounds = {r.round: r for r in index.rounds(1)}
    # Every committed participant was authorised at its round's position (the contract enforced it).
    for r in rounds.values():
        for dataset_id in r.participants:
            state = index.grant_state_at(dataset_id, w.coordinator, AI_TRAINING, r.block_number, r.log_index)
            assert state.authorized, (r.round, hex(dataset_id), state.status)
    # Round 2 shares its block with the revocation that precedes it.
    r2 = rounds[2]
    assert r2.block_number == w.revoke_block and r2.log_index > 0
    state = index.grant_state_at(w.d_a2, w.coordinator, AI_TRAINING, r2.block_number, r2.log_index)
    assert state.status is GrantStatus.REVOKED
    assert state.revocation is not None and state.revocation.block_number == w.revoke_block
    before = index.grant_state_at(w.d_a2, w.coordinator, AI_TRAINING, r2.block_number, 0)
    assert before.status is GrantStatus.AUTHORIZED
    moved = index.grant_state_at(w.d_a1, w.coordinator, AI_TRAINING, w.round_blocks[3])
    assert moved.status is GrantStatus.OWNER_CHANGED
    assert moved.owner_change is not None and moved.owner_change.to_address == w.buyer
    # An explicit timestamp past the window: the same grant reads as expired.
    late = index.grant_state_at(
        w.d_a1, w.coordinator, AI_TRAINING, w.round_blocks[4], timestamp=chain.now() + 10**6
    )
    assert late.status is GrantStatus.EXPIRED


def test_sync_in_ranges_resumes_where_it_stopped(chain: Chain, tmp_path: Path) -> None:
    build_world(chain)
    head = chain.w3.eth.block_number
    partial = open_index(chain, tmp_path / "partial.sqlite", chunk_size=3)
    seen: list[SyncProgress] = []
    first = partial.sync(max_ranges=2, on_range=seen.append)
    assert [(p.from_block, p.to_block) for p in seen] == [
        (chain.deployment.deployed_block, chain.deployment.deployed_block + 2),
        (chain.deployment.deployed_block + 3, chain.deployment.deployed_block + 5),
    ]
    assert partial.synced_block() == chain.deployment.deployed_block + 5 < head
    partial.close()
    resumed = open_index(chain, tmp_path / "partial.sqlite", chunk_size=3)
    rest = resumed.sync()
    whole = open_index(chain, tmp_path / "whole.sqlite", chunk_size=1000)
    assert first + rest == whole.sync()
    assert dump(tmp_path / "partial.sqlite") == dump(tmp_path / "whole.sqlite")


def test_a_killed_sync_resumes_to_the_same_index(chain: Chain, tmp_path: Path) -> None:
    build_world(chain)
    path = tmp_path / "index.sqlite"
    d = chain.deployment
    script = textwrap.dedent(
        f"""
        import sys, time
        from web3 import HTTPProvider, Web3
        from ledger.index import EventIndex
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from index_world import Deployment
        deployment = Deployment({d.chain_id}, {d.addresses!r}, {d.deployed_block})
        index = EventIndex({str(path)!r}, w3=Web3(HTTPProvider({chain.rpc_url!r})), deployment=deployment,
                           chunk_size=1)
        def progress(p):
            print(p.to_block, flush=True)
            time.sleep(0.05)
        index.sync(on_range=progress)
        print("done", flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert all(line.strip().isdigit() for line in lines), lines
    index = open_index(chain, path, chunk_size=1)
    stopped = index.synced_block()
    assert int(lines[-1]) <= stopped < chain.w3.eth.block_number
    # No row past the committed cursor survived the kill.
    assert all(e.block_number <= stopped for e in index.events())
    index.sync()
    index.close()
    open_index(chain, tmp_path / "fresh.sqlite").sync()
    assert dump(path) == dump(tmp_path / "fresh.sqlite")


def test_reorg_rewinds_to_the_fork_and_follows_the_new_branch(chain: Chain, tmp_path: Path) -> None:
    owner, other = chain.accounts[1], chain.accounts[2]
    reg = chain.registry.functions
    chain.send(owner, reg.register(dataset_root("base"), 0, "ipfs://base"))
    index = open_index(chain, tmp_path / "index.sqlite", chunk_size=2)
    index.sync()
    fork_block = chain.w3.eth.block_number
    snapshot = chain.rpc("evm_snapshot")
    chain.send(owner, reg.register(dataset_root("orphan"), 0, "ipfs://orphan"))
    chain.mine(3)
    chain.send(owner, reg.register(dataset_root("orphan-2"), 0, ""))
    index.sync()
    assert len(index.datasets()) == 3
    old_head = chain.w3.eth.block_number

    assert chain.rpc("evm_revert", [snapshot]) is True
    chain.send(other, reg.register(dataset_root("canonical"), 0, "ipfs://canonical"))
    chain.mine(6)
    assert chain.w3.eth.block_number > old_head
    index.sync()
    ids = {d.dataset_id for d in index.datasets()}
    assert ids == {int.from_bytes(dataset_root(x), "big") for x in ("base", "canonical")}
    assert index.synced_block() == chain.w3.eth.block_number
    assert (
        index.block_hash(fork_block + 1) == "0x" + bytes(chain.w3.eth.get_block(fork_block + 1)["hash"]).hex()
    )
    index.close()
    open_index(chain, tmp_path / "fresh.sqlite").sync()
    assert dump(tmp_path / "index.sqlite") == dump(tmp_path / "fresh.sqlite")


def test_reorg_to_a_shorter_chain_rewinds(chain: Chain, tmp_path: Path) -> None:
    w_owner = chain.accounts[1]
    reg = chain.registry.functions
    chain.send(w_owner, reg.register(dataset_root("kept"), 0, ""))
    snapshot = chain.rpc("evm_snapshot")
    chain.send(w_owner, reg.register(dataset_root("dropped"), 0, ""))
    chain.mine(5)
    index = open_index(chain, tmp_path / "index.sqlite")
    index.sync()
    assert len(index.datasets()) == 2
    chain.rpc("evm_revert", [snapshot])
    head = chain.w3.eth.block_number
    assert index.synced_block() > head
    assert index.sync() == 0
    assert index.synced_block() == head
    assert [d.dataset_id for d in index.datasets()] == [int.from_bytes(dataset_root("kept"), "big")]


def test_rebuild_gives_the_same_rows(chain: Chain, tmp_path: Path) -> None:
    build_world(chain)
    index = open_index(chain, tmp_path / "index.sqlite", chunk_size=5)
    count = index.sync()
    before = dump(tmp_path / "index.sqlite")
    assert index.rebuild() == count
    assert dump(tmp_path / "index.sqlite") == before


def test_settings_place_the_index_in_the_data_directory(chain: Chain, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    chain.send(chain.accounts[1], chain.registry.functions.register(dataset_root("x"), 0, ""))

    class Client:
        w3 = chain.w3
        deployment = chain.deployment

    index = EventIndex(settings, Client())
    assert index.sync() == 2  # the mint's Transfer and DatasetRegistered
    assert settings.index_path.exists()


def test_another_deployment_starts_the_file_afresh(chain: Chain, tmp_path: Path) -> None:
    build_world(chain)
    path = tmp_path / "index.sqlite"
    open_index(chain, path).sync()
    other = Deployment(
        chain_id=chain.deployment.chain_id,
        addresses={**chain.deployment.addresses, "TrainingLedger": chain.accounts[9]},
        deployed_block=chain.deployment.deployed_block,
    )
    index = EventIndex(path, w3=chain.w3, deployment=other)
    assert index.datasets() == [] and index.synced_block() == other.deployed_block - 1
    assert index.sync() > 0 and index.jobs() == []  # nothing at the other ledger address


def test_unreachable_rpc_names_the_url_and_changes_nothing(chain: Chain, tmp_path: Path) -> None:
    build_world(chain)
    path = tmp_path / "index.sqlite"
    open_index(chain, path).sync(to_block=chain.deployment.deployed_block + 6)
    before = dump(path)
    url = f"http://127.0.0.1:{free_port()}"
    index = EventIndex(
        path, w3=Web3(HTTPProvider(url, request_kwargs={"timeout": 2})), deployment=chain.deployment
    )
    with pytest.raises(UnreachableError, match=url.replace(".", r"\.")) as caught:
        index.sync()
    assert isinstance(caught.value, ConnectionError)
    assert dump(path) == before


def test_lookups_of_unknown_items_say_what_is_missing(chain: Chain, tmp_path: Path) -> None:
    w = build_world(chain)
    index = open_index(chain, tmp_path / "index.sqlite")
    index.sync(to_block=w.round_blocks[1] - 1)
    before = dump(tmp_path / "index.sqlite")
    with pytest.raises(
        NotIndexedError, match=r"job 7 is not in the index \(synced to block \d+\); known jobs: \[1\]"
    ):
        index.job(7)
    missing = int.from_bytes(dataset_root("nope"), "big")
    with pytest.raises(NotIndexedError, match=f"dataset 0x{missing:064x} is not registered as of block"):
        index.dataset(missing)
    with pytest.raises(NotIndexedError, match="past the index's synced block"):
        index.grant_state_at(w.d_a1, w.coordinator, AI_TRAINING, w.round_blocks[4])
    assert index.rounds(1) == []
    assert dump(tmp_path / "index.sqlite") == before
    with pytest.raises(LedgerError, match="chunk_size must be at least 1; got 0"):
        open_index(chain, tmp_path / "index.sqlite", chunk_size=0)
    assert dump(tmp_path / "index.sqlite") == before
