"""CID throughput of the local content store, against hashlib's sha256 in the same run.

`run()` hashes 100 MiB of random bytes held in memory: plain `hashlib.sha256` (the
baseline: a CID cannot be cheaper than hashing every byte once) and `cid_of` (the full
Kubo-identical UnixFS DAG: leaves, internal nodes, CID), back to back in each repeat;
the ratio is the median of the per-repeat ratios. It also times `cid_of_file`
on the same bytes from a file in the page cache. When an IPFS node is available (the
test js-ipfs daemon is started if tests/ipfs_node is installed, or pass
`ipfs_api_url`), it times the node's `/api/v0/add` of the same bytes with the
parameters KuboStore uses. Each figure is the median of `repeats` runs after a warm-up.

    python bench/bench_cid.py          # prints the JSON
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as a script from anywhere
    sys.path.insert(0, str(ROOT))

from ledger.store import cid_of, cid_of_file  # noqa: E402
from ledger.store.kubo import ADD_PARAMS  # noqa: E402

MIB = 1024 * 1024


def _median_seconds(action: Callable[[], object], repeats: int) -> float:
    action()  # warm-up: page cache, allocator, CPU frequency
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _paired_seconds(
    baseline: Callable[[], object], candidate: Callable[[], object], repeats: int
) -> tuple[float, float, float]:
    """Median seconds of each, and the median of per-pair ratios baseline/candidate.

    The two run back to back in each repeat, so load from other processes on a shared
    machine hits both alike and the ratio stays meaningful when the absolute speeds drift.
    """
    baseline()
    candidate()
    base_samples, cand_samples, ratios = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        baseline()
        middle = time.perf_counter()
        candidate()
        end = time.perf_counter()
        base_samples.append(middle - start)
        cand_samples.append(end - middle)
        ratios.append((middle - start) / (end - middle))
    return statistics.median(base_samples), statistics.median(cand_samples), statistics.median(ratios)


def _start_test_daemon(tmp: Path) -> tuple[str, Callable[[], None]] | None:
    daemon_path = ROOT / "tests" / "ipfs_node" / "daemon.py"
    if not (ROOT / "tests" / "ipfs_node" / "node_modules" / "ipfs").is_dir():
        return None
    spec = importlib.util.spec_from_file_location("ipfs_node_daemon", daemon_path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    api_url, stop = module.start_ipfs_daemon(tmp)
    return str(api_url), stop


def _ipfs_add_seconds(api_url: str, data: bytes, expected_cid: str, repeats: int) -> float:
    with httpx.Client(base_url=f"{api_url}/api/v0/", timeout=300) as client:

        def add() -> None:
            response = client.post("add", params=ADD_PARAMS, files={"file": ("bench.bin", data)})
            response.raise_for_status()
            reported = json.loads(response.text.splitlines()[-1])["Hash"]
            if reported != expected_cid:  # a benchmark of a different DAG would mean nothing
                raise RuntimeError(f"node reported {reported}, expected {expected_cid}")

        return _median_seconds(add, repeats)


def run(
    size_mib: int = 100,
    repeats: int = 5,
    *,
    ipfs_api_url: str | None = None,
    start_ipfs: bool = True,
    ipfs_repeats: int = 3,
) -> dict[str, Any]:
    """Measure and return the CID benchmark figures (MiB/s and ratios, medians)."""
    size = size_mib * MIB
    data = random.Random(2024).randbytes(size)

    sha256_s, cid_s, cid_ratio = _paired_seconds(
        lambda: hashlib.sha256(data).digest(), lambda: cid_of(data), repeats
    )
    expected_cid = cid_of(data)
    results: dict[str, Any] = {
        "cid_bench_mib": size_mib,
        "sha256_mib_per_s": round(size_mib / sha256_s, 1),
        "cid_mib_per_s": round(size_mib / cid_s, 1),
        "cid_vs_sha256_ratio": round(cid_ratio, 3),
    }
    with tempfile.TemporaryDirectory(prefix="bench-cid-") as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "bench.bin"
        path.write_bytes(data)
        _, file_s, file_ratio = _paired_seconds(
            lambda: hashlib.sha256(data).digest(), lambda: cid_of_file(path), repeats
        )
        results["cid_file_mib_per_s"] = round(size_mib / file_s, 1)
        results["cid_file_vs_sha256_ratio"] = round(file_ratio, 3)
        path.unlink()

        stop: Callable[[], None] | None = None
        if ipfs_api_url is None and start_ipfs:
            started = _start_test_daemon(tmp)
            if started is not None:
                ipfs_api_url, stop = started
        try:
            if ipfs_api_url is not None:
                add_s = _ipfs_add_seconds(ipfs_api_url, data, expected_cid, ipfs_repeats)
                results["ipfs_add_mib_per_s"] = round(size_mib / add_s, 1)
                results["cid_vs_ipfs_add_ratio"] = round(add_s / cid_s, 2)
                results["ipfs_node"] = "js-ipfs test daemon" if stop is not None else ipfs_api_url
        finally:
            if stop is not None:
                stop()
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
