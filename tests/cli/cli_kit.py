"""Running `sov` in-process against real nodes, with a home per party (as separate machines would)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from api.cli.main import app


@dataclass
class Party:
    """One organisation's `sov`: its own SOV_HOME, optionally a fixed SOV_RPC_URL."""

    home: Path
    rpc_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str | None]:
        env: dict[str, str | None] = {
            "SOV_HOME": str(self.home),
            "SOV_RPC_URL": self.rpc_url,
            "COLUMNS": "80",
        }
        return {**env, **self.extra_env}

    def run(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(app, list(args), env=self.env, input=input)

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def manifest(self, chain_id: int = 31337) -> Path:
        return self.home / "deployments" / f"{chain_id}.json"

    def files(self) -> dict[str, bytes]:
        """Every file of the home and its bytes: what a refused command must leave as it was."""
        if not self.home.exists():
            return {}
        return {str(p.relative_to(self.home)): p.read_bytes() for p in self.home.rglob("*") if p.is_file()}


def one_error_line(result: Result) -> str:
    """The refusal of a command: exit 1 or 2, no traceback, exactly one `error:` line on stderr."""
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]
