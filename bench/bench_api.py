"""HTTP service throughput: `GET /v1/grants/check` under 50 concurrent clients on loopback.

A fresh anvil with the contracts, one dataset and one grant; the service runs under uvicorn in its
own process (one worker, as `sov serve` starts it). The load generator is httpx's async client with
50 concurrent connections sharing a fixed request budget. Reported: requests/s and the p99 latency,
each the median of `repeats` runs after a warm-up.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from web3 import Web3

from ledger.chain.client import LedgerClient
from ledger.deploy import deploy_contracts, save_deployment
from ledger.devnet import free_port, start_anvil
from ledger.keys import dev_account
from ledger.settings import Settings

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = 50


async def _load(base_url: str, params: dict[str, str], requests: int) -> tuple[float, list[float]]:
    """`requests` checks spread over CONCURRENCY clients; returns (seconds, per-request latencies)."""
    latencies: list[float] = []
    remaining = requests
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await client.get("/v1/grants/check", params=params)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200 or response.json()["authorized"] is not True:
                    raise RuntimeError(f"check failed: {response.status_code} {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started, latencies


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _wait_up(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            if httpx.get(f"{base_url}/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the service did not come up at {base_url}:\n{log.read_text()[-2000:]}")


def run(requests: int = 1000, repeats: int = 3, warmup: int = 200) -> dict[str, Any]:
    """Measure the grant-check endpoint; returns `api_check_rps` and `api_check_p99_ms`."""
    node = start_anvil()
    server: subprocess.Popen[bytes] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="sov-bench-api-") as tmp:
            home = Path(tmp)
            settings = Settings(home=home, rpc_url=node.rpc_url)
            save_deployment(settings, deploy_contracts(Web3(Web3.HTTPProvider(node.rpc_url)), dev_account(0)))
            owner = LedgerClient.connect(settings, account=dev_account(1))
            dataset_id, _ = owner.register_dataset(secrets.token_bytes(32))
            grantee = str(dev_account(2).address)
            now = owner.latest_block().timestamp
            owner.issue_grant(dataset_id, grantee, "ai-training", now, now + 86400)
            port = free_port()
            env = {
                **os.environ,
                "SOV_HOME": str(home),
                "SOV_RPC_URL": node.rpc_url,
                "SOV_API_TOKEN": secrets.token_hex(16),
                "PYTHONPATH": str(REPO),
            }
            log = home / "server.log"
            with log.open("wb") as log_handle:
                server = subprocess.Popen(
                    [sys.executable, "-m", "api.cli.serve", "--port", str(port), "--log-level", "warning"],
                    env=env,
                    stdout=log_handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            base_url = f"http://127.0.0.1:{port}"
            _wait_up(base_url, server, log)
            params = {"dataset_id": str(dataset_id), "grantee": grantee, "purpose": "ai-training"}
            asyncio.run(_load(base_url, params, warmup))
            rates: list[float] = []
            p99s: list[float] = []
            for _ in range(repeats):
                seconds, latencies = asyncio.run(_load(base_url, params, requests))
                rates.append(requests / seconds)
                p99s.append(_p99(latencies))
            return {
                "api_check_rps": round(statistics.median(rates), 1),
                "api_check_p99_ms": round(statistics.median(p99s) * 1000, 1),
                "api_check_clients": CONCURRENCY,
                "api_check_requests": requests,
            }
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        node.stop()


if __name__ == "__main__":
    print(run())
