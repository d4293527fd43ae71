"""HTTP service throughput: `GET /v1/grants/check` under 50 concurrent clients on loopback.

A fresh anvil with the contracts, one dataset and one grant; the service runs under uvicorn in its
own process (one worker, as `sov serve` starts it). The load generator keeps 50 concurrent
keep-alive connections sharing a fixed request budget. Reported: requests/s and the p99 latency,
each the median of `repeats` runs after a warm-up. The load generator runs in its own process
(`python -m bench.bench_api load HOST PORT TARGET N`), see `_load`.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from web3 import Web3

from api.cli.serve import ServiceProcess
from ledger.chain.client import LedgerClient
from ledger.deploy import deploy_contracts, save_deployment
from ledger.devnet import free_port, start_anvil
from ledger.keys import dev_account
from ledger.settings import Settings

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = 50


async def _client(host: str, port: int, request: bytes, budget: list[int], latencies: list[float]) -> None:
    """One keep-alive HTTP/1.1 connection sending `request` until the shared budget is spent."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if b" 200 " not in status_line or b'"authorized":true' not in body:
                raise RuntimeError(f"check failed: {status_line!r} {body[:200]!r}")
    finally:
        writer.close()


async def _load_async(host: str, port: int, target: str, requests: int) -> tuple[float, list[float]]:
    request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n".encode()
    budget = [requests]
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(host, port, request, budget, latencies) for _ in range(CONCURRENCY)))
    return time.perf_counter() - started, latencies


def _load(base_url: str, params: dict[str, str], requests: int) -> tuple[float, list[float]]:
    """`requests` checks spread over CONCURRENCY keep-alive connections, driven from another process.

    The generator is a separate process so its CPU is not the server's, and it speaks HTTP/1.1 on
    raw asyncio streams: with httpx's async client in the bench process, the generator, not the
    service, was the bottleneck on a 2-core machine (measured with top: the bench process at ~95%
    of a core for ~100 requests/s, the server at ~35%). Returns (seconds, per-request latencies).
    """
    parts = urllib.parse.urlsplit(base_url)
    target = "/v1/grants/check?" + urllib.parse.urlencode(params)
    args = [sys.executable, "-m", "bench.bench_api", "load", str(parts.hostname), str(parts.port), target]
    done = subprocess.run(
        [*args, str(requests)],
        capture_output=True,
        check=False,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.decode()[-2000:]}")
    result = json.loads(done.stdout)
    return float(result["seconds"]), [float(x) for x in result["latencies"]]


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def run(requests: int = 1000, repeats: int = 3, warmup: int = 200) -> dict[str, Any]:
    """Measure the grant-check endpoint; returns `api_check_rps` and `api_check_p99_ms`."""
    node = start_anvil()
    server: ServiceProcess | None = None
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
            env = {
                "SOV_HOME": str(home),
                "SOV_RPC_URL": node.rpc_url,
                "SOV_API_TOKEN": secrets.token_hex(16),
                "PYTHONPATH": str(REPO),
            }
            server = ServiceProcess(env, free_port(), home / "server.log")
            base_url = server.url
            params = {"dataset_id": str(dataset_id), "grantee": grantee, "purpose": "ai-training"}
            _load(base_url, params, warmup)
            rates: list[float] = []
            p99s: list[float] = []
            for _ in range(repeats):
                seconds, latencies = _load(base_url, params, requests)
                rates.append(requests / seconds)
                p99s.append(_p99(latencies))
            return {
                "api_check_rps": round(statistics.median(rates), 1),
                "api_check_p99_ms": round(statistics.median(p99s) * 1000, 1),
                "api_check_clients": CONCURRENCY,
                "api_check_requests": requests,
            }
    finally:
        if server is not None:
            server.stop()
        node.stop()


def _main(argv: list[str]) -> None:
    if argv[:1] == ["load"]:
        host, port, target, requests = argv[1], int(argv[2]), argv[3], int(argv[4])
        seconds, latencies = asyncio.run(_load_async(host, port, target, requests))
        print(json.dumps({"seconds": seconds, "latencies": latencies}))
    else:
        print(run())


if __name__ == "__main__":
    _main(sys.argv[1:])
