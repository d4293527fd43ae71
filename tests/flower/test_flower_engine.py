"""The Flower engine end to end: a real SuperLink, two real SuperNodes, a real anvil.

Two hospitals register their partitions of breast_cancer and grant the lab `ai-training`;
the lab runs a ledger job through `flwr run`. Hospital A revokes its grant as soon as
round 1 is committed on-chain, so in round 2 its node must refuse (reason `revoked`,
nothing trained) and the committed round 2 must list hospital B's dataset alone. The
test then re-reads everything from the chain and the content store.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fl_node.data import load_dataset, make_partitions, partition_bytes
from fl_node.flower.federation import FederationRun, LocalFederation
from fl_node.spec import default_spec
from ledger.deploy import save_deployment
from ledger.provenance import RoundManifest, model_digest
from ledger.settings import Settings
from ledger.store import LocalBlockstore, cid_of, content_root
from tests.conftest import DeployedChain

REPO = Path(__file__).resolve().parents[2]
LAB, HOSPITAL_A, HOSPITAL_B = 1, 2, 3  # dev account indexes
ROUNDS = 2


def _home(tmp_path: Path, name: str, deployed: DeployedChain) -> Settings:
    settings = Settings(home=tmp_path / name, rpc_url=deployed.rpc_url)
    save_deployment(settings, deployed.deployment)
    return settings


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_flower_round_commits_without_revoked_dataset(deployed: DeployedChain, tmp_path: Path) -> None:
    lab = deployed[LAB]
    lab_settings = _home(tmp_path, "lab", deployed)

    # Two hospitals, each with its own data directory, partition file and registered dataset.
    dataset = load_dataset("breast_cancer", seed=0)
    partitions = make_partitions(dataset, 2, "iid", seed=0)
    now = lab.latest_block().timestamp
    nodes: list[dict[str, str | int]] = []
    dataset_ids: list[int] = []
    for index, (partition, owner) in enumerate(zip(partitions, (HOSPITAL_A, HOSPITAL_B), strict=True)):
        settings = _home(tmp_path, f"hospital-{index}", deployed)
        path = partition.write(tmp_path / f"hospital-{index}.npz")
        dataset_id, _ = deployed[owner].register_dataset(content_root(cid_of(path.read_bytes())))
        deployed[owner].issue_grant(dataset_id, lab.address, "ai-training", now - 60, now + 3600)
        dataset_ids.append(dataset_id)
        nodes.append(
            {
                "sov-home": str(settings.home),
                "rpc-url": deployed.rpc_url,
                "account": f"dev{owner}",
                "partition": str(path),
            }
        )
    revoked_id, kept_id = dataset_ids
    eval_path = tmp_path / "test-split.npz"
    eval_path.write_bytes(partition_bytes(dataset.x_test, dataset.y_test))
    spec_path = tmp_path / "spec.json"
    spec = default_spec(dataset.num_features, dataset.num_classes, hidden=(16,), local_epochs=2)
    spec_path.write_text(spec.model_dump_json())
    report_path = tmp_path / "report.json"
    run_config: dict[str, str | int] = {
        "sov-home": str(lab_settings.home),
        "rpc-url": deployed.rpc_url,
        "account": f"dev{LAB}",
        "datasets": ",".join(f"0x{d:064x}" for d in sorted(dataset_ids)),
        "purpose": "ai-training",
        "spec": str(spec_path),
        "seed": 7,
        "num-rounds": ROUNDS,
        "min-nodes": 2,
        "round-timeout": 120,
        "eval-data": str(eval_path),
        "report": str(report_path),
    }

    federation = LocalFederation(tmp_path / "flower", env={"PYTHONPATH": str(REPO)})
    outcome: dict[str, FederationRun | BaseException] = {}

    def run() -> None:
        try:
            outcome["run"] = federation.run(run_config, timeout=420)
        except BaseException as error:  # surfaced by the main thread's assertions
            outcome["run"] = error

    with federation:
        federation.start(nodes)
        runner = threading.Thread(target=run, daemon=True)
        started = time.monotonic()
        runner.start()
        # The lab's job is the chain's first; revoke A's grant the moment round 1 is on-chain,
        # while round 2's ClientApps are still starting (each imports torch, seconds).
        _wait(lambda: lab.job_count() >= 1 or "run" in outcome, 120, "the job to be created")
        assert lab.job_count() == 1, f"no job was created: {outcome.get('run')}"
        job_id = 1
        round1_at = _wait(lambda: lab.get_job(job_id).last_round >= 1 or "run" in outcome, 150, "round 1")
        assert lab.get_job(job_id).last_round == 1, f"round 1 was not committed: {outcome.get('run')}"
        deployed[HOSPITAL_A].revoke_grant(revoked_id, lab.address, "ai-training")
        round2_at = _wait(lambda: lab.get_job(job_id).last_round >= 2 or "run" in outcome, 150, "round 2")
        runner.join(timeout=60)
        result = outcome.get("run")
        # The ClientApps run in the hospitals' executors (fl_node.flower.hospital), next to them.
        supernode_logs = "".join(
            federation.log(f"{kind}-{i}") for kind in ("supernode", "hospital") for i in (0, 1)
        )
    assert isinstance(result, FederationRun), f"flwr run failed: {result}"
    assert result.returncode == 0, result.output[-3000:]
    print(
        f"\nflower engine: job created {round1_at - started:.1f} s after `flwr run` "
        f"(incl. round 1); round 2 took {round2_at - round1_at:.1f} s; whole run {result.seconds:.1f} s"
    )

    # The run's own report: round 1 with both datasets, round 2 without the revoked one.
    report = json.loads(report_path.read_text())
    assert report["job_id"] == job_id
    committed = [r for r in report["rounds"] if r["committed"]]
    assert [r["round"] for r in committed] == [1, 2], report
    first, second = committed
    assert first["participants"] == [f"0x{d:064x}" for d in sorted(dataset_ids)]
    assert second["participants"] == [f"0x{kept_id:064x}"]
    assert second["refused"][f"0x{revoked_id:064x}"].startswith("revoked:"), second["refused"]
    assert "was revoked" in second["refused"][f"0x{revoked_id:064x}"]
    # The refusal is the node's own (its gate ran in its ClientApp and trained nothing).
    assert "refuses the round" in supernode_logs and "revoked" in supernode_logs
    assert "revoked" in result.output

    # The chain: two rounds, hash-chained, with the participants the report names.
    job = lab.get_job(job_id)
    assert job.last_round == ROUNDS
    events = lab.get_logs(deployed.deployment.deployed_block)
    created = [e for e in events if e.name == "JobCreated" and e.args["jobId"] == job_id]
    rounds = sorted(
        (e for e in events if e.name == "RoundCommitted" and e.args["jobId"] == job_id),
        key=lambda e: e.args["round"],
    )
    assert [e.args["round"] for e in rounds] == [1, 2]
    parent = bytes(created[0].args["initialModelDigest"])
    store = LocalBlockstore(lab_settings.blockstore_dir)
    for event, entry in zip(rounds, committed, strict=True):
        assert bytes(event.args["parentDigest"]) == parent
        assert "0x" + bytes(event.args["modelDigest"]).hex() == entry["model_digest"]
        assert event.args["manifestCid"] == entry["manifest_cid"]
        assert [f"0x{d:064x}" for d in event.args["participants"]] == entry["participants"]
        # Every CID resolves in the lab's content store and matches what the chain holds.
        manifest = RoundManifest.from_bytes(store.get(event.args["manifestCid"]))
        assert manifest.parent_digest == parent
        assert manifest.model_digest == bytes(event.args["modelDigest"])
        assert model_digest(store.get(manifest.model_cid)) == manifest.model_digest
        assert [p.dataset_id for p in manifest.participants] == list(event.args["participants"])
        assert manifest.attestations_root == bytes(event.args["attestationsRoot"])
        manifest.check_attestations_root()
        parent = bytes(event.args["modelDigest"])
    assert job.last_digest == parent
    assert report["last_digest"] == "0x" + parent.hex()
