"""`sov store put|get|export-car|import-car` and `sov cid`, through typer's runner."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from api.cli.store import app, cid_command
from ledger.store import CHUNK_SIZE, LocalBlockstore, cid_of, content_root

Snapshot = Callable[[Path], dict[str, bytes]]
CidOracle = Callable[..., list[str]]


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture()
def sov_home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture()
def env(sov_home: Path) -> dict[str, str]:
    return {"SOV_HOME": str(sov_home), "SOV_STORE": "local"}


def _cid_app() -> typer.Typer:
    # How the lead wires it: a top-level `cid` command next to the `store` group.
    cli = typer.Typer()
    cli.command("cid")(cid_command)
    cli.add_typer(app, name="store")
    return cli


def test_put_get_round_trip(runner: CliRunner, env: dict[str, str], tmp_path: Path, sov_home: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 11)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    put = runner.invoke(app, ["put", str(source), "--pin", "--json"], env=env)
    assert put.exit_code == 0, put.output
    answer = json.loads(put.stdout)
    cid = cid_of(data)
    assert answer["cid"] == cid
    assert answer["size"] == len(data)
    assert answer["content_root"] == "0x" + content_root(cid).hex()
    assert int(answer["dataset_id"]) == int.from_bytes(content_root(cid), "big")
    assert answer["pinned"] is True
    assert LocalBlockstore(sov_home / "blocks").pins() == [cid]

    plain = runner.invoke(app, ["put", str(source)], env=env)
    assert plain.stdout.strip() == cid

    to_stdout = runner.invoke(app, ["get", cid], env=env)
    assert to_stdout.exit_code == 0
    assert to_stdout.stdout_bytes == data

    target = tmp_path / "out.bin"
    to_file = runner.invoke(app, ["get", cid, "-o", str(target)], env=env)
    assert to_file.exit_code == 0, to_file.output
    assert target.read_bytes() == data


def test_get_of_damaged_content_fails_and_writes_nothing(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, sov_home: Path
) -> None:
    data = os.urandom(1000)
    store = LocalBlockstore(sov_home / "blocks")
    cid = store.put(data)
    block = store.block_path(cid)
    block.write_bytes(b"\x00" + block.read_bytes()[1:])
    target = tmp_path / "out.bin"
    result = runner.invoke(app, ["get", cid, "-o", str(target)], env=env)
    assert result.exit_code == 1
    assert "error: block" in result.stderr and "is damaged" in result.stderr
    assert not target.exists()
    assert list(tmp_path.glob(".out.bin.*")) == []
    to_stdout = runner.invoke(app, ["get", cid], env=env)
    assert to_stdout.exit_code == 1
    assert to_stdout.stdout_bytes == b""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["get", "Qmnotacid"], "error: 'Qmnotacid' is not a CIDv1 in base32"),
        (["get", cid_of(b"absent")], f"error: cannot read {cid_of(b'absent')}: no block"),
        (["put", "/nonexistent/file.bin"], "error: file not found: /nonexistent/file.bin"),
        (["import-car", "/nonexistent/x.car"], "error: file not found: /nonexistent/x.car"),
    ],
)
def test_user_errors_are_one_clean_line(
    runner: CliRunner, env: dict[str, str], sov_home: Path, snapshot: Snapshot, args: list[str], fragment: str
) -> None:
    before = snapshot(sov_home)
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 1
    assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert snapshot(sov_home) == before


def test_export_and_import_car(runner: CliRunner, env: dict[str, str], tmp_path: Path) -> None:
    first, second = os.urandom(CHUNK_SIZE + 1), b"manifest"
    (tmp_path / "a").write_bytes(first)
    (tmp_path / "b").write_bytes(second)
    cids = [runner.invoke(app, ["put", str(tmp_path / name)], env=env).stdout.strip() for name in "ab"]
    car = tmp_path / "out.car"
    exported = runner.invoke(app, ["export-car", *cids, "-o", str(car), "--json"], env=env)
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout) == {"roots": cids, "path": str(car), "bytes": car.stat().st_size}

    other_env = {"SOV_HOME": str(tmp_path / "other-home")}
    imported = runner.invoke(app, ["import-car", str(car), "--json"], env=other_env)
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout) == {"roots": cids}
    got = runner.invoke(app, ["get", cids[0]], env=other_env)
    assert got.stdout_bytes == first


def test_import_of_a_damaged_car_changes_nothing(
    runner: CliRunner, env: dict[str, str], tmp_path: Path, sov_home: Path, snapshot: Snapshot
) -> None:
    source = tmp_path / "a"
    source.write_bytes(os.urandom(5000))
    cid = runner.invoke(app, ["put", str(source)], env=env).stdout.strip()
    car = tmp_path / "out.car"
    assert runner.invoke(app, ["export-car", cid, "-o", str(car)], env=env).exit_code == 0
    damaged = bytearray(car.read_bytes())
    damaged[-1] ^= 1
    car.write_bytes(bytes(damaged))
    other_home = tmp_path / "other-home"
    before = snapshot(other_home)
    result = runner.invoke(app, ["import-car", str(car)], env={"SOV_HOME": str(other_home)})
    assert result.exit_code == 1
    assert f"error: CAR block {cid} does not hash to its CID" in result.stderr
    assert snapshot(other_home) == before


def test_export_of_unknown_cid_leaves_no_file(runner: CliRunner, env: dict[str, str], tmp_path: Path) -> None:
    car = tmp_path / "out.car"
    absent = cid_of(b"absent")
    result = runner.invoke(app, ["export-car", absent, "-o", str(car)], env=env)
    assert result.exit_code == 1
    assert f"error: cannot export {absent}" in result.stderr
    assert not car.exists()
    assert list(tmp_path.iterdir()) == []


def test_cid_command_matches_the_npm_importer(
    runner: CliRunner, tmp_path: Path, cid_oracle: CidOracle, sov_home: Path
) -> None:
    path = tmp_path / "dataset.csv"
    path.write_bytes(os.urandom(3 * CHUNK_SIZE + 1))
    (expected,) = cid_oracle([path])
    cli = _cid_app()
    plain = runner.invoke(cli, ["cid", str(path)], env={"SOV_HOME": str(sov_home)})
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.strip() == expected
    as_json = runner.invoke(cli, ["cid", str(path), "--json"])
    assert json.loads(as_json.stdout)["cid"] == expected
    assert json.loads(as_json.stdout)["size"] == path.stat().st_size
    assert not sov_home.exists()  # hashing stores nothing
    missing = runner.invoke(cli, ["cid", str(tmp_path / "nope")])
    assert missing.exit_code == 1
    assert f"error: file not found: {tmp_path / 'nope'}" in missing.stderr


def test_kubo_backend_through_the_cli(runner: CliRunner, ipfs_api_url: str, tmp_path: Path) -> None:
    env = {"SOV_HOME": str(tmp_path / "home"), "SOV_STORE": "kubo", "SOV_IPFS_API_URL": ipfs_api_url}
    data = os.urandom(CHUNK_SIZE * 2)
    source = tmp_path / "model.bin"
    source.write_bytes(data)
    put = runner.invoke(app, ["put", str(source), "--json"], env=env)
    assert put.exit_code == 0, put.output
    assert json.loads(put.stdout)["store"] == "kubo"
    cid = json.loads(put.stdout)["cid"]
    assert cid == cid_of(data)
    assert runner.invoke(app, ["get", cid], env=env).stdout_bytes == data


def test_unreachable_node_through_the_cli(runner: CliRunner, tmp_path: Path) -> None:
    url = "http://127.0.0.1:9"  # discard port: nothing listens there
    env = {"SOV_HOME": str(tmp_path / "home"), "SOV_STORE": "kubo", "SOV_IPFS_API_URL": url}
    result = runner.invoke(app, ["get", cid_of(b"x")], env=env)
    assert result.exit_code == 1
    assert f"error: IPFS node at {url} is unreachable" in result.stderr
