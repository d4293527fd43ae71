"""The impact report exactly: grant keys, end reasons, summary and JSON, then queries on a real chain.

For `make mutation`: the pure parts first; `test_impact.py` has impact on a real trained job.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from ledger.audit.chainstate import probe_history
from ledger.audit.errors import ImpactQueryError
from ledger.audit.impact import (
    DependentVersion,
    ImpactReport,
    _after_end,
    _as_int,
    _grant_key,
    _model_cid,
    impact,
)
from ledger.keys import dev_account
from ledger.store import LocalBlockstore
from tests.audit.forge import (
    AI,
    Job,
    Lab,
    create_job,
    enrol_hospital,
    honest_round,
    round_then_revocation_in_its_block,
)

GRANTEE = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def test_grant_key_accepts_hex_or_int_ids_and_any_address_case() -> None:
    assert _grant_key(("0x1f", GRANTEE.lower(), "ai-training")) == (31, GRANTEE, AI)
    assert _grant_key((31, GRANTEE, AI)) == (31, GRANTEE, AI)
    assert _grant_key(("ff", GRANTEE, "ai-training"))[0] == 255
    with pytest.raises(ImpactQueryError) as raised:
        _grant_key((1, GRANTEE))
    assert str(raised.value) == "a grant is (dataset_id, grantee, purpose); got 2 value(s)"
    with pytest.raises(ImpactQueryError) as raised:
        _grant_key((1, "0x12", "ai-training"))
    assert str(raised.value) == "grantee '0x12' is not an address"
    with pytest.raises(ImpactQueryError) as raised:
        _grant_key((1, None, "ai-training"))
    assert str(raised.value) == "grantee None is not an address"
    assert _as_int("0x10") == 16 and _as_int("10") == 16 and _as_int(10) == 10


@dataclass
class _Grant:
    revoked_block: int | None
    owner_changed_block: int | None
    expires_at: int


def test_after_end_names_each_end_strictly_after_it() -> None:
    grant = _Grant(revoked_block=10, owner_changed_block=20, expires_at=1000)
    assert _after_end(5, grant, 30, 1001) == (
        "after the dataset's retirement at block 5",
        "after the grant's revocation at block 10",
        "after the deed transfer at block 20",
        "after the grant expired at time 1000",
    )
    # at the ending block or second itself: not after
    assert _after_end(30, _Grant(30, 30, 1000), 30, 1000) == ()
    assert _after_end(None, None, 30, 1000) == ()
    assert _after_end(None, _Grant(None, None, 999), 30, 1000) == ("after the grant expired at time 999",)


def _version(
    job: int, rnd: int, *, direct: bool, after: tuple[str, ...] = (), violation: str | None = None
) -> DependentVersion:
    return DependentVersion(
        job_id=job,
        round=rnd,
        model_digest=bytes([rnd]) * 32,
        manifest_cid="bafymanifest",
        model_cid=None,
        block_number=10 * rnd,
        timestamp=100 * rnd,
        direct=direct,
        grant_status="authorized" if direct else None,
        chain_status=None,
        after_end=after,
        violation=violation,
    )


def test_summary_subject_and_json() -> None:
    report = ImpactReport(
        0x11, None, None, [_version(1, 1, direct=True), _version(1, 2, direct=False, after=("x",))]
    )
    assert report.ok and report.exit_code == 0
    assert report.subject() == f"dataset 0x{0x11:064x}"
    assert report.summary() == (
        f"2 model version(s) depend on dataset 0x{0x11:064x} (1 direct use(s)); 1 committed after it ended; "
        "every direct use was under a valid grant (checked at each round's block)"
    )
    bad = ImpactReport(
        0x11,
        GRANTEE,
        AI,
        [_version(1, 1, direct=True, violation="job 1 round 1 used it while revoked")],
        ["revoked"],
    )
    assert not bad.ok and bad.exit_code == 1
    assert bad.subject() == f"the grant of dataset 0x{0x11:064x} to {GRANTEE} for ai-training"
    assert bad.summary().endswith("0 committed after it ended; 1 direct use(s) WITHOUT a valid grant")
    document = bad.to_json()
    assert document == {
        "schema": "sovereign-ledger/impact-report/v1",
        "ok": False,
        "summary": bad.summary(),
        "dataset_id": f"0x{0x11:064x}",
        "grantee": GRANTEE,
        "purpose": "0x" + AI.hex(),
        "ended": ["revoked"],
        "note": "",
        "versions": [bad.versions[0].to_json()],
        "violations": [bad.versions[0].to_json()],
        "committed_after_end": [],
    }
    assert bad.versions[0].to_json() == {
        "job_id": 1,
        "round": 1,
        "model_digest": "0x" + "01" * 32,
        "model_cid": None,
        "manifest_cid": "bafymanifest",
        "block_number": 10,
        "timestamp": 100,
        "direct": True,
        "grant_status": "authorized",
        "chain_status": None,
        "committed_after_end": [],
        "violation": "job 1 round 1 used it while revoked",
    }
    assert report.to_json()["purpose"] is None
    assert [v.round for v in report.after_end] == [2]


def test_model_cid_of_a_missing_or_absent_store(tmp_path: object) -> None:
    assert _model_cid(None, "bafy") is None
    store = LocalBlockstore(str(tmp_path))
    assert _model_cid(store, store.put(b"not a manifest")) is None


# ------------------------------------------------------------------ against a real chain (lab)


def test_impact_queries_that_cannot_be_answered(lab: Lab, tmp_path: Path) -> None:
    index = lab.index(tmp_path / "index.sqlite")
    with pytest.raises(ImpactQueryError) as raised:
        impact(index=index, sync=False)
    assert str(raised.value) == "impact needs a dataset id or a grant (dataset, grantee, purpose)"
    with pytest.raises(ImpactQueryError) as raised:
        impact(index=index, dataset_id=5, grant=(6, GRANTEE, "ai-training"), sync=False)
    assert str(raised.value) == f"dataset_id 0x{5:064x} and the grant's dataset 0x{6:064x} differ"
    # the same dataset given both ways is accepted
    report = impact(
        index=index,
        dataset_id=hex(lab.hospitals[0].dataset_id),
        grant=(lab.hospitals[0].dataset_id, GRANTEE, "ai-training"),
    )
    assert report.versions == [] and report.note == "no such grant was ever issued"


def test_a_grant_revoked_then_a_deed_sold_then_retired(lab: Lab, tmp_path: Path) -> None:
    h0, h1, h2 = lab.hospitals
    coordinator = lab.lab.address or ""
    other = create_job(lab, [h0, h1], seed=1)  # a job that never uses dataset 2
    honest_round(lab, other, [h0, h1])
    job = create_job(lab)
    first = honest_round(lab, job)
    revocation = h2.client.revoke_grant(h2.dataset_id, coordinator, AI)
    second = honest_round(lab, job, [h0, h1])
    index = lab.index(tmp_path / "index.sqlite")
    report = impact(
        index=index, client=lab.lab, store=lab.store, grant=(h2.dataset_id, coordinator, "ai-training")
    )
    assert (report.grantee, report.purpose) == (coordinator, AI)
    assert report.ends[0] == f"revoked at block {revocation.block_number}"
    assert report.ends[1].startswith("window ends at time ")
    assert report.note == "direct uses re-checked on the contract at each block"
    assert [(v.job_id, v.round, v.direct, v.grant_status, v.chain_status) for v in report.versions] == [
        (job.job_id, 1, True, "authorized", "authorized"),
        (job.job_id, 2, False, None, None),
    ]
    assert [v.model_cid for v in report.versions] == [first.model_cid, second.model_cid]
    assert report.versions[1].after_end == (
        f"after the grant's revocation at block {revocation.block_number}",
    )
    assert report.ok
    # the deed of dataset 0 changes hands, then its new holder retires it
    buyer = dev_account(8)
    transfer = h0.client.transfer_dataset(h0.dataset_id, buyer.address)
    retired = lab.lab.with_account(buyer).retire_dataset(h0.dataset_id)
    by_dataset = impact(index=index, client=lab.lab, dataset_id=h0.dataset_id)
    assert by_dataset.ends == [f"dataset retired at block {retired.block_number}"]
    assert [(v.job_id, v.round) for v in by_dataset.versions] == [
        (other.job_id, 1),
        (job.job_id, 1),
        (job.job_id, 2),
    ]
    assert all(v.model_cid is None for v in by_dataset.versions)  # no store given
    by_grant = impact(
        index=index, dataset_id=h0.dataset_id, grant=(h0.dataset_id, coordinator, AI), sync=False
    )
    assert by_grant.ends[:2] == [
        f"dataset retired at block {retired.block_number}",
        f"deed transferred at block {transfer.block_number}",
    ]


def _round_moved_to(index_path: Path, job_id: int, block: int) -> None:
    """The index lies: round 1 of `job_id` (and its participant rows) committed at `block`."""
    with sqlite3.connect(index_path) as db:
        for table in ("rounds", "round_participants"):
            db.execute(f"UPDATE {table} SET block_number = ? WHERE job_id = ? AND round = 1", (block, job_id))


def _of(report: ImpactReport, job: Job) -> list[DependentVersion]:
    return [v for v in report.versions if v.job_id == job.job_id]


def test_a_use_the_index_places_after_the_revocation_is_a_violation(lab: Lab, tmp_path: Path) -> None:
    h1 = lab.hospitals[1]
    coordinator = lab.lab.address or ""
    job = create_job(lab, [h1], seed=7)
    honest_round(lab, job, [h1])
    revocation = h1.client.revoke_grant(h1.dataset_id, coordinator, AI)
    lab.lab.create_job(AI, job.datasets, job.last_digest, job.spec_digest)  # a block after it
    path = tmp_path / "index.sqlite"
    index = lab.index(path)
    index.sync()
    honest = impact(index=index, client=lab.lab, grant=(h1.dataset_id, coordinator, AI), sync=False)
    assert honest.ok and [v.violation for v in _of(honest, job)] == [None]  # (earlier tests' jobs too)

    # An index that says round 1 came after the revocation: the index's own history refuses it.
    after = revocation.block_number + 1
    _round_moved_to(path, job.job_id, after)
    lying = impact(index=index, client=lab.lab, grant=(h1.dataset_id, coordinator, AI), sync=False)
    (version,) = _of(lying, job)
    assert version.violation == (
        f"job {job.job_id} round 1 used the dataset at block {after} without a valid grant (revoked)"
    )
    assert (version.grant_status, version.chain_status) == ("revoked", "revoked")
    assert not lying.ok and lying.exit_code == 1
    assert lying.summary().endswith("1 direct use(s) WITHOUT a valid grant")

    # ...and one that also hides the revocation: the contract at that block says otherwise.
    with sqlite3.connect(path) as db:
        db.execute(
            "DELETE FROM grant_events WHERE kind = 'revoked' AND block_number = ?", (revocation.block_number,)
        )
    hidden = impact(index=index, client=lab.lab, grant=(h1.dataset_id, coordinator, AI), sync=False)
    (version,) = _of(hidden, job)
    assert version.violation == f"job {job.job_id} round 1: the contract says revoked at block {after}"
    assert (version.grant_status, version.chain_status) == ("authorized", "revoked")
    assert [v.violation for v in hidden.violations] == [version.violation]

    # ...and one that has no record of the grant at all: the report says so next to the re-check.
    (issued,) = [g for g in index.grants(dataset_id=h1.dataset_id) if g.grantee == coordinator]
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM grant_events WHERE block_number = ?", (issued.issued_block,))
    unknown = impact(index=index, client=lab.lab, grant=(h1.dataset_id, coordinator, AI), sync=False)
    assert (
        unknown.note == "no such grant was ever issued; direct uses re-checked on the contract at each block"
    )
    (version,) = _of(unknown, job)
    assert version.violation == (
        f"job {job.job_id} round 1 used the dataset at block {after} without a valid grant (no grant)"
    )


def test_a_grant_query_skips_other_coordinators_and_starts_at_the_round_a_dataset_joined(
    lab: Lab, tmp_path: Path
) -> None:
    early = enrol_hospital(lab, dev_account(5), "impact: from round 1")
    late = enrol_hospital(lab, dev_account(4), "impact: from round 2")
    other = replace(lab, lab=lab.lab.with_account(dev_account(9)))  # another lab, granted too
    now = lab.lab.latest_block().timestamp
    late.client.issue_grant(late.dataset_id, str(dev_account(9).address), AI, now, now + 86_400)
    theirs = create_job(other, [late], seed=8)
    honest_round(other, theirs, [late])  # the first use of the dataset is by the other lab
    job = create_job(lab, [early, late], seed=9)
    honest_round(lab, job, [early])
    honest_round(lab, job, [early, late])
    honest_round(lab, job, [early])
    retired = late.client.retire_dataset(late.dataset_id)
    honest_round(lab, job, [early])  # round 4 still builds on what round 2 learnt from it
    index = lab.index(tmp_path / "index.sqlite")
    coordinator = lab.lab.address or ""

    by_grant = impact(index=index, client=lab.lab, grant=(late.dataset_id, coordinator, AI))
    assert [(v.job_id, v.round, v.direct, v.after_end) for v in by_grant.versions] == [
        (job.job_id, 2, True, ()),
        (job.job_id, 3, False, ()),
        (job.job_id, 4, False, (f"after the dataset's retirement at block {retired.block_number}",)),
    ]
    assert by_grant.ok
    by_dataset = impact(index=index, dataset_id=late.dataset_id, sync=False)
    assert [(v.job_id, v.round, v.direct) for v in by_dataset.versions] == [
        (theirs.job_id, 1, True),
        (job.job_id, 2, True),
        (job.job_id, 3, False),
        (job.job_id, 4, False),
    ]


def test_a_revocation_later_in_the_block_of_a_use_is_not_a_violation(lab: Lab, tmp_path: Path) -> None:
    h = enrol_hospital(lab, dev_account(6), "impact: revoked in the block of its use")
    coordinator = lab.lab.address or ""
    job = create_job(lab, [h], seed=10)
    forged = round_then_revocation_in_its_block(lab, job, h, [h])
    report = impact(
        index=lab.index(tmp_path / "i.sqlite"), client=lab.lab, grant=(h.dataset_id, coordinator, AI)
    )
    (version,) = report.versions
    # the index at the use's position says valid; the contract at its block (end of block) says
    # revoked, as the index does at the end of that block: the chain's order, not a violation
    assert (version.round, version.grant_status, version.chain_status) == (1, "authorized", "revoked")
    assert version.violation is None and report.ok
    assert report.ends[0] == f"revoked at block {forged.receipt.block_number}"


def test_impact_on_a_node_without_history_names_the_block_it_could_not_read(
    pruned_lab: Lab, tmp_path: Path
) -> None:
    h = pruned_lab.hospitals[0]
    coordinator = pruned_lab.lab.address or ""
    job = create_job(pruned_lab, [h])
    used = honest_round(pruned_lab, job, [h]).receipt.block_number
    path = tmp_path / "i.sqlite"
    index = pruned_lab.index(path)
    index.sync()
    query = {
        "index": index,
        "client": pruned_lab.lab,
        "grant": (h.dataset_id, coordinator, AI),
        "sync": False,
    }
    fresh = impact(**query)  # type: ignore[arg-type]
    assert fresh.note == "direct uses re-checked on the contract at each block"  # a recent block
    for _ in range(3):
        pruned_lab.lab.transport.request("evm_mine", [])
    has_state, why = probe_history(pruned_lab.lab, used)
    assert not has_state
    assert impact(**query).note == f"node has no state at block {used} ({why})"  # type: ignore[arg-type]
    (issued,) = [g for g in index.grants(dataset_id=h.dataset_id) if g.grantee == coordinator]
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM grant_events WHERE block_number = ?", (issued.issued_block,))
    assert impact(**query).note == (  # type: ignore[arg-type]
        f"no such grant was ever issued; node has no state at block {used} ({why})"
    )
