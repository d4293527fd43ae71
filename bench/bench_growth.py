"""Growth curves: ledger ms per round vs nodes, audit seconds vs rounds, index sync vs events.

- Ledger cost per round of the digits job (5 rounds, the `bench_ledger_overhead` loop: the
  same FedAvg loop with the ledger on and off, same machine, same run) with 1, 10 and 100
  in-process nodes.
- The audit (chain logs, content store, FedAvg recomputed, every signature) of a job of
  20, 200 and 2,000 rounds with 2 nodes and 16 KiB model files (`bench_audit`'s job
  builder), and the event index's first sync of the same chain, with its event count
  (`growth_index_sync_seconds_by_events_audit_jobs`: one block of events per round).
- The event index's first sync of 10k and 100k registry and grant events
  (`bench.index_growth`: a bulk-registering contract, 1,500 events a block).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench import bench_audit, bench_ledger_overhead, index_growth
from fl_node.runner import TrainConfig
from ledger.audit import audit
from ledger.chain.client import LedgerClient
from ledger.chain.transport import Transport, make_provider
from ledger.deploy import deploy_contracts
from ledger.devnet import start_anvil
from ledger.index import EventIndex
from ledger.keys import dev_account
from ledger.store import LocalBlockstore

NODE_COUNTS = (1, 10, 100)
ROUND_COUNTS = (20, 200, 2000)
GROWTH_ROUNDS = 5
AUDIT_NODES = 2
# The audit reads the contracts at every round's block (3 eth_calls per participant). By
# default anvil keeps only its newest states in memory (RSS ~75 MB at 2,000 rounds) and serves
# older blocks from its persisted-state cache, at a cost per historical eth_call that grows with
# the chain: ~0.4 ms at block 30, ~2.5 ms near block 2,000, against ~0.07 ms at any block with
# every state in memory (RSS ~540 MB). That made the audit look quadratic in rounds (20.5 s at
# 2,000, 12 s of it waiting on anvil); its own work is linear. Keeping every state of these short
# chains in memory measures the audit, not anvil's cache. A cap below the chain's length would
# make the audit report "no state" and this bench fail, not pass quietly.
AUDIT_ANVIL_ARGS = ("--prune-history", "10000")


def _ledger_ms_per_round(nodes: int, tmp: Path) -> float:
    config = TrainConfig(data="digits", nodes=nodes, rounds=GROWTH_ROUNDS, partition="dominant", seed=0)
    with_ledger, ledger_bytes, _ = bench_ledger_overhead._ledger_run(tmp / f"nodes-{nodes}", config)
    without, offline_bytes = bench_ledger_overhead._offline_run(config)
    if ledger_bytes != offline_bytes:
        raise AssertionError(f"{nodes} nodes: the ledger run's model differs from the ledger-free run's")
    return (with_ledger - without) / GROWTH_ROUNDS * 1000


def _audit(rounds: int, tmp: Path) -> tuple[float, float, int]:
    saved = bench_audit.ROUNDS, bench_audit.NODES
    bench_audit.ROUNDS, bench_audit.NODES = rounds, AUDIT_NODES
    try:
        with start_anvil(extra_args=AUDIT_ANVIL_ARGS) as node:
            transport = Transport(make_provider(node.rpc_url), node.rpc_url)
            deployment = deploy_contracts(transport, dev_account(0))
            client = LedgerClient.from_url(node.rpc_url, deployment, dev_account(0))
            store = LocalBlockstore(tmp / f"audit-{rounds}")
            job_id = bench_audit.build_job(client, store)
            index = EventIndex(tmp / f"index-{rounds}.sqlite", client)
            started = time.perf_counter()
            index.sync()
            sync_seconds = time.perf_counter() - started
            events = len(client.get_logs(client.deployment.deployed_block))
            started = time.perf_counter()
            report = audit(str(job_id), client=client, index=index, store=store)
            seconds = time.perf_counter() - started
            index.close()
            if not report.ok:
                raise RuntimeError(f"{rounds}-round bench job does not verify: {report.summary()}")
            return seconds, sync_seconds, events
    finally:
        bench_audit.ROUNDS, bench_audit.NODES = saved


def run() -> dict[str, Any]:
    """Measure and return the `growth_*` keys of `bench/results.json`."""
    with tempfile.TemporaryDirectory(prefix="sov-bench-growth-") as tmp:
        ledger = {str(n): round(_ledger_ms_per_round(n, Path(tmp)), 1) for n in NODE_COUNTS}
        audits, syncs = {}, {}
        for rounds in ROUND_COUNTS:
            seconds, sync_seconds, events = _audit(rounds, Path(tmp))
            audits[str(rounds)] = round(seconds, 3)
            syncs[str(events)] = round(sync_seconds, 3)
    return {
        "growth_ledger_ms_per_round_by_nodes": ledger,
        "growth_audit_seconds_by_rounds": audits,
        "growth_index_sync_seconds_by_events_audit_jobs": syncs,
        **index_growth.run(),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
