"""Target resolution against a real chain and store: a model CID the store does not hold.

The auditor may be given a model's CID without its bytes; the lineage is then found through
the round manifests that name it (`resolve_target`, `audit_model`, the API's entry point).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import synthetic
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ledger.audit import AuditTargetError, audit, audit_model, resolve_target
from ledger.audit.chainlog import ChainLogs
from ledger.audit.chainstate import HistoricalReader
from ledger.audit.lineage import (
    AuditTarget,
    RoundFacts,
    _fetch_round,
    _fetch_spec,
    _looks_like_cid,
    _recompute,
    _recover,
    _show,
    compare_index,
    grant_status_name,
    rebuild_lineage,
    spec_cid,
)
from ledger.chain.client import LedgerClient
from ledger.chain.types import AuthorizationStatus, DatasetState, GrantTerms
from ledger.errors import LedgerError
from ledger.index import GrantStatus
from ledger.keys import dev_account
from ledger.provenance import AttestationError, domain_separator, recover_signer
from ledger.secp import fast_recover
from ledger.store import LocalBlockstore, cid_of
from tests.audit.forge import (
    Lab,
    commit,
    contributions,
    create_job,
    enrol_hospital,
    honest_round,
    round_then_in_its_block,
    round_then_revocation_in_its_block,
)

_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _copy_without(lab: Lab, path: Path, *cids: str) -> LocalBlockstore:
    shutil.copytree(lab.store.directory, path)
    store = LocalBlockstore(path)
    for cid in cids:
        store.block_path(cid).unlink()
        assert not store.has(cid)
    return store


def test_a_model_cid_without_its_bytes_is_found_through_the_manifests(lab: Lab, tmp_path: Path) -> None:
    job = create_job(lab)
    first = honest_round(lab, job)
    second = honest_round(lab, job)
    # the store lacks both models and the first round's manifest: the second manifest names the CID
    store = _copy_without(lab, tmp_path / "store", first.model_cid, second.model_cid, first.manifest_cid)
    index = lab.index(tmp_path / "index.sqlite")
    index.sync()
    target = resolve_target(second.model_cid, index, store)
    assert target == AuditTarget(second.model_cid, "model-cid", job.job_id, 2, second.committed_digest)
    report = audit_model(second.model_cid, lab.lab, index, lab.store)
    assert (report.lineage.target.kind, report.lineage.target.job_id, report.lineage.target.round) == (
        "model-cid",
        job.job_id,
        2,
    )
    assert report.ok, [c.message for c in report.failures]
    # a CID no manifest names
    with pytest.raises(AuditTargetError) as raised:
        resolve_target(first.model_cid, index, store)
    assert str(raised.value) == (
        f"model CID {first.model_cid} is not in the content store and no readable round manifest names it; "
        "import the content (a CAR export) or give the model file"
    )


# ------------------------------------------------------------------------------ pure helpers


def test_fast_recovery_agrees_with_the_explaining_path() -> None:
    account = Account.from_key(keccak(text="node"))
    digest = keccak(text="leaf")
    signature = "0x" + bytes(account.unsafe_sign_hash(digest).signature).hex()
    assert fast_recover(digest, signature) == account.address == recover_signer(digest, signature)
    raw = bytes.fromhex(signature[2:])
    low_v = "0x" + (raw[:64] + bytes([raw[64] - 27])).hex()
    assert fast_recover(digest, low_v) == account.address
    assert _recover(digest, signature) == account.address
    # anything the fast path cannot take goes to the slow path, which explains (or recovers)
    high_s = "0x" + (raw[:32] + (_N - int.from_bytes(raw[32:64], "big")).to_bytes(32, "big") + raw[64:]).hex()
    half = "0x" + (raw[:32] + (_N // 2).to_bytes(32, "big") + raw[64:]).hex()
    above_half = "0x" + (raw[:32] + (_N // 2 + 1).to_bytes(32, "big") + raw[64:]).hex()
    zero_r = "0x" + (bytes(32) + raw[32:]).hex()
    zero_s = "0x" + (raw[:32] + bytes(32) + raw[64:]).hex()
    bad_v = "0x" + (raw[:64] + bytes([29])).hex()
    for refused in (
        signature[:-2],
        signature + "00",
        "0x" + "zz" * 65,
        high_s,
        above_half,
        zero_r,
        zero_s,
        bad_v,
    ):
        assert fast_recover(digest, refused) is None, refused
    assert fast_recover(digest, half) == recover_signer(digest, half)  # s at exactly n/2 is low
    # in range, but r is the x of no point on the curve
    off_curve = "0x" + (5).to_bytes(32, "big").hex() + (5).to_bytes(32, "big").hex() + "1b"
    with pytest.raises(AttestationError) as raised:
        recover_signer(digest, off_curve)
    assert str(raised.value) == "signature does not recover a public key: failed to recover ECDSA public key"
    for malleable in (high_s, above_half):
        with pytest.raises(AttestationError, match="lower half"):
            _recover(digest, malleable)


def test_show_renders_digests_ids_and_values() -> None:
    assert _show(b"\x01\x02") == "0x0102"
    assert _show((1, 2)) == f"[0x{1:064x}, 0x{2:064x}]"
    assert _show(("a", 3)) == f"[a, 0x{3:064x}]"
    assert _show(7) == "7" and _show("x") == "x"


def test_grant_status_names() -> None:
    assert grant_status_name(0) == "authorized"
    assert grant_status_name(AuthorizationStatus.NOT_YET_VALID) == "not yet valid"
    assert grant_status_name(GrantStatus.UNKNOWN_DATASET) == "unknown dataset"


def test_cid_shapes_and_the_spec_cid() -> None:
    cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    assert _looks_like_cid(cid)
    assert _looks_like_cid("b" + "a" * 40)
    assert not _looks_like_cid("b" + "a" * 39)  # too short
    assert not _looks_like_cid(cid.upper())
    assert not _looks_like_cid("q" + cid[1:])
    assert not _looks_like_cid(cid[:20] + "-" + cid[21:])
    digest = hashlib.sha256(b"spec").digest()
    assert spec_cid(digest) == cid_of(b"spec")


def test_unreadable_targets_are_named(lab: Lab, tmp_path: Path) -> None:
    index = lab.index(tmp_path / "index.sqlite")
    with pytest.raises(AuditTargetError) as raised:
        resolve_target("  not-a-target ", index, lab.store)
    assert str(raised.value) == (
        "audit target '  not-a-target ' is neither a job id (e.g. 3), an existing model file, a model CID "
        "(bafk...) nor a 32-byte model digest (0x + 64 hex digits)"
    )


def test_spec_is_read_by_its_digest_when_the_store_has_it(tmp_path: Path) -> None:
    store = LocalBlockstore(tmp_path / "s")
    document = {"model": {"kind": "logreg"}}
    data = json.dumps(document).encode()
    store.put(data)
    assert _fetch_spec(store, hashlib.sha256(data).digest()) == document
    assert _fetch_spec(store, hashlib.sha256(b"absent").digest()) is None
    store.put(b"[1, 2]")
    assert _fetch_spec(store, hashlib.sha256(b"[1, 2]").digest()) is None  # not an object
    store.put(b"\xff not json")
    assert _fetch_spec(store, hashlib.sha256(b"\xff not json").digest()) is None


def test_a_digest_committed_twice_names_every_commitment(lab: Lab, tmp_path: Path) -> None:
    # two jobs from the same initial model; FedAvg of the same updates gives both the same round 1
    a, b = create_job(lab, seed=5), create_job(lab, seed=5)
    index = lab.index(tmp_path / "index.sqlite")
    index.sync()
    initial = "0x" + a.last_digest.hex()
    assert resolve_target(initial, index, lab.store) == AuditTarget(
        initial, "model-digest", a.job_id, 0, a.last_digest, ((b.job_id, 0),)
    )
    first, second = honest_round(lab, a, seed=5), honest_round(lab, b, seed=5)
    assert first.committed_digest == second.committed_digest
    index.sync()
    bare = first.committed_digest.hex()  # without 0x
    assert resolve_target(bare, index, lab.store) == AuditTarget(
        bare, "model-digest", a.job_id, 1, first.committed_digest, ((b.job_id, 1),)
    )
    # a job id, resolved from the index alone (no chain given): its rounds as the index counts them
    assert resolve_target(f" {a.job_id} ", index, lab.store) == AuditTarget(str(a.job_id), "job", a.job_id, 1)
    model = tmp_path / "model.safetensors"
    model.write_bytes(first.model_bytes)
    assert resolve_target(str(model), index, lab.store) == AuditTarget(
        str(model), "model-file", a.job_id, 1, first.committed_digest, ((b.job_id, 1),)
    )
    with pytest.raises(AuditTargetError) as raised:
        resolve_target("ab" * 32, index, lab.store)
    assert str(raised.value) == (
        f"no committed round and no job's initial model has digest 0x{'ab' * 32} (from {'ab' * 32}); "
        f"the index is synced to block {index.synced_block()}: the model was never committed on this chain"
    )


def test_state_reads_at_each_block_are_what_the_checks_compare(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node whose state reads disagree with its logs: another deed holder at the commit's block,
    and a privacy budget on a grant whose logs carry none. Both reads reach the checks."""
    job = create_job(lab)
    forged = honest_round(lab, job)
    stranger = to_checksum_address("0x" + "12" * 20)
    read_states = HistoricalReader.dataset_states

    def other_holder(self: HistoricalReader, queries: Any) -> dict[Any, DatasetState | None]:
        return {q: s and replace(s, owner=stranger) for q, s in read_states(self, queries).items()}

    monkeypatch.setattr(HistoricalReader, "dataset_states", other_holder)
    budget = GrantTerms(epsilon=3.0, delta=1e-5)
    monkeypatch.setattr(HistoricalReader, "grant_terms", lambda self, queries: dict.fromkeys(queries, budget))
    report = audit(str(job.job_id), client=lab.lab, index=lab.index(tmp_path / "i.sqlite"), store=lab.store)

    failed = [c.message for c in report.checks if c.failed]
    block = forged.receipt.block_number
    for h in lab.hospitals:
        ds = f"0x{h.dataset_id:064x}"
        assert any(
            m.startswith(f"round 1: dataset {ds}")
            and m.endswith(
                f": the registry says the deed holder at block {block} was {stranger}, the chain's "
                f"Transfer logs say {h.owner}"
            )
            for m in failed
        ), failed
        assert (
            f"round 1: dataset {ds}: the grant sets a privacy budget (epsilon 3, delta 1e-05) but the "
            "attestation carries no DP parameters"
        ) in failed


