"""The impact report's pure parts, exactly: grant keys, end reasons, summary and JSON.

Fast cases for `make mutation`; impact against a real job is in `test_impact.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ledger.audit.errors import ImpactQueryError
from ledger.audit.impact import DependentVersion, ImpactReport, _after_end, _as_int, _grant_key, _model_cid
from ledger.purposes import purpose_id
from ledger.store import LocalBlockstore

GRANTEE = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
AI = purpose_id("ai-training")


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
