"""The audit on a fresh machine: only the RPC URL, the deployment manifest and a CAR of the content."""

from __future__ import annotations

import shutil
from pathlib import Path

from ledger.audit import audit
from ledger.chain.client import LedgerClient
from ledger.index import EventIndex
from ledger.settings import Settings
from ledger.store import open_store
from tests.audit.conftest import World


def test_audit_in_a_separate_data_directory_from_a_car_export(world: World, tmp_path: Path) -> None:
    # what the lab hands over: the CAR of every manifest, model and node update of the job
    here = audit(
        str(world.job_id),
        client=world.lab,
        index=world.index(tmp_path / "lab-index.sqlite"),
        store=world.store,
    )
    assert here.ok
    cids = [r.committed.manifest_cid for r in here.lineage.rounds] + [
        r.model_cid or "" for r in here.lineage.rounds
    ]
    updates = [cid for r in here.lineage.rounds if r.manifest for cid in r.manifest.update_cids()]
    assert len(updates) == 8  # 4 hospitals x 2 rounds
    car = tmp_path / "job.car"
    with car.open("wb") as out:
        world.store.export_car(cids + updates, out)

    # the auditor's machine: a new SOV_HOME with nothing but the deployment manifest
    home = tmp_path / "auditor"
    shutil.copytree(world.settings.home / "deployments", home / "deployments")
    settings = Settings(home=home, rpc_url=world.node.rpc_url)
    assert not settings.index_path.exists() and not settings.blockstore_dir.exists()
    store = open_store(settings)
    with car.open("rb") as src:
        roots = store.import_car(src)
    assert sorted(roots) == sorted(cids + updates)
    client = LedgerClient.connect(settings)  # no account: reads only
    assert client.address is None
    with EventIndex(settings, client) as index:
        report = audit(str(world.job_id), client=client, index=index, store=store)
        assert report.ok, [c.message for c in report.failures]
        model = audit(here.lineage.rounds[-1].model_cid or "", client=client, index=index, store=store)
        assert model.ok and model.lineage.target.round == 2
    assert report.to_json()["rounds"] == here.to_json()["rounds"]
    assert all(c.ok for c in report.checks if c.name == "aggregation") and report.lineage.rounds

    # a CAR without the updates: the committed models cannot be recomputed, so NOT VERIFIED
    partial_home = tmp_path / "partial"
    shutil.copytree(world.settings.home / "deployments", partial_home / "deployments")
    partial = Settings(home=partial_home, rpc_url=world.node.rpc_url)
    partial_car = tmp_path / "partial.car"
    with partial_car.open("wb") as out:
        world.store.export_car(cids, out)
    partial_store = open_store(partial)
    with partial_car.open("rb") as src:
        partial_store.import_car(src)
    with EventIndex(partial, client) as index:
        withheld = audit(str(world.job_id), client=client, index=index, store=partial_store)
    assert withheld.verdict == "not-verified" and withheld.exit_code == 1 and not withheld.failures
    assert [(c.name, c.round) for c in withheld.unverified if c.name == "aggregation"] == [
        ("aggregation", 1),
        ("aggregation", 2),
    ]

    # without the content the same audit fails, naming what is missing
    empty_home = tmp_path / "no-content"
    shutil.copytree(world.settings.home / "deployments", empty_home / "deployments")
    empty = Settings(home=empty_home, rpc_url=world.node.rpc_url)
    with EventIndex(empty, client) as index:
        missing = audit(str(world.job_id), client=client, index=index, store=open_store(empty))
    assert not missing.ok
    assert {(c.name, c.round) for c in missing.failures if c.name == "content"} == {
        ("content", 1),
        ("content", 2),
    }
    assert f"round 1: manifest {cids[0]} does not resolve" in missing.failures[0].message
