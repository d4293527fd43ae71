"""The lab's commands against a real anvil: what `sov job` refuses, and `sov train` on the
hospitals' own registered files and keystore accounts (no dev key signs anything)."""

from __future__ import annotations

import json

from ledger.keys import Keystore
from ledger.settings import Settings
from ledger.store import cid_of_file, content_root
from tests.parties.conftest import Parties

LAB, HOSPITAL_A = 1, 2
PASSWORD = "walk-the-line"


def test_job_create_refuses_a_dataset_that_is_not_registered(parties: Parties) -> None:
    spec = parties.root / "spec.toml"
    assert parties.sov("lab", "job", "spec", str(parties.data / "reference.csv"), "--label", "diagnosis",
                       "-o", str(spec)).returncode == 0  # fmt: skip
    cid = cid_of_file(parties.data / "hospital-a.csv")
    done = parties.sov(
        "lab", "job", "create", "--datasets", cid, "--spec", str(spec), "--account", f"dev{LAB}"
    )
    assert done.returncode == 1
    dataset_id = int.from_bytes(content_root(cid), "big")
    assert f"dataset(s) {dataset_id:#066x} are not registered on chain 31337" in done.stderr
    assert parties.chain[LAB].job_count() == 0


def test_job_run_refuses_a_job_another_lab_coordinates_and_export_needs_no_rounds(parties: Parties) -> None:
    table = parties.data / "hospital-a.csv"
    parties.chain[HOSPITAL_A].register_dataset(content_root(cid_of_file(table)))
    spec = parties.root / "spec.toml"
    parties.sov(
        "lab", "job", "spec", str(parties.data / "reference.csv"), "--label", "diagnosis", "-o", str(spec)
    )
    created = parties.sov("lab", "job", "create", "--datasets", cid_of_file(table), "--spec", str(spec),
                          "--account", f"dev{LAB}", "--json")  # fmt: skip
    assert created.returncode == 0, created.stderr
    job_id = json.loads(created.stdout)["job_id"]
    other = parties.chain[3].address
    done = parties.sov("lab", "job", "run", str(job_id), "--superlink", "127.0.0.1:9", "--rounds", "1",
                       "--account", "dev3")  # fmt: skip
    assert done.returncode == 1
    assert f"job {job_id} is coordinated by {parties.chain[LAB].address}, not by {other}" in done.stderr
    assert parties.chain[LAB].get_job(job_id).last_round == 0
    # A job without rounds exports its spec and initial model; the spec CID is the on-chain digest's.
    exported = parties.sov("lab", "job", "export", str(job_id), "-o", str(parties.root / "job.car"), "--json")
    assert exported.returncode == 0, exported.stderr
    document = json.loads(exported.stdout)
    digest = parties.chain[LAB].get_job(job_id).spec_digest
    assert int.from_bytes(content_root(document["roots"][0]), "big") == int.from_bytes(digest, "big")
    assert document["rounds"] == 0 and len(document["roots"]) == 2
    status = json.loads(parties.sov("lab", "job", "status", str(job_id), "--json").stdout)
    assert status["rounds"] == [] and "standardised" in status["preprocessing"]


def test_train_on_registered_files_with_the_hospitals_own_accounts(parties: Parties) -> None:
    home = parties.home("lab")
    keystore = Keystore(Settings(home=home), password=PASSWORD)
    addresses = {alias: keystore.create(alias, PASSWORD) for alias in ("lab", "hospital-a", "hospital-b")}
    chain = parties.chain
    for address in addresses.values():
        chain[0].transport.request("anvil_setBalance", [address, hex(10**19)])
    tables = [parties.data / "hospital-a.csv", parties.data / "hospital-b.csv"]
    owners = [
        chain[0].with_account(keystore.account(alias, chain_id=chain[0].chain_id))
        for alias in ("hospital-a", "hospital-b")
    ]
    now = chain[0].latest_block().timestamp
    ids = []
    for owner, table in zip(owners, tables, strict=True):
        dataset_id, _ = owner.register_dataset(content_root(cid_of_file(table)))
        ids.append(dataset_id)
    owners[0].issue_grant(ids[0], addresses["lab"], "ai-training", now - 60, now + 3600)
    args = ["train", "--datasets", ",".join(str(t) for t in tables), "--label", "diagnosis"]
    args += [
        "--rounds",
        "1",
        "--account",
        "lab",
        "--eval-data",
        str(parties.data / "reference.csv"),
        "--json",
    ]
    refused = parties.sov("lab", *args, timeout=300, password=PASSWORD)
    assert refused.returncode == 1
    assert f"may not use dataset {ids[1]:#066x} for 'ai-training' (no_grant)" in refused.stderr
    assert chain[0].job_count() == 0  # nothing was created
    owners[1].issue_grant(ids[1], addresses["lab"], "ai-training", now - 60, now + 3600)
    done = parties.sov("lab", *args, timeout=300, password=PASSWORD)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    [round_1] = report["rounds"]
    assert sorted(int(d) for d in round_1["participants"]) == sorted(ids)
    assert chain[0].get_job(report["job_id"]).coordinator == addresses["lab"]
    assert "accuracy" in round_1["metrics"]
    # Nothing new was registered: the chain holds the hospitals' two deeds only.
    assert all(chain[0].dataset_state(d).owner == o.address for d, o in zip(ids, owners, strict=True))
