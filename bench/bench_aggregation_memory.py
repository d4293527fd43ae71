"""Peak coordinator memory of one round's aggregation for 100 clients, beside the model's size.

The path timed is the coordinator's (`Coordinator._collect` then `aggregate_and_commit`):
each update, as it arrives, is put and pinned in the content store and offered to
`ledger.aggregation.StreamingFedAvg`, its bytes dropped unless they fit the hold budget;
once the round's set is final the updates are folded one at a time in ascending dataset
id (read back from the store into one buffer each, `LocalBlockstore.get_buffer`, as the
coordinator reads them) and the model file is serialised. Signatures and the chain
are left out: they hold no update bytes.

The round runs in a fresh child process that receives the 100 update files one by one
from disk (as bytes off a socket would be) into a real local content store; its peak
resident set size (VmHWM) minus its resident size just before the round is the peak the
round added. Its model digest must equal the one the parent computed with
`aggregate_updates` over the same files, so the figure is of a fold that gives the
committed bytes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CLIENTS = 100
PARAMS = 4_000_000  # 16 MiB of float32: large enough that interpreter noise is small beside it

CHILD = r"""
import hashlib, json, sys
from pathlib import Path
import torch
from ledger.aggregation import HOLD_BYTES, StreamingFedAvg
from ledger.store.local import LocalBlockstore

def rss_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)

files, store_dir = Path(sys.argv[1]), sys.argv[2]
counts = json.loads((files / "counts.json").read_text())
store = LocalBlockstore(store_dir)
ids = sorted(int(k) for k in counts)
before = rss_kib("VmRSS")
# Reset the high-water mark to now, so VmHWM measures the round alone.
Path("/proc/self/clear_refs").write_text("5")
fold = StreamingFedAvg(hold_bytes=HOLD_BYTES)
cids = {}
for dataset_id in ids[::-1]:  # arrival order: the reverse of the fold order
    data = (files / f"{dataset_id}.safetensors").read_bytes()
    cids[dataset_id] = store.put(data)
    store.pin(cids[dataset_id])
    fold.offer(dataset_id, data, counts[str(dataset_id)])
    del data
model = fold.result(ids, lambda key: store.get_buffer(cids[key]))  # as the coordinator reads
digest = hashlib.sha256(model).hexdigest()
del model
peak = rss_kib("VmHWM")
print(json.dumps({"before_kib": before, "peak_kib": peak, "digest": digest}))
"""


def run(clients: int = CLIENTS, params: int = PARAMS) -> dict[str, Any]:
    """Measure and return the `aggregation_peak_*` keys of `bench/results.json`."""
    import hashlib

    import torch

    from ledger.aggregation import aggregate_updates
    from ledger.modelfile import model_to_bytes

    with tempfile.TemporaryDirectory(prefix="sov-bench-aggmem-") as tmp:
        files = Path(tmp) / "updates"
        files.mkdir()
        generator = torch.Generator().manual_seed(0)
        counts = {}
        model_bytes = 0
        for dataset_id in range(1, clients + 1):
            state = {
                "body.weight": torch.randn(params - 1000, generator=generator),
                "head.bias": torch.randn(1000, generator=generator),
            }
            data = model_to_bytes(state)
            model_bytes = len(data)
            (files / f"{dataset_id}.safetensors").write_bytes(data)
            counts[str(dataset_id)] = 50 + 7 * dataset_id
        (files / "counts.json").write_text(json.dumps(counts))
        # The reference digest from the audit's function (all updates in memory at once).
        ids = sorted(int(k) for k in counts)
        expected = hashlib.sha256(
            aggregate_updates(
                [(files / f"{i}.safetensors").read_bytes() for i in ids], [counts[str(i)] for i in ids]
            )
        ).hexdigest()
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(files), str(Path(tmp) / "store")],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
        )
        child = json.loads(out.stdout.strip().splitlines()[-1])
        # The same round with glibc's mmap threshold held at its default (it otherwise rises
        # after the first large free and freed update buffers stay in the heap): what the
        # fold itself needs, beside what the allocator keeps.
        fixed = subprocess.run(
            [sys.executable, "-c", CHILD, str(files), str(Path(tmp) / "store-fixed")],
            check=True,
            capture_output=True,
            text=True,
            env={**env, "MALLOC_MMAP_THRESHOLD_": "131072"},
            cwd=root,
        )
        child_fixed = json.loads(fixed.stdout.strip().splitlines()[-1])
    if child["digest"] != expected or child_fixed["digest"] != expected:
        raise AssertionError(f"streamed FedAvg digest {child['digest']} != aggregate_updates {expected}")
    model_mib = model_bytes / 2**20
    peak_mib = (child["peak_kib"] - child["before_kib"]) / 1024
    return {
        "aggregation_model_mib": round(model_mib, 2),
        "aggregation_peak_mib_100_clients": round(peak_mib, 2),
        "aggregation_peak_vs_model": round(peak_mib / model_mib, 2),
        "aggregation_peak_vs_model_fixed_mmap_threshold": round(
            (child_fixed["peak_kib"] - child_fixed["before_kib"]) / 1024 / model_mib, 2
        ),
        "aggregation_peak_clients": clients,
        "aggregation_streamed_identical": True,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