def test_a_revocation_later_in_the_rounds_own_block_is_not_a_lie(lab: Lab, tmp_path: Path) -> None:
    """The contract read at block N sees the end of N: a revocation after the commit in the same
    block makes it say `revoked` where the logs say the grant was valid at the commit. That is
    the chain's order, not a lie; the check passes and says where the grant was valid."""
    h = enrol_hospital(lab, dev_account(6), "lineage: revoked in the block of its round")
    job = create_job(lab, [h])
    forged = round_then_revocation_in_its_block(lab, job, h, [h])  # (the module's hospitals keep theirs)

    report = audit(str(job.job_id), client=lab.lab, index=lab.index(tmp_path / "i.sqlite"), store=lab.store)
    [grant] = [c for c in report.checks if c.name == "grant" and c.dataset_id == h.dataset_id]
    assert grant.ok, grant.message
    assert f"was valid at block {forged.receipt.block_number}: " in grant.message
    assert report.lineage.rounds[0].participants[0].chain_status is not None


def test_a_deed_transferred_later_in_the_rounds_own_block_was_still_the_signers_at_the_commit(
    lab: Lab, tmp_path: Path
) -> None:
    """The owner at a commit is the one at the commit's log position: a transfer mined after it
    in the same block moves the deed from then on, not for the round (its attestation verifies)."""
    h = enrol_hospital(lab, dev_account(7), "lineage: deed transferred in the block of its round")
    job = create_job(lab, [h])
    buyer = dev_account(8).address
    transfer = ("DatasetRegistry", "transferFrom", [h.account.address, buyer, h.dataset_id])
    forged = round_then_in_its_block(lab, job, h.account, transfer, [h])
    assert lab.lab.dataset_state(h.dataset_id).owner == buyer

    report = audit(str(job.job_id), client=lab.lab, index=lab.index(tmp_path / "i.sqlite"), store=lab.store)
    assert report.ok, [c.message for c in report.failures]
    [p] = report.lineage.rounds[0].participants
    assert (p.owner, p.owner_end_of_block) == (h.account.address, buyer)
    [attestation] = [c for c in report.checks if c.name == "attestation"]
    assert attestation.message == (
        f"round 1: dataset 0x{h.dataset_id:064x}: attestation (50 examples, on the round's parent and the "
        f"job's spec digest) signed by its owner {h.account.address}"
    )
    [grant] = [c for c in report.checks if c.name == "grant"]
    assert f"was valid at block {forged.receipt.block_number}: " in grant.message


