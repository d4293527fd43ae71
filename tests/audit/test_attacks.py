"""The attacks a dishonest lab would run, end to end against real parts, each caught by `sov audit`.

The lab's key commits every forged round through the real TrainingLedger (it accepts any
hash-chained digest from the coordinator and checks only the on-chain participants' grants);
hospitals sign with their own keys; bytes live in the lab's real local store. Each attack
makes `sov audit` exit 1 with a message naming the round and the item.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from api.cli.audit import audit as audit_command
from ledger.keys import dev_account
from ledger.provenance import RoundManifest, model_digest
from ledger.settings import Settings
from ledger.store import open_store
from tests.audit.forge import (
    Lab,
    commit,
    contributions,
    create_job,
    enrol_hospital,
    enrol_wallet_hospital,
    honest_round,
    weights,
)


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("audit")(audit_command)
    app.command("noop")(lambda: None)
    return app


def _invoke(lab: Lab, *args: str, home: Path | None = None) -> Any:
    env = {"SOV_HOME": str(home or lab.settings.home), "SOV_RPC_URL": lab.node.rpc_url}
    return CliRunner().invoke(_cli(), ["audit", *args], env=env)


def _sov_audit(lab: Lab, *args: str, home: Path | None = None) -> tuple[int, dict[str, Any]]:
    result = _invoke(lab, *args, "--json", home=home)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def _by_status(doc: dict[str, Any], status: str) -> list[tuple[str, int | None, str]]:
    return [(c["name"], c["round"], c["message"]) for c in doc["checks"] if c["status"] == status]


def _ds(dataset_id: int) -> str:
    return f"0x{dataset_id:064x}"


def test_a_committed_model_that_is_not_fedavg_of_the_attested_updates(lab: Lab) -> None:
    job = create_job(lab)
    honest_round(lab, job)
    arbitrary = weights(666)  # any model file: stored, hash-chained and committed correctly
    forged = commit(lab, job, contributions(lab.hospitals, 2), model_bytes=arbitrary)
    assert lab.lab.get_job(job.job_id).last_digest == model_digest(arbitrary)  # the contract took it

    code, doc = _sov_audit(lab, str(job.job_id))

    assert code == 1 and doc["verdict"] == "failed" and doc["summary"].startswith("FAILED")
    failures = _by_status(doc, "fail")
    assert [(n, r) for n, r, _ in failures] == [("aggregation", 2)]
    assert failures[0][2].startswith("round 2: FedAvg of the 3 attested update(s) has digest 0x")
    assert failures[0][2].endswith(
        f"but the committed model digest is 0x{forged.committed_digest.hex()}: the committed model is not "
        "the aggregate of the declared updates"
    )
    # everything the contract and the signatures can vouch for is fine: only the recomputation betrays it
    assert all(c["status"] == "pass" for c in doc["checks"] if c["name"] != "aggregation")


def test_b_averaging_in_a_revoked_hospital_while_declaring_only_the_others(lab: Lab, tmp_path: Path) -> None:
    dropped = enrol_hospital(lab, dev_account(4), f"attack b {tmp_path.name}")
    members = sorted([*lab.hospitals, dropped], key=lambda h: h.dataset_id)
    job = create_job(lab, members)
    honest_round(lab, job, members)
    # round 2: the hospital's node trained and shipped its update, then its grant was revoked
    everyone = contributions(members, 2)
    dropped.client.revoke_grant(dropped.dataset_id, lab.lab.address or "", job.purpose)
    declared = [c for c in everyone if c.hospital is not dropped]
    forged = commit(lab, job, declared, averaged=everyone)

    code, doc = _sov_audit(lab, str(job.job_id))

    assert code == 1 and doc["verdict"] == "failed"
    failures = _by_status(doc, "fail")
    assert [(n, r) for n, r, _ in failures] == [("aggregation", 2)]
    assert failures[0][2].startswith("round 2: FedAvg of the 3 attested update(s) has digest 0x")
    assert f"but the committed model digest is 0x{forged.committed_digest.hex()}" in failures[0][2]
    # the declared participants are the on-chain ones and their grants held: nothing else betrays it
    round2 = doc["rounds"][1]
    assert _ds(dropped.dataset_id) not in [p["dataset_id"] for p in round2["participants"]]


def test_c_an_edited_index_does_not_make_an_uncommitted_model_verify(lab: Lab, tmp_path: Path) -> None:
    job = create_job(lab)
    honest_round(lab, job)
    honest_round(lab, job)
    code, _ = _sov_audit(lab, str(job.job_id))
    assert code == 0
    never = weights(4711)  # a model nobody committed
    model_file = tmp_path / "never-committed.safetensors"
    model_file.write_bytes(never)
    unknown = _invoke(lab, str(model_file))
    assert unknown.exit_code == 1
    assert "the model was never committed on this chain" in " ".join(unknown.output.split())

    # the edited cache: round 2's model digest replaced, and a round 3 that was never committed
    index_path = lab.settings.index_path
    with sqlite3.connect(index_path) as db:
        db.execute(
            "UPDATE rounds SET model_digest = ? WHERE job_id = ? AND round = 2",
            ("0x" + model_digest(never).hex(), job.job_id),
        )
        row = db.execute("SELECT * FROM rounds WHERE job_id = ? AND round = 2", (job.job_id,)).fetchone()
        db.execute(
            "INSERT INTO rounds VALUES (?, 3, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job.job_id, row[2], "0x" + model_digest(never).hex(), *row[4:]),
        )
    head = lab.lab.latest_block().number

    code, doc = _sov_audit(lab, str(model_file))

    assert code == 1 and doc["verdict"] == "failed" and doc["verified"] is False
    failures = _by_status(doc, "fail")
    target = [m for n, r, m in failures if n == "digest-chain"]
    assert target == [
        f"round 2: target digest 0x{model_digest(never).hex()} is not the committed 0x{job.last_digest.hex()}"
    ]
    index = {r: m for n, r, m in failures if n == "index"}
    assert index[2].startswith(
        f"round 2: the index says model_digest 0x{model_digest(never).hex()} but the chain's"
    )
    assert index[3].startswith("round 3: the index says it was committed (model digest ")
    assert f"but the chain has no RoundCommitted for job {job.job_id} round 3" in index[3]
    # the facts reported are the chain's
    assert [r["model_digest"] for r in doc["rounds"]][-1] == "0x" + job.last_digest.hex()

    code, doc = _sov_audit(lab, str(job.job_id))
    assert code == 1 and {(n, r) for n, r, _ in _by_status(doc, "fail")} == {("index", 2), ("index", 3)}
    assert lab.lab.latest_block().number == head  # the audit wrote nothing on chain

    with sqlite3.connect(index_path) as db:  # leave the shared index as the chain says
        db.execute("DELETE FROM rounds WHERE job_id = ? AND round = 3", (job.job_id,))
        db.execute(
            "UPDATE rounds SET model_digest = ? WHERE job_id = ? AND round = 2",
            ("0x" + job.last_digest.hex(), job.job_id),
        )


def test_d_withheld_update_bytes_make_the_round_not_verifiable(lab: Lab, tmp_path: Path) -> None:
    job = create_job(lab)
    honest_round(lab, job)
    forged = honest_round(lab, job)
    # the lab hands the auditor a CAR with the manifests and models, but without round 2's updates
    cids: list[str] = []
    for _, manifest_cid in _rounds(lab, job.job_id):
        manifest = RoundManifest.from_bytes(lab.store.get(manifest_cid))
        cids += [manifest_cid, manifest.model_cid]
        if manifest.round == 1:
            cids += manifest.update_cids()
    home = tmp_path / "auditor"
    shutil.copytree(lab.settings.home / "deployments", home / "deployments")
    store = open_store(Settings(home=home, rpc_url=lab.node.rpc_url))
    car = tmp_path / "job.car"
    with car.open("wb") as out:
        lab.store.export_car(cids, out)
    with car.open("rb") as src:
        store.import_car(src)

    code, doc = _sov_audit(lab, str(job.job_id), home=home)

    assert code == 1 and doc["verified"] is False and doc["verdict"] == "not-verified"
    assert doc["summary"].startswith(f"NOT VERIFIED: job {job.job_id}")
    assert _by_status(doc, "fail") == []
    unverifiable = _by_status(doc, "not-verifiable")
    assert [(n, r) for n, r, _ in unverifiable] == [("update", 2)] * 3 + [("aggregation", 2)]
    aggregation = unverifiable[-1][2]
    assert aggregation.startswith("round 2: aggregation not verifiable: the update of dataset ")
    assert all(_ds(h.dataset_id) in aggregation for h in lab.hospitals)
    assert unverifiable[0][2] == (
        f"round 2: dataset {_ds(lab.hospitals[0].dataset_id)}: not verifiable: update "
        f"{forged.update_cids[lab.hospitals[0].dataset_id]} is not in the content store (the lab keeps "
        "updates in its store; ask it for the job's CAR)"
    )
    # round 1's updates were handed over: that round's aggregation is verified
    assert ("aggregation", 1) in {(c["name"], c["round"]) for c in doc["checks"] if c["status"] == "pass"}


def _rounds(lab: Lab, job_id: int) -> list[tuple[int, str]]:
    from ledger.audit.chainlog import ChainLogs

    chain = ChainLogs(lab.lab)
    job = chain.job(job_id)
    assert job is not None
    return [(r.round, r.manifest_cid) for r in chain.rounds(job)]


def test_e_an_rpc_without_historical_state_names_the_checks_it_could_not_make(pruned_lab: Lab) -> None:
    lab = pruned_lab
    wallet = enrol_wallet_hospital(lab, dev_account(5), "pruned wallet")
    members = sorted([*lab.hospitals, wallet], key=lambda h: h.dataset_id)
    job = create_job(lab, members)
    first = honest_round(lab, job, members)
    honest_round(lab, job, members)
    lab.lab.transport.request("anvil_mine", [hex(5)])  # the rounds' blocks fall out of the kept state
    block = first.receipt.block_number

    code, doc = _sov_audit(lab, str(job.job_id))

    assert code == 1 and doc["verdict"] == "not-verified" and doc["verified"] is False
    assert _by_status(doc, "fail") == []
    assert doc["chain"]["historical_state"] is False
    assert doc["chain"]["note"].startswith(f"not checked: node has no state at block {block} (")
    unchecked = _by_status(doc, "not-checked")
    grants = [(r, m) for n, r, m in unchecked if n == "grant"]
    assert len(grants) == 8
    assert grants[0][1].startswith(
        f"round 1: dataset {_ds(members[0].dataset_id)}: grant to coordinator {lab.lab.address} for "
        f"ai-training: not checked: node has no state at block {block}; the chain's grant and deed logs "
        "alone say it was valid"
    )
    wallets = [(r, m) for n, r, m in unchecked if n == "attestation"]
    assert (
        wallets
        == [
            (
                r,
                f"round {r}: dataset {_ds(wallet.dataset_id)}: not checked: node has no state at block "
                f"{b} to ask the owner wallet {wallet.wallet}'s isValidSignature",
            )
            for r, b in ((1, block), (2, block + 1))
        ][: len(wallets)]
    )
    assert len(wallets) == 2
    # what needs no historical state still passed: hashes, signatures of EOA owners, aggregation
    passed = {c["name"] for c in doc["checks"] if c["status"] == "pass"}
    assert {"content", "manifest", "attestation", "aggregation", "update", "digest-chain", "job"} <= passed
