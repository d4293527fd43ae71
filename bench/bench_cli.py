"""Start-up time of the `sov` command line, against a bare Python start-up in the same run.

`run()` times, as separate processes (the way a person runs them), `sov --help`,
`sov grant check --help` and `sov dataset list --help`: the cost of starting `sov` and
reaching a command (parsing, loading the command's module) before it does any work. The
baseline is `python -c pass` with the same interpreter. `cli_start_seconds` is the slowest
of the three medians; the target is <= 0.6 s on the 2-core machine. For context it also times
the same two commands doing their work against a fresh anvil with the contracts deployed
(`cli_run_seconds`: that adds the chain client, web3 and the RPC round trips). Each figure is
the median of `repeats` runs after a warm-up run.

    python bench/bench_cli.py          # prints the JSON
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as a script from anywhere
    sys.path.insert(0, str(ROOT))

from ledger.chain.client import LedgerClient  # noqa: E402
from ledger.chain.transport import Transport, make_provider  # noqa: E402
from ledger.deploy import deploy_contracts, save_deployment  # noqa: E402
from ledger.devnet import start_anvil  # noqa: E402
from ledger.keys import dev_account  # noqa: E402
from ledger.purposes import PURPOSES  # noqa: E402
from ledger.settings import Settings  # noqa: E402

START_COMMANDS: dict[str, list[str]] = {
    "help": ["--help"],
    "grant_check": ["grant", "check", "--help"],
    "dataset_list": ["dataset", "list", "--help"],
}
TARGET_SECONDS = 0.6


def sov_command() -> list[str]:
    """The installed `sov` script next to this interpreter, else `python -m api.cli.main`."""
    script = Path(sys.executable).with_name("sov")
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "api.cli.main"]


def _time(argv: list[str], env: dict[str, str], repeats: int, expect: int = 0) -> float:
    """Median wall time of `argv` as a fresh process (one untimed warm-up first)."""
    samples: list[float] = []
    for attempt in range(repeats + 1):
        started = time.perf_counter()
        result = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, check=False, timeout=120)
        elapsed = time.perf_counter() - started
        if result.returncode != expect:
            tail = result.stderr.decode(errors="replace")[-500:]
            raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}, expected {expect}: {tail}")
        if attempt:
            samples.append(elapsed)
    return statistics.median(samples)


def run(repeats: int = 7) -> dict[str, Any]:
    """Median start-up seconds of the three commands, the Python baseline, and the working runs."""
    sov = sov_command()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "SOV_HOME": str(home), "PYTHONPATH": str(ROOT)}
        env.pop("SOV_RPC_URL", None)
        baseline = _time([sys.executable, "-c", "pass"], env, repeats)
        start = {name: _time([*sov, *args], env, repeats) for name, args in START_COMMANDS.items()}

        node = start_anvil()
        try:
            transport = Transport(make_provider(node.rpc_url), node.rpc_url)
            deployment = deploy_contracts(transport, dev_account(0), settings=Settings(home=home))
            save_deployment(Settings(home=home), deployment)
            owner = LedgerClient.from_url(node.rpc_url, deployment, dev_account(1))
            dataset_id, _ = owner.register_dataset(hashlib.sha256(b"bench-cli").digest())
            now = owner.latest_block().timestamp
            lab = dev_account(2).address
            owner.issue_grant(dataset_id, lab, PURPOSES["ai-training"], now, now + 10**6)
            env["SOV_RPC_URL"] = node.rpc_url
            working = {
                "grant_check": _time([*sov, "grant", "check", str(dataset_id), lab], env, repeats),
                "dataset_list": _time([*sov, "dataset", "list", "--json"], env, repeats),
            }
        finally:
            node.stop()
    slowest = max(start.values())
    return {
        "cli_start_seconds": round(slowest, 3),
        "cli_start_seconds_by_command": {name: round(value, 3) for name, value in start.items()},
        "cli_python_start_seconds": round(baseline, 3),
        "cli_start_vs_python_ratio": round(slowest / baseline, 2),
        "cli_start_target_met": slowest <= TARGET_SECONDS,
        "cli_run_seconds": {name: round(value, 3) for name, value in working.items()},
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