def test_a_round_is_fetched_from_the_store_and_what_is_missing_is_named(tmp_path: Path) -> None:
    facts = synthetic.round_facts(1, synthetic.INITIAL)
    manifest = facts.manifest
    assert manifest is not None
    store = LocalBlockstore(tmp_path / "store")
    domain = domain_separator(synthetic.CHAIN_ID, synthetic.LEDGER)

    def fetched(manifest_cid: str = facts.committed.manifest_cid) -> RoundFacts:
        fresh = RoundFacts(committed=replace(facts.committed, manifest_cid=manifest_cid))
        _fetch_round(fresh, store, domain)
        return fresh

    cid = facts.committed.manifest_cid
    nothing = fetched()
    assert nothing.manifest is None and nothing.model_cid is None and nothing.leaves == {}
    assert nothing.manifest_error == (
        f"manifest {cid} does not resolve to verified bytes: cannot read {cid}: no block {cid} in the "
        f"local store at {store.directory}"
    )
    assert nothing.model_error == "the model CID is unknown because the round manifest is unavailable"

    assert store.put(manifest.to_bytes()) == cid
    no_model = fetched()
    assert (no_model.manifest, no_model.manifest_error, no_model.model_cid) == (
        manifest,
        None,
        manifest.model_cid,
    )
    assert sorted(no_model.leaves) == sorted(synthetic.DATASETS)
    assert no_model.computed_root == manifest.attestations_root
    model_cid = manifest.model_cid
    assert no_model.model_error == (
        f"model {model_cid} does not resolve to verified bytes: cannot read {model_cid}: no block "
        f"{model_cid} in the local store at {store.directory}"
    )
    assert (no_model.model_bytes_digest, no_model.model_size) == (None, None)

    store.put(synthetic.model_bytes(1))
    whole = fetched()
    assert (whole.model_error, whole.model_bytes_digest) == (None, manifest.model_digest)
    assert whole.model_size == len(synthetic.model_bytes(1))

    unparsable = fetched(store.put(b'{"schema": "nonsense"}'))
    assert unparsable.manifest is None and unparsable.manifest_error is not None
    assert unparsable.manifest_error.startswith(
        f"manifest {unparsable.committed.manifest_cid} does not parse: invalid round manifest"
    )
    assert unparsable.model_error == "the model CID is unknown because the round manifest is unavailable"


