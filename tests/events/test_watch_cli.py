"""`sov watch` against a real anvil: a live process prints the demo's events as CloudEvents JSON
lines as they land; its cursor resumes with nothing repeated or skipped; bad input is one line."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from change_kit import DEMO_TYPES, run_demo
from typer.testing import CliRunner

from api.cli.main import app
from ledger.deploy import save_deployment
from ledger.settings import Settings
from tests.conftest import REPO_ROOT, DeployedChain


@pytest.fixture()
def env(deployed: DeployedChain, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    save_deployment(Settings(home=home), deployed.deployment)
    return {"SOV_HOME": str(home), "SOV_RPC_URL": deployed.rpc_url}


def _sov(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(app, ["watch", *args], env=env)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, lines, result.stderr


def _start_watch(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`sov watch` in its own process group, with Ctrl-C's default action: a shell's background
    job (`make test &`) passes SIGINT on ignored, and Python then never raises KeyboardInterrupt."""
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli.main", "watch", "--poll-interval", "0.1", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_a_live_watch_prints_every_event_as_it_lands_and_its_cursor_resumes(
    deployed: DeployedChain, env: dict[str, str]
) -> None:
    start = deployed[0].latest_block().number + 1
    process = _start_watch(env, "--from-block", str(start))
    try:
        time.sleep(1.0)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        facts = run_demo(deployed.clients)
        assert process.stdout is not None
        live = [json.loads(process.stdout.readline()) for _ in DEMO_TYPES]
    finally:
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    assert [e["type"] for e in live] == DEMO_TYPES
    assert all(e["specversion"] == "1.0" and e["datacontenttype"] == "application/json" for e in live)
    assert process.returncode == 0, stderr
    assert f"resume with: sov watch --cursor {live[-1]['id']}" in stderr

    # History from block 0 is the same events, byte for byte the same ids.
    code, history, _ = _sov(env, "--from-block", "0", "--no-follow")
    assert code == 0 and history == live
    # Resuming after the 4th event prints exactly the other four.
    code, rest, stderr = _sov(env, "--cursor", str(live[3]["id"]), "--no-follow")
    assert code == 0 and [e["id"] for e in rest] == [e["id"] for e in live[4:]]
    assert f"resume with: sov watch --cursor {live[-1]['id']}" in stderr
    # A block and a type filter.
    code, grants, _ = _sov(env, "--from-block", str(facts.revoke_block), "--type", "grant", "--no-follow")
    assert code == 0 and [e["type"] for e in grants] == ["org.sovereign-ledger.grant.revoked"]
    code, bounded, _ = _sov(env, "--from-block", "0", "--until-block", str(facts.revoke_block - 1))
    assert code == 0 and [e["type"] for e in bounded] == DEMO_TYPES[:6]
    text = CliRunner().invoke(app, ["watch", "--from-block", "0", "--no-follow", "--format", "text"], env=env)
    assert text.exit_code == 0
    assert f"block {facts.revoke_block} grant.revoked 0x{facts.dataset_ids[0]:064x}/" in text.stdout


def test_sigterm_ends_a_live_watch_as_ctrl_c_does(deployed: DeployedChain, env: dict[str, str]) -> None:
    dataset_id, _ = deployed[1].register_dataset(os.urandom(32))
    block = deployed[1].latest_block().number
    process = _start_watch(env, "--from-block", str(block))
    try:
        assert process.stdout is not None
        registered = json.loads(process.stdout.readline())  # it is in its loop: then the stop
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert registered["type"] == "org.sovereign-ledger.dataset.registered"
    assert registered["subject"] == f"0x{dataset_id:064x}"
    assert process.returncode == 0, stderr
    assert f"resume with: sov watch --cursor {registered['id']}" in stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--cursor", "yesterday"], "invalid_cursor", "is not an event id; expected <chainId>:<block>"),
        (["--cursor", "1:5:0:0123456789abcdef"], "invalid_cursor", "is an event of chain 1; this feed"),
        (["--cursor", "31337:999999:0:0123456789abcdef"], "invalid_cursor", "the chain was reset since"),
        (["--from-block", "3", "--cursor", "31337:5:0:0123456789abcdef"], "invalid_argument", "not both"),
        (["--type", "grants.revoked"], "unknown_event_type", "did you mean 'grant.revoked'?"),
        (["--format", "xml"], "invalid_argument", "--format must be one of jsonl, text; got 'xml'"),
    ],
)
def test_bad_watch_input_is_one_line_with_a_typed_code(
    env: dict[str, str], args: list[str], code: str, message: str
) -> None:
    result = CliRunner().invoke(app, ["watch", *args, "--no-follow", "--json"], env=env)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert json.loads(result.stdout)["error"]["code"] == code
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_an_unreachable_node_is_one_line_and_help_loads_no_chain_client(tmp_path: Path) -> None:
    from ledger.devnet import free_port

    env = {"SOV_HOME": str(tmp_path / "home"), "SOV_RPC_URL": f"http://127.0.0.1:{free_port()}"}
    result = CliRunner().invoke(app, ["watch", "--no-follow", "--json"], env=env)
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["error"]["code"] == "unreachable"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and env["SOV_RPC_URL"] in lines[0], (
        result.stderr
    )
    probe = (
        "import sys\nfrom api.cli.main import app\nimport typer.main\n"
        "try:\n    typer.main.get_command(app).main(\n"
        "        ['watch', '--help'], prog_name='sov', standalone_mode=False)\n"
        "except SystemExit:\n    pass\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'web3', 'eth_account', 'torch', 'fastapi'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert "--cursor" in done.stdout and done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_a_watch_whose_node_goes_away_says_where_to_resume_then_one_error_line(
    deployed: DeployedChain, env: dict[str, str]
) -> None:
    start = deployed[0].latest_block().number + 1
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli.main", "watch", "--from-block", str(start), "--poll-interval", "0.1"],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        run_demo(deployed.clients)
        assert process.stdout is not None
        seen = [json.loads(process.stdout.readline()) for _ in DEMO_TYPES]
        deployed.node.kill()
        stdout, stderr = process.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 1, stderr
    assert stdout == ""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[0].endswith(f"resume with: sov watch --cursor {seen[-1]['id']}"), stderr
    assert len(lines) == 2 and lines[1].startswith("error: ") and deployed.rpc_url in lines[1], stderr
    assert "Traceback" not in stderr
