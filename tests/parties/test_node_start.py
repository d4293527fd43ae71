"""`sov node run` serves only the very file its account registered, and says why it will not start.

Real anvil, real `sov` processes. Each refusal is asserted by its message, with nothing
started (no node state written, no SuperNode) and the chain unchanged.
"""

from __future__ import annotations

from ledger.store import cid_of_file, content_root
from tests.parties.conftest import Parties

HOSPITAL_A, HOSPITAL_B = 2, 3  # dev accounts (a devnet): the deeds' owners
UNREACHABLE = "127.0.0.1:9"  # nothing listens: the node must refuse before it connects


def _dataset_id(path: object) -> int:
    return int.from_bytes(content_root(cid_of_file(path)), "big")  # type: ignore[arg-type]


def test_node_refuses_a_file_that_is_not_registered(parties: Parties) -> None:
    table = parties.data / "hospital-a.csv"
    done = parties.sov(
        "hospital-a", "node", "run", "--data", str(table), "--label", "diagnosis",
        "--account", f"dev{HOSPITAL_A}", "--superlink", UNREACHABLE,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "is not registered on chain 31337" in done.stderr
    assert f"sov dataset register {table}" in done.stderr  # what to run instead
    assert "Traceback" not in done.stderr
    assert not (parties.root / "hospital-a" / "node").exists()  # nothing started, nothing written
    assert not parties.chain[HOSPITAL_A].dataset_state(_dataset_id(table)).registered


def test_node_refuses_a_converted_copy_of_the_registered_file(parties: Parties) -> None:
    table = parties.data / "hospital-a.csv"
    parties.chain[HOSPITAL_A].register_dataset(content_root(cid_of_file(table)))
    # The hospital registered its CSV; a hand-made copy (here, one byte more) is another dataset.
    copy = parties.data / "hospital-a-copy.csv"
    copy.write_bytes(table.read_bytes() + b"\n")
    done = parties.sov(
        "hospital-a", "node", "run", "--data", str(copy), "--label", "diagnosis",
        "--account", f"dev{HOSPITAL_A}", "--superlink", UNREACHABLE,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"{copy} (CID {cid_of_file(copy)}" in done.stderr and "is not registered" in done.stderr


def test_node_refuses_a_file_registered_to_another_account(parties: Parties) -> None:
    table = parties.data / "hospital-a.csv"
    squatter = parties.chain[HOSPITAL_B]
    squatter.register_dataset(content_root(cid_of_file(table)))
    done = parties.sov(
        "hospital-a", "node", "run", "--data", str(table), "--label", "diagnosis",
        "--account", f"dev{HOSPITAL_A}", "--superlink", UNREACHABLE,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"is registered to {squatter.address}, not to account 'dev{HOSPITAL_A}'" in done.stderr
    assert not (parties.root / "hospital-a" / "node").exists()
    assert parties.chain[HOSPITAL_A].dataset_state(_dataset_id(table)).owner == squatter.address


def test_node_accepts_the_deed_of_its_configured_wallet_and_its_own(parties: Parties) -> None:
    table = parties.data / "hospital-a.csv"
    parties.chain[HOSPITAL_B].register_dataset(content_root(cid_of_file(table)))
    wallet = parties.chain[HOSPITAL_B].address  # stands for the wallet that holds the deed
    config = parties.root / "node.toml"
    config.write_text(
        f'[node]\ndata = "{table}"\nlabel = "diagnosis"\naccount = "dev{HOSPITAL_A}"\n'
        f'owner-wallet = "{wallet}"\n'
    )
    done = parties.sov("hospital-a", "node", "run", "--config", str(config), "--check", "--json")
    assert done.returncode == 0, done.stderr
    assert f'"dataset_id": "{_dataset_id(table):#066x}"' in done.stdout


def test_node_refuses_a_label_column_the_table_lacks(parties: Parties) -> None:
    table = parties.data / "hospital-a.csv"
    parties.chain[HOSPITAL_A].register_dataset(content_root(cid_of_file(table)))
    done = parties.sov(
        "hospital-a", "node", "run", "--data", str(table), "--label", "outcome",
        "--account", f"dev{HOSPITAL_A}", "--superlink", UNREACHABLE,
    )  # fmt: skip
    assert done.returncode == 1
    assert "has no column 'outcome'" in done.stderr and "diagnosis" in done.stderr


def test_node_status_without_a_node(parties: Parties) -> None:
    done = parties.sov("hospital-a", "node", "status", "--json")
    assert done.returncode == 0
    assert '"decisions": []' in done.stdout and '"running": false' in done.stdout