def test_updates_are_checked_against_their_attested_digests_before_any_aggregation(tmp_path: Path) -> None:
    store = LocalBlockstore(tmp_path / "store")
    ids = synthetic.DATASETS

    def recomputed() -> RoundFacts:
        facts = synthetic.round_facts(1, synthetic.INITIAL)
        facts.aggregate_digest = None
        _recompute(facts, store)
        return facts

    def status(facts: RoundFacts) -> list[tuple[str | None, str]]:
        return [(p.update_status, p.update_note) for p in facts.participants]

    cids = [store.put(synthetic.update_bytes(1, i)) for i in range(3)]
    whole = recomputed()
    assert status(whole) == [
        ("verified", f"update {cid} ({len(synthetic.update_bytes(1, i))} bytes)")
        for i, cid in enumerate(cids)
    ]
    assert whole.aggregation_missing == () and whole.aggregate_digest is None  # not model files:
    assert (whole.aggregation_error or "").startswith("the attested updates do not aggregate into a model: ")

    store.block_path(cids[2]).unlink()
    store.block_path(cids[0]).write_bytes(b"a damaged block")
    broken = recomputed()
    assert [s for s, _ in status(broken)] == ["bad", "verified", "missing"]
    assert broken.participants[0].update_note.startswith(
        f"update {cids[0]} does not resolve to verified bytes: "
    )
    assert broken.participants[2].update_note == f"update {cids[2]} is not in the content store"
    assert broken.aggregation_missing == (ids[2],)
    assert (broken.aggregate_digest, broken.aggregation_error) == (None, None)  # nothing aggregated

    store.put(synthetic.update_bytes(1, 2))
    damaged = recomputed()  # the damaged block alone: still nothing aggregated
    assert [s for s, _ in status(damaged)] == ["bad", "verified", "verified"]
    assert (damaged.aggregate_digest, damaged.aggregation_error) == (None, None)
    assert damaged.aggregation_missing == ()
    store.block_path(cids[0]).unlink()
    store.put(synthetic.update_bytes(1, 0))
    facts = synthetic.round_facts(1, synthetic.INITIAL)
    assert facts.manifest is not None
    other = store.put(b"some other update")
    entries = [
        e.model_copy(update={"update_cid": other}) if e.dataset_id == ids[1] else e
        for e in facts.manifest.participants
    ]
    facts.manifest = facts.manifest.model_copy(update={"participants": entries})
    facts.aggregate_digest = None
    _recompute(facts, store)
    assert [p.update_status for p in facts.participants] == ["verified", "bad", "verified"]
    assert facts.participants[1].update_note == (
        f"update {other} hashes to 0x{hashlib.sha256(b'some other update').hexdigest()}, not the attested "
        f"update_digest 0x{entries[1].update_digest.hex()}"
    )
    assert (facts.aggregate_digest, facts.aggregation_error, facts.aggregation_missing) == (None, None, ())


