"""The event index's grant terms, large rounds and schema migration, against a real anvil.

The chain is driven through `LedgerClient` (real transactions, signed by the dev accounts); the
index reads the logs back. An index file written by schema version 1 (no terms, no large
rounds) is rebuilt here in that layout from a real one, then opened by this code.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from ledger.chain.types import GrantTerms
from ledger.index import SCHEMA_VERSION, EventIndex
from ledger.participants import participants_hash
from ledger.purposes import purpose_id
from tests.conftest import DeployedChain

AI = purpose_id("ai-training")
GENESIS = hashlib.sha256(b"index genesis").digest()
SPEC = hashlib.sha256(b"index spec").digest()
MODEL = hashlib.sha256(b"index model 1").digest()
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
TERMS = GrantTerms(3, 1e-5, 3, 50)
DAY = 86_400

# grant_events exactly as schema version 1 created it (before grants had terms).
V1_GRANT_EVENTS = """CREATE TABLE grant_events (
    dataset_id TEXT NOT NULL, grantee TEXT NOT NULL, purpose TEXT NOT NULL, kind TEXT NOT NULL,
    not_before INTEGER, expires_at INTEGER, block_number INTEGER NOT NULL, log_index INTEGER NOT NULL,
    tx_hash TEXT NOT NULL, timestamp INTEGER NOT NULL, PRIMARY KEY (block_number, log_index))"""
V1_COLUMNS = (
    "dataset_id, grantee, purpose, kind, not_before, expires_at, block_number, log_index, tx_hash, timestamp"
)


def _datasets(chain: DeployedChain, label: str, count: int, terms: GrantTerms | None = None) -> list[int]:
    """`count` datasets of dev1, each granted to the lab (dev0) for ai-training, ascending."""
    owner, lab = chain[1], chain[0]
    now = lab.latest_block().timestamp
    ids = []
    for i in range(count):
        dataset_id, _ = owner.register_dataset(hashlib.sha256(f"{label} {i}".encode()).digest())
        owner.issue_grant(dataset_id, lab.address or "", AI, now, now + DAY, terms)
        ids.append(dataset_id)
    return sorted(ids)


def _index(chain: DeployedChain, path: Path) -> EventIndex:
    return EventIndex(path, chain[0])


def _downgrade_to_v1(path: Path) -> None:
    """Rewrites a current index file into the version 1 layout, keeping every v1 fact."""
    db = sqlite3.connect(path)
    with db:
        db.execute("ALTER TABLE grant_events RENAME TO grant_events_v2")
        db.execute(V1_GRANT_EVENTS)
        db.execute(f"INSERT INTO grant_events SELECT {V1_COLUMNS} FROM grant_events_v2")
        db.execute("DROP TABLE grant_events_v2")
        db.execute("DROP TABLE large_rounds")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.close()


def _schema(path: Path) -> tuple[str | None, list[str]]:
    db = sqlite3.connect(path)
    version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    columns = [row[1] for row in db.execute("PRAGMA table_info(grant_events)")]
    db.close()
    return (None if version is None else str(version[0])), columns


def test_grants_carry_the_terms_of_their_latest_issue(deployed: DeployedChain, tmp_path: Path) -> None:
    owner, lab = deployed[1], str(deployed[0].address)
    [with_terms] = _datasets(deployed, "terms", 1, TERMS)
    [without] = _datasets(deployed, "no terms", 1)
    [reissued] = _datasets(deployed, "reissued", 1, TERMS)
    now = owner.latest_block().timestamp
    owner.issue_grant(reissued, lab, AI, now, now + DAY)  # replaces the terms with none
    owner.revoke_grant(with_terms, lab, AI)  # a revocation keeps what the issue said
    index = _index(deployed, tmp_path / "index.sqlite")
    index.sync()
    terms = {g.dataset_id: g.terms for g in index.grants()}
    assert terms == {with_terms: TERMS, without: GrantTerms(), reissued: GrantTerms()}
    history = index.grant_history(reissued, lab, AI)
    assert [(e.kind, e.terms) for e in history] == [("issued", TERMS), ("issued", GrantTerms())]
    revoked = index.grant_history(with_terms, lab, AI)
    assert [(e.kind, e.terms) for e in revoked] == [("issued", TERMS), ("revoked", None)]
    # The index says what the chain says.
    assert deployed[0].get_grant(with_terms, lab, AI).terms == TERMS


def test_a_version_1_file_is_migrated_in_place(deployed: DeployedChain, tmp_path: Path) -> None:
    lab = deployed[0]
    [with_terms] = _datasets(deployed, "v1 terms", 1, TERMS)
    [without] = _datasets(deployed, "v1 none", 1)
    ids = _datasets(deployed, "v1 large", 2)
    job_id, _ = lab.create_open_job(AI, GENESIS, SPEC)
    lab.commit_large_round(job_id, 1, GENESIS, MODEL, CID, ids, bytes(32))
    path = tmp_path / "index.sqlite"
    index = _index(deployed, path)
    index.sync()
    synced, events = index.synced_block(), len(index.events())
    index.close()
    _downgrade_to_v1(path)
    assert _schema(path)[0] == "1"

    migrated = _index(deployed, path)
    # Migrated from the rows it holds: nothing dropped, no re-sync from the deployment block.
    assert migrated.synced_block() == synced and len(migrated.events()) == events
    version, columns = _schema(path)
    assert version == SCHEMA_VERSION == "2"
    assert columns[-4:] == ["epsilon_hundredths", "delta_neg_exponent", "min_participants", "max_rounds"]
    assert {g.dataset_id: g.terms for g in migrated.grants()} == {
        with_terms: TERMS,
        without: GrantTerms(),
        ids[0]: GrantTerms(),
        ids[1]: GrantTerms(),
    }
    large = migrated.large_round(job_id, 1)
    assert large is not None and (large.participant_count, large.participants_hash) == (
        2,
        participants_hash(ids),
    )
    # The migrated file keeps indexing: a new grant (terms columns last in this layout) lands.
    [later] = _datasets(deployed, "v1 later", 1, GrantTerms(0, 0, 2, 0))
    migrated.sync()
    assert {g.dataset_id: g.terms for g in migrated.grants()}[later] == GrantTerms(0, 0, 2, 0)
    cursor = migrated.synced_block()
    migrated.close()
    # Opening it again is a no-op (already version 2).
    again = _index(deployed, path)
    assert again.synced_block() == cursor and again.grants() != []
    again.close()


def test_a_file_of_an_unknown_schema_version_is_rebuilt(deployed: DeployedChain, tmp_path: Path) -> None:
    [with_terms] = _datasets(deployed, "future", 1, TERMS)
    path = tmp_path / "index.sqlite"
    index = _index(deployed, path)
    index.sync()
    index.close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        db.execute("ALTER TABLE grant_events DROP COLUMN max_rounds")  # a layout this code cannot read
    db.close()
    rebuilt = _index(deployed, path)
    assert rebuilt.synced_block() == deployed.deployment.deployed_block - 1
    assert rebuilt.grants() == []
    assert _schema(path) == (
        SCHEMA_VERSION,
        [
            "dataset_id",
            "grantee",
            "purpose",
            "kind",
            "not_before",
            "expires_at",
            "block_number",
            "log_index",
            "tx_hash",
            "timestamp",
            "epsilon_hundredths",
            "delta_neg_exponent",
            "min_participants",
            "max_rounds",
        ],
    )
    rebuilt.sync()
    assert [(g.dataset_id, g.terms) for g in rebuilt.grants()] == [(with_terms, TERMS)]
    rebuilt.close()


def test_a_large_round_lists_its_batches_not_its_aborted_attempt(
    deployed: DeployedChain, tmp_path: Path
) -> None:
    lab = deployed[0]
    ids = _datasets(deployed, "large", 3)
    [dropped] = _datasets(deployed, "aborted", 1)
    job_id, _ = lab.create_open_job(AI, GENESIS, SPEC)
    lab.begin_large_round(job_id, 1, GENESIS)
    lab.add_round_participants(job_id, 1, [dropped])
    index = _index(deployed, tmp_path / "index.sqlite")
    index.sync()
    # An open round is not committed: nothing is listed for it yet.
    assert index.round_participants(job_id, 1) == [] and index.large_round(job_id, 1) is None
    receipt = lab.commit_large_round(job_id, 1, GENESIS, MODEL, CID, ids, bytes(32), batch_size=2)
    index.sync()
    [committed] = index.rounds(job_id)
    assert committed.participants == ()  # RoundCommitted's own list is empty for a large round
    large = index.large_round(job_id, 1)
    assert large is not None
    assert (large.participant_count, large.participants_hash, large.block_number) == (
        3,
        participants_hash(ids),
        receipt.block_number,
    )
    assert list(index.large_rounds(job_id)) == [1]
    listed = index.round_participants(job_id, 1)
    assert [p.dataset_id for p in listed] == ids and dropped not in [p.dataset_id for p in listed]
    assert index.round_participant_count(job_id, 1) == 3
    # Each is placed at its batch (two of two, then one), before the commit.
    batches = [e for e in index.events("TrainingLedger", "RoundParticipantsAdded") if e.block_number > 0]
    last_two = [(e.block_number, e.log_index) for e in batches[-2:]]
    assert [(p.block_number, p.log_index) for p in listed] == [last_two[0], last_two[0], last_two[1]]
    assert all(p.block_number < receipt.block_number for p in listed)
    # Pages in ascending id order.
    assert [p.dataset_id for p in index.round_participants(job_id, 1, limit=2, offset=1)] == ids[1:]


def test_a_standard_round_lists_its_participants_at_the_commit(
    deployed: DeployedChain, tmp_path: Path
) -> None:
    lab = deployed[0]
    ids = _datasets(deployed, "standard", 2)
    job_id, _ = lab.create_job(AI, ids, GENESIS, SPEC)
    receipt = lab.commit_round(job_id, 1, GENESIS, MODEL, CID, ids, ids, bytes(32))
    index = _index(deployed, tmp_path / "index.sqlite")
    index.sync()
    [committed] = index.rounds(job_id)
    assert index.large_round(job_id, 1) is None and index.large_rounds(job_id) == {}
    listed = index.round_participants(job_id, 1)
    assert [p.dataset_id for p in listed] == ids
    assert {(p.block_number, p.log_index) for p in listed} == {(receipt.block_number, committed.log_index)}


def test_a_rewound_abort_gives_its_batches_back(deployed: DeployedChain, tmp_path: Path) -> None:
    lab = deployed[0]
    ids = _datasets(deployed, "reorg", 2)
    job_id, _ = lab.create_open_job(AI, GENESIS, SPEC)
    lab.begin_large_round(job_id, 1, GENESIS)
    lab.add_round_participants(job_id, 1, ids)
    index = _index(deployed, tmp_path / "index.sqlite")
    index.sync()
    snapshot = lab.transport.request("evm_snapshot", [])
    lab.abort_large_round(job_id, 1)
    index.sync()
    # The aborted batches leave the round: a re-attempt starts empty.
    assert [index.batch_position(job_id, 1, d) for d in ids] == [None, None]
    # The abort is reorganised away; on the canonical branch the batches stand and are finalized.
    assert lab.transport.request("evm_revert", [snapshot]) is True
    lab.transport.request("anvil_mine", ["0x3"])
    lab.finalize_large_round(job_id, 1, MODEL, CID, 2, participants_hash(ids), bytes(32))
    index.sync()
    assert [p.dataset_id for p in index.round_participants(job_id, 1)] == ids
    fresh = _index(deployed, tmp_path / "fresh.sqlite")
    fresh.sync()
    assert index.round_participants(job_id, 1) == fresh.round_participants(job_id, 1)
    positions = [index.batch_position(job_id, 1, d) for d in ids]
    assert positions == [fresh.batch_position(job_id, 1, d) for d in ids] and None not in positions
