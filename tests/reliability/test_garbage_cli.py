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


# ----------------------------------------------------------------------------- the commands of issue 11


def _one_line(result: object) -> str:
    """Exit 1 or 2, no traceback, exactly one `error:` line on stderr; returns it flattened."""
    exit_code, stderr, output = result.exit_code, result.stderr, result.output  # type: ignore[attr-defined]
    assert exit_code in (1, 2), output
    assert "Traceback" not in output
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def _home_files(home: Path) -> dict[str, bytes]:
    if not home.exists():
        return {}
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}


def _joiner(cli: Cli, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A fresh party with no network yet (no SOV_RPC_URL, an empty home)."""
    home = tmp_path / "joiner"
    return {"SOV_HOME": str(home), "COLUMNS": "200"}, home


def _good_manifest(cli: Cli, tmp_path: Path) -> Path:
    path = tmp_path / "good-manifest.json"
    path.write_text(json.dumps(cli.chain.deployment.to_dict()))  # type: ignore[attr-defined]
    return path


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", "neither an http(s):// URL nor an IPC socket"),
        ("ftp://127.0.0.1:8545", "neither an http(s):// URL nor an IPC socket"),
        ("http://", "is not a valid http(s) URL"),
        ("not a url", "neither an http(s):// URL nor an IPC socket"),
        ("http://127.0.0.1:99999", "is not a valid http(s) URL"),
        ("ws://127.0.0.1:8545", "WebSocket is not supported"),
        ("/tmp/no-such-socket.ipc", "neither an http(s):// URL nor an IPC socket"),
    ],
)
def test_garbage_rpc_urls_for_network_join(cli: Cli, tmp_path: Path, url: str, expected: str) -> None:
    env, home = _joiner(cli, tmp_path)
    manifest = _good_manifest(cli, tmp_path)
    before = cli.chain_state()
    result = cli.runner.invoke(app, ["network", "join", url, "--manifest", str(manifest)], env=env)
    assert expected in _one_line(result)
    assert _home_files(home) == {}
    assert cli.chain_state() == before


def test_unreachable_rpc_url_for_network_join_names_it(cli: Cli, tmp_path: Path) -> None:
    from ledger.devnet import free_port

    env, home = _joiner(cli, tmp_path)
    url = f"http://127.0.0.1:{free_port()}"
    result = cli.runner.invoke(
        app, ["network", "join", url, "--manifest", str(_good_manifest(cli, tmp_path))], env=env
    )
    assert f"chain node at {url} is unreachable" in _one_line(result)
    assert _home_files(home) == {}


GARBAGE_MANIFESTS: list[tuple[bytes, str]] = [
    (b"", "is not JSON"),
    (junk(400), "is not JSON"),
    (b"[1, 2, 3]", "holds list, not a manifest object"),
    (b'"a string"', "holds str, not a manifest object"),
    (b"{}", "deployment manifest is malformed"),
    (json.dumps({"chain_id": "x", "addresses": {}, "deployed_block": 1}).encode(), "malformed"),
    (
        json.dumps(
            {"chain_id": 31337, "addresses": {"DatasetRegistry": "0xZZ"}, "deployed_block": 1}
        ).encode(),
        "malformed",
    ),
    (json.dumps({"chain_id": 31337, "addresses": [], "deployed_block": 1}).encode(), "has no address for"),
    (json.dumps({"chain_id": 31337, "addresses": {}, "deployed_block": 1}).encode(), "has no address for"),
    (b"{" + b" " * 1_100_000 + b"}", "larger than"),
]


@pytest.mark.parametrize(("content", "expected"), GARBAGE_MANIFESTS)
def test_garbage_manifests_for_network_join(cli: Cli, tmp_path: Path, content: bytes, expected: str) -> None:
    env, home = _joiner(cli, tmp_path)
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    before = cli.chain_state()
    result = cli.runner.invoke(
        app, ["network", "join", cli.env["SOV_RPC_URL"], "--manifest", str(path)], env=env
    )
    assert expected in " ".join(_one_line(result).split())
    assert _home_files(home) == {}
    assert cli.chain_state() == before


def test_negative_deployed_block_and_a_directory_as_manifest(cli: Cli, tmp_path: Path) -> None:
    env, home = _joiner(cli, tmp_path)
    document = {**cli.chain.deployment.to_dict(), "deployed_block": -1}  # type: ignore[attr-defined]
    path = tmp_path / "negative.json"
    path.write_text(json.dumps(document))
    rpc = cli.env["SOV_RPC_URL"]
    assert "negative deployed_block" in _one_line(
        cli.runner.invoke(app, ["network", "join", rpc, "--manifest", str(path)], env=env)
    )
    assert f"{tmp_path} is a directory, not a file" in _one_line(
        cli.runner.invoke(app, ["network", "join", rpc, "--manifest", str(tmp_path)], env=env)
    )
    assert _home_files(home) == {}


def test_garbage_deployment_addresses_for_network_join(cli: Cli, tmp_path: Path) -> None:
    env, home = _joiner(cli, tmp_path)
    rpc = cli.env["SOV_RPC_URL"]
    registry = cli.chain.deployment.address("DatasetRegistry")  # type: ignore[attr-defined]
    cases = [
        ("0x123", "is not a 20-byte hex address"),
        (junk(20).hex(), "is not a 20-byte hex address"),
        ("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "there is no contract at"),  # an account, no code
        (registry, "does not answer registry()"),  # one of ours, but not a TrainingLedger
    ]
    for text, expected in cases:
        result = cli.runner.invoke(app, ["network", "join", rpc, "--address", text], env=env)
        assert expected in _one_line(result), text
    both = cli.runner.invoke(
        app,
        ["network", "join", rpc, "--address", registry, "--manifest", str(_good_manifest(cli, tmp_path))],
        env=env,
    )
    assert "either as --manifest" in _one_line(both)
    assert "either as --manifest" in _one_line(cli.runner.invoke(app, ["network", "join", rpc], env=env))
    assert _home_files(home) == {}


def _balance(cli: Cli, address: str) -> int:
    return int(cli.chain[0].transport.request("eth_getBalance", [address, "latest"]), 16)  # type: ignore[index]


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("", "is not an amount of ether"),
        ("1", "give a number and a unit"),
        ("-1eth", "is not an amount of ether"),
        ("0eth", "out of range"),
        ("1.5wei", "not a whole number of wei"),
        ("abc", "is not an amount of ether"),
        ("1e3eth", "is not an amount of ether"),
        ("2000000eth", "out of range"),
        ("1 lightyear", "is not an amount of ether"),
        ("0x10eth", "is not an amount of ether"),
    ],
)
def test_garbage_amounts_for_account_fund(cli: Cli, amount: str, expected: str) -> None:
    who = "0x" + "ef" * 20
    before = _balance(cli, who), cli.chain_state()
    assert expected in _one_line(
        cli.runner.invoke(app, ["account", "fund", who, "--amount", amount], env=cli.env)
    )
    assert (_balance(cli, who), cli.chain_state()) == before


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("0x123", "is not a 20-byte hex address"),
        ("0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "wrong EIP-55 checksum"),
        ("nobody", "neither an address"),
        ("", "neither an address"),
    ],
)
def test_garbage_addresses_for_account_fund(cli: Cli, who: str, expected: str) -> None:
    before = cli.chain_state()
    assert expected in _one_line(
        cli.runner.invoke(app, ["account", "fund", who, "--amount", "1eth"], env=cli.env)
    )
    assert cli.chain_state() == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--block-time", "abc"], "Invalid value for '--block-time'"),
        (["--block-time", "-1"], "out of range"),
        (["--block-time", "0"], "out of range"),
        (["--block-time", "nan"], "out of range"),
        (["--host", "999.1.1.1"], "is not an address of this machine"),
        (["--host", ""], "is not an address of this machine"),
        (["--host", "8.8.8.8"], "is not an address of this machine"),
    ],
)
def test_garbage_devnet_options(tmp_path: Path, args: list[str], expected: str) -> None:
    home = tmp_path / "devnet-home"
    env = {"SOV_HOME": str(home), "SOV_DEVNET_PORT": "0", "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["devnet", "up", *args], env=env)
    try:
        assert expected in _one_line(result)
        status = CliRunner().invoke(app, ["devnet", "status", "--json"], env=env)
        assert json.loads(status.stdout)["running"] is False
        assert not (home / "devnet" / "devnet.json").exists()
    finally:
        CliRunner().invoke(app, ["devnet", "down"], env=env)


def test_deploy_with_an_unknown_account_changes_nothing(cli: Cli) -> None:
    home = Path(cli.env["SOV_HOME"])
    before, files = cli.chain_state(), _home_files(home)
    result = cli.runner.invoke(app, ["deploy", "--account", "nobody", "--force"], env=cli.env)
    assert "nobody" in _one_line(result)
    assert cli.chain_state() == before and _home_files(home) == files


@pytest.mark.parametrize("command", ["retire", "transfer"])
@pytest.mark.parametrize("text", ["", "0xZZ", "-1", "0x" + "f" * 65, "12345"])
def test_garbage_datasets_for_retire_and_transfer(cli: Cli, command: str, text: str) -> None:
    before = cli.chain_state()
    extra = ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"] if command == "transfer" else []
    result = cli.runner.invoke(
        app, ["dataset", command, text, *extra, "--yes", "--account", "dev1"], env=cli.env
    )
    _one_line(result)
    assert cli.chain_state() == before


@pytest.mark.parametrize("to", ["", "0x123", "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "nobody"])
def test_garbage_new_owners_for_transfer(cli: Cli, tmp_path: Path, to: str) -> None:
    data = tmp_path / "owned.bin"
    data.write_bytes(b"a dataset to keep")
    assert cli("dataset", "register", str(data), "--account", "dev1")[0] == 0
    before = cli.chain_state()
    result = cli.runner.invoke(
        app, ["dataset", "transfer", _cid(cli, data), to, "--yes", "--account", "dev1"], env=cli.env
    )
    assert "new owner" in _one_line(result)
    assert cli.chain_state() == before


@pytest.mark.parametrize(
    "args",
    [
        ["node", "run", "--data", "/no/such/file.csv", "--label", "y", "--account", "dev1", "--check"],
        ["job", "create", "--datasets", "0xZZ", "--spec", "/no/such/spec.toml", "--account", "dev0"],
        ["job", "status", "-5"],
        ["job", "export", "999999", "-o", "/no/such/dir/job.car"],
    ],
)
def test_garbage_for_node_and_job(cli: Cli, args: list[str]) -> None:
    before = cli.chain_state()
    _one_line(cli.runner.invoke(app, args, env=cli.env))
    assert cli.chain_state() == before
