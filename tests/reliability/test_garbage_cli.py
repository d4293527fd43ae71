"""Garbage in, through the CLI: every input gets one clear line and exit 1, and no state changes."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli.main import app
from ledger.deploy import save_deployment
from ledger.settings import Settings

RNG = random.Random(20261127)


def junk(size: int) -> bytes:
    return bytes(RNG.getrandbits(8) for _ in range(size))


@dataclass
class Cli:
    """The `sov` app run in-process against a real anvil, with its own SOV_HOME."""

    runner: CliRunner
    env: dict[str, str]
    chain: object

    def __call__(self, *args: str) -> tuple[int, str]:
        result = self.runner.invoke(app, list(args), env=self.env)
        return result.exit_code, result.output

    def chain_state(self) -> tuple[int, int]:
        """Block height and dataset count: what a failed command must leave untouched."""
        lab = self.chain[0]  # type: ignore[index]
        events = lab.get_logs(lab.deployment.deployed_block)
        return lab.latest_block().number, sum(e.name == "DatasetRegistered" for e in events)


@pytest.fixture()
def cli(deployed: object, tmp_path: Path) -> Iterator[Cli]:
    home = tmp_path / "home"
    save_deployment(Settings(home=home), deployed.deployment)  # type: ignore[attr-defined]
    env = {"SOV_HOME": str(home), "SOV_RPC_URL": deployed.rpc_url, "COLUMNS": "200"}  # type: ignore[attr-defined]
    yield Cli(CliRunner(), env, deployed)


def assert_clean_failure(code: int, output: str, *expected: str) -> None:
    # 1: the command refused the value; 2: the command line itself did not parse (click's convention)
    assert code in (1, 2), output
    assert "Traceback" not in output
    assert "error" in output.lower()
    flat = " ".join(output.split())
    for fragment in expected:
        assert fragment in flat, flat


GARBAGE_IDS = ["", "0x", "0xZZ", "-1", "bafy" + "!" * 20, junk(12).hex(), "b" + "a" * 70, "0x" + "f" * 65]


@pytest.mark.parametrize("text", GARBAGE_IDS)
def test_garbage_dataset_ids(cli: Cli, text: str) -> None:
    before = cli.chain_state()
    code, output = cli(
        "grant", "issue", text, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "--account", "dev1"
    )
    assert_clean_failure(code, output)
    assert cli.chain_state() == before


@pytest.mark.parametrize(
    "text",
    [
        "0x123",
        "f39Fd6e51aad88F6F4ce6aB8827279cffFb92266x",
        "0xf39fd6e51aad88f6f4ce6ab8827279cfffb9226G",
        "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        junk(20).hex(),
    ],
)
def test_garbage_addresses(cli: Cli, tmp_path: Path, text: str) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"a dataset")
    assert cli("dataset", "register", str(data), "--account", "dev1")[0] == 0
    before = cli.chain_state()
    code, output = cli("grant", "issue", _cid(cli, data), text, "--account", "dev1")
    assert_clean_failure(code, output, "grantee")
    assert cli.chain_state() == before


def _cid(cli: Cli, path: Path) -> str:
    code, output = cli("cid", str(path))
    assert code == 0, output
    return output.strip().split()[-1]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "not JSON"),
        (junk(300), "JSON"),
        (b"[1, 2, 3]", "not a signed grant"),
        (json.dumps({"domain": {}, "message": {}}).encode(), "signature"),
    ],
)
def test_garbage_signed_grant_files(cli: Cli, tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "grant.json"
    path.write_bytes(content)
    before = cli.chain_state()
    code, output = cli("grant", "redeem", str(path))
    assert_clean_failure(code, output, expected)
    assert cli.chain_state() == before


def test_forged_signature_on_a_real_grant(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"another dataset")
    assert cli("dataset", "register", str(data), "--account", "dev1")[0] == 0
    signed = tmp_path / "grant.json"
    code, output = cli(
        "grant",
        "sign",
        _cid(cli, data),
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "-o",
        str(signed),
        "--account",
        "dev1",
    )
    assert code == 0, output
    document = json.loads(signed.read_text())
    document["signature"] = "0x" + junk(65).hex()
    signed.write_text(json.dumps(document))
    before = cli.chain_state()
    code, output = cli("grant", "redeem", str(signed))
    assert_clean_failure(code, output)
    assert cli.chain_state() == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (junk(2000), ""),
        (b"a,b,label\n1,2\n3,4,x,9\n", ""),
        (b"x,label\n1,a\n2,a\n3,a\n", "class"),
    ],
)
def test_garbage_csv_for_training(cli: Cli, tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    before = cli.chain_state()
    code, output = cli("train", "--data", str(path), "--label", "label", "--rounds", "1", "--nodes", "2")
    assert_clean_failure(code, output, expected)
    assert cli.chain_state() == before


@pytest.mark.parametrize("content", [b"", junk(64), junk(4096)])
def test_garbage_model_files_for_audit(cli: Cli, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    before = cli.chain_state()
    code, output = cli("audit", str(path))
    assert code == 1, output
    assert "Traceback" not in output
    assert cli.chain_state() == before


@pytest.mark.parametrize("text", ["", "bafy", "Qm" + "1" * 10, junk(30).hex(), "b" + "2" * 58])
def test_garbage_cids_for_the_store(cli: Cli, text: str) -> None:
    code, output = cli("store", "get", text)
    assert_clean_failure(code, output)


def test_account_create_then_refuse_to_overwrite(cli: Cli) -> None:
    env = {**cli.env, "SOV_KEY_PASSWORD": "correct horse"}
    created = cli.runner.invoke(app, ["account", "create", "hospital-a", "--json"], env=env)
    assert created.exit_code == 0, created.output
    address = json.loads(created.output)["address"]
    keyfile = Path(cli.env["SOV_HOME"]) / "keystore" / "hospital-a.json"
    before = keyfile.read_bytes()
    again = cli.runner.invoke(app, ["account", "create", "hospital-a"], env=env)
    assert_clean_failure(again.exit_code, again.output, "already exists")
    assert keyfile.read_bytes() == before
    code, output = cli("account", "list", "--json")
    assert code == 0 and {"alias": "hospital-a", "address": address} in json.loads(output)
    assert "correct horse" not in before.decode()


@pytest.mark.parametrize("key", ["zz", "00" * 31, "0x" + "11" * 33])
def test_account_import_of_a_malformed_key(cli: Cli, key: str) -> None:
    env = {**cli.env, "SOV_KEY_PASSWORD": "pw"}
    result = cli.runner.invoke(
        app, ["account", "create", "imported", "--import-key"], env=env, input=key + "\n"
    )
    assert_clean_failure(result.exit_code, result.output, "32 bytes of hex")
    assert not (Path(cli.env["SOV_HOME"]) / "keystore" / "imported.json").exists()
