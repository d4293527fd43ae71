"""`make bench`: run every benchmark, print one table, write bench/results.json.

Each benchmark starts its own fresh servers, warms up, repeats and reports medians.
A benchmark that fails is reported as such (its keys are missing and `failed` names it);
the run still writes what the others measured, and exits non-zero.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCHMARKS = [
    "bench.bench_cid",
    "bench.bench_chain",
    "bench.bench_gas",
    "bench.bench_aggregation",
    "bench.bench_accuracy",
    "bench.bench_ledger_overhead",
    "bench.bench_audit",
    "bench.bench_api",
]

RESULTS = Path(__file__).with_name("results.json")


def main(argv: list[str]) -> int:
    """Runs the benchmarks named in argv (default: all) and writes the results file."""
    selected = [name for name in BENCHMARKS if not argv or name.rsplit(".", 1)[-1] in argv]
    console = Console()
    results: dict[str, Any] = {}
    failed: list[str] = []
    seconds: dict[str, float] = {}
    for name in selected:
        console.print(f"[bold]running {name}[/]")
        started = time.perf_counter()
        try:
            results.update(importlib.import_module(name).run())
        except Exception:
            failed.append(name)
            console.print(f"[red]{name} failed[/]\n{traceback.format_exc()}")
        seconds[name] = round(time.perf_counter() - started, 1)
    document = {
        **results,
        "failed": failed,
        "bench_seconds": seconds,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cores": _cores(),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    table = Table(title=f"benchmarks -> {RESULTS}")
    table.add_column("key")
    table.add_column("value", justify="right")
    for key, value in sorted(results.items()):
        table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
    console.print(table)
    return 1 if failed else 0


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
