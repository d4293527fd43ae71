"""`sov serve`: run the HTTP service (FastAPI under uvicorn) on 127.0.0.1 by default.

The bearer token is read from `SOV_API_TOKEN` only, never from a flag: command lines are visible
to every user of the machine (`ps`), environment variables of another user's process are not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="interface to bind; keep 127.0.0.1 unless a proxy fronts it")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0 = any free port)")] = 8000,
    account: Annotated[
        str | None, typer.Option(help="keystore alias the service signs with (default: SOV_API_ACCOUNT)")
    ] = None,
    reads_require_token: Annotated[
        bool | None,
        typer.Option(
            "--reads-require-token/--open-reads",
            help="close reads behind the token (SOV_API_READS_REQUIRE_TOKEN)",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the API under /v1 and the owner and audit pages at / and /audit/<cid>."""
    import uvicorn

    from api.app import create_app
    from api.auth import ApiSettings
    from ledger.settings import Settings

    settings = Settings()
    overrides: dict[str, object] = {}
    if account is not None:
        overrides["account"] = account
    if reads_require_token is not None:
        overrides["reads_require_token"] = reads_require_token
    api_settings = ApiSettings(**overrides)  # type: ignore[arg-type]
    if api_settings.token is None:
        typer.echo("SOV_API_TOKEN is not set: the service will refuse every write.", err=True)
    if api_settings.account is None:
        typer.echo(
            "No operator account (SOV_API_ACCOUNT or --account): the service will refuse every write.",
            err=True,
        )
    typer.echo(f"sovereign-ledger API on http://{host}:{port}/ (docs at /docs)")
    uvicorn.run(create_app(settings, api_settings), host=host, port=port, log_level=log_level)


def main() -> None:
    """Run `serve` as a standalone command (`python -m api.cli.serve`)."""
    typer.run(serve)


class ServiceProcess:
    """`sov serve` in a child process of its own session: started, awaited, stopped by process group.

    For programs that drive the service from outside (benchmarks, end-to-end tests): the
    child reads its settings from `env` exactly as a deployed service reads its environment.
    """

    def __init__(self, env: Mapping[str, str], port: int, log_path: Path, *, timeout_s: float = 60.0) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api.cli.serve", "--port", str(port), "--log-level", "warning"],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, timeout_s: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the service did not come up at {self.url}:\n{self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM the service's process group; SIGKILL it if it does not exit within 10 s."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


if __name__ == "__main__":
    main()