def test_a_rebuilt_lineage_knows_each_participant_from_the_chain(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = create_job(lab)
    forged = honest_round(lab, job)
    index = lab.index(tmp_path / "i.sqlite")
    index.sync()
    chain = ChainLogs(lab.lab)
    target = resolve_target(str(job.job_id), index, lab.store, chain)
    assert target == AuditTarget(str(job.job_id), "job", job.job_id, 1)

    lineage = rebuild_lineage(target, lab.lab, index, lab.store, chain=chain)
    assert lineage.on_chain_job == lab.lab.get_job(job.job_id) and lineage.on_chain_job_error is None
    assert lineage.job.rounds_committed == 1
    for h in lab.hospitals:
        (p,) = [p for p in lineage.rounds[0].participants if p.dataset_id == h.dataset_id]
        assert (p.on_chain, p.in_job, p.dataset) == (True, True, index.dataset(h.dataset_id))
        assert p.owner == p.owner_end_of_block == h.owner
    assert lineage.chain_history_note.startswith(
        "grants, owners and wallet signatures read from the contracts"
    )

    unchecked = rebuild_lineage(target, lab.lab, index, lab.store, chain=chain, chain_checks=False)
    block = forged.receipt.block_number
    assert unchecked.chain_history_note == (
        f"not checked: node has no state at block {block} (historical calls were turned off); the grant "
        "status, deed owner and contract-wallet signatures at each round's block could not be read from the "
        "contracts"
    )

    with pytest.raises(AuditTargetError) as raised:
        rebuild_lineage(AuditTarget("99", "job", 99, 1), lab.lab, index, lab.store, chain=chain)
    assert str(raised.value) == (
        f"job 99 (named by the local index for 99) does not exist on chain {lab.lab.chain_id}: no JobCreated "
        f"up to block {chain.head.number}; the index does not match the chain (rebuild it with `sov index "
        "rebuild`)"
    )

    def refused(self: LedgerClient, job_id: int, *, block: object = "latest") -> None:
        raise LedgerError("the job view reverted")

    monkeypatch.setattr(LedgerClient, "get_job", refused)
    without_view = rebuild_lineage(target, lab.lab, index, lab.store, chain=chain)
    assert (without_view.on_chain_job, without_view.on_chain_job_error) == (None, "the job view reverted")


def test_compare_index_names_every_fact_the_index_has_wrong(lab: Lab, tmp_path: Path) -> None:
    job = create_job(lab, seed=3)
    for _ in range(3):
        honest_round(lab, job)
    path = tmp_path / "i.sqlite"
    index = lab.index(path)
    index.sync()
    chain = ChainLogs(lab.lab)
    found = chain.job(job.job_id)
    assert found is not None
    rounds = chain.rounds(found)
    assert compare_index(index, found, rounds) == []
    r1, r2, r3 = rounds
    other = "0x" + "ab" * 20
    with sqlite3.connect(path) as db:
        db.execute("UPDATE jobs SET coordinator = ? WHERE job_id = ?", (other, job.job_id))
        db.execute("DELETE FROM rounds WHERE job_id = ? AND round = 1", (job.job_id,))
        db.execute(
            "UPDATE rounds SET model_digest = ? WHERE job_id = ? AND round = 3",
            ("0x" + "cd" * 32, job.job_id),
        )
    synced = index.synced_block()
    # the chain (as given) without round 2: the index's round 2 is one the chain lacks
    assert compare_index(index, found, [r1, r3]) == [
        (
            None,
            f"job {job.job_id}: the index says coordinator {other} but JobCreated on chain says "
            f"{found.coordinator}",
        ),
        (
            1,
            f"round 1: committed on chain at block {r1.block_number} but missing from the index (synced to "
            f"block {synced})",
        ),
        (
            2,
            f"round 2: the index says it was committed (model digest 0x{r2.model_digest.hex()}, block "
            f"{r2.block_number}) but the chain has no RoundCommitted for job {job.job_id} round 2",
        ),
        (
            3,
            f"round 3: the index says model_digest 0x{'cd' * 32} but the chain's RoundCommitted says "
            f"0x{r3.model_digest.hex()}",
        ),
    ]
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM jobs WHERE job_id = ?", (job.job_id,))
    lacks = f"job {job.job_id}: the index lacks the job created at block {synced}"
    assert compare_index(index, replace(found, block_number=synced), rounds) == [(None, lacks)]
    assert compare_index(index, replace(found, block_number=synced + 1), rounds) == []  # not synced yet


def test_a_node_that_answers_the_probe_but_not_the_rounds_blocks_is_reported_without_history(
    pruned_lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe at the first round's block passed (its pruning window moved on during the audit,
    say), but the state reads at the rounds' blocks come back without state: the audit says which
    checks it could not make, with the node's own reason, instead of passing them."""
    lab = pruned_lab
    job = create_job(lab)
    first = honest_round(lab, job)
    lab.lab.transport.request("anvil_mine", [hex(5)])  # the round's block falls out of the kept state
    monkeypatch.setattr("ledger.audit.lineage.probe_history", lambda client, block: (True, ""))

    report = audit(str(job.job_id), client=lab.lab, index=lab.index(tmp_path / "i.sqlite"), store=lab.store)

    lineage = report.lineage
    assert not lineage.chain_history and lineage.no_state_block == first.receipt.block_number
    note = lineage.chain_history_note
    assert note.startswith(f"not checked: node has no state at block {first.receipt.block_number} (")
    assert "BlockOutOfRange" in note, note
    assert not report.ok and not report.failures
    assert all(p.chain_status is None for r in lineage.rounds for p in r.participants)


def test_an_owner_the_node_cannot_say_is_a_wallet_leaves_a_foreign_signature_unchecked(
    pruned_lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without historical state the owner's code is asked at the head; a node that cannot answer
    that either leaves open whether a wallet accepted the signature: not checked, not a forgery."""
    lab = pruned_lab
    job = create_job(lab)
    declared = contributions(lab.hospitals, 1)
    declared[0] = replace(declared[0], signer=dev_account(6))
    forged = commit(lab, job, declared)
    lab.lab.transport.request("anvil_mine", [hex(5)])  # the round's block falls out of the kept state
    monkeypatch.setattr(HistoricalReader, "codes", lambda self, queries: [None] * len(queries))

    report = audit(str(job.job_id), client=lab.lab, index=lab.index(tmp_path / "i.sqlite"), store=lab.store)

    first = lab.hospitals[0]
    owner = first.owner
    [check] = [c for c in report.checks if c.name == "attestation" and c.dataset_id == first.dataset_id]
    assert (check.status, check.message) == (
        "not-checked",
        f"round 1: dataset 0x{first.dataset_id:064x}: signed by {dev_account(6).address}, not the "
        f"deed holder {owner}; not checked whether {owner} is a wallet that accepts it: node has no state at "
        f"block {forged.receipt.block_number}",
    )
