"""Start-up stays cheap: `sov --help` and the quick commands' own help import neither torch, web3,
eth_account nor fl_node (checked in a fresh interpreter; timing is `bench/bench_cli.py`'s job)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

HEAVY = ("torch", "web3", "eth_account", "fl_node", "flwr", "fastapi", "pydantic_settings")

PROBE = """
import json, sys
from api.cli.main import app
import typer.main
args = json.loads(sys.argv[1])
if args is not None:
    try:
        typer.main.get_command(app).main(args, prog_name="sov", standalone_mode=False)
    except SystemExit:
        pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def _loaded(args: list[str] | None) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ),
        timeout=120,
        check=True,
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_importing_the_cli_imports_no_heavy_package() -> None:
    loaded = _loaded(None)
    assert "api" in loaded  # the probe did import the CLI
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["grant", "check", "--help"],
        ["dataset", "list", "--help"],
        ["network", "join", "--help"],
        ["account", "fund", "--help"],
        ["devnet", "up", "--help"],
    ],
)
def test_help_imports_no_heavy_package(args: list[str]) -> None:
    loaded = _loaded(args)
    assert not loaded & set(HEAVY), (args, sorted(loaded & set(HEAVY)))


def test_the_purpose_names_in_the_help_are_the_vocabulary() -> None:
    from api.cli.grant import PURPOSE_NAMES
    from ledger.purposes import PURPOSE_NAMES as VOCABULARY

    assert PURPOSE_NAMES == VOCABULARY


def test_every_listed_command_loads_and_has_the_summary_of_its_module() -> None:
    from api.cli.main import LAZY_COMMANDS, _available

    for name, entry in LAZY_COMMANDS.items():
        if not _available(entry):
            continue
        command = entry.load(name)
        assert command.name == name
        assert entry.summary, name
