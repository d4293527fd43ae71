"""Event index first sync vs events (10k and 100k), for `bench_growth`.

One anvil (block gas limit 1e9, so a transaction can carry 500 datasets) gets datasets that
a `BulkDatasetOwner` contract registers and grants, three events each (the deed's mint
Transfer, DatasetRegistered, GrantIssued), 1,500 events per block; gas is given, not
estimated. At each size a fresh `EventIndex` syncs the whole chain from the deployment block
through the same `LedgerClient` the CLI uses; the figure is that first sync's wall time.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from ledger.chain.abi import load_artifact
from ledger.chain.client import LedgerClient
from ledger.chain.transport import Transport, make_provider
from ledger.deploy import deploy_contracts
from ledger.devnet import start_anvil
from ledger.index import EventIndex
from ledger.keys import dev_account
from ledger.purposes import purpose_id

EVENT_COUNTS = (10_000, 100_000)
EVENTS_PER_DATASET = 3
DATASETS_PER_TX = 500
GAS_PER_DATASET = 200_000  # ~60k used; given so nothing is estimated
ANVIL_ARGS = ("--gas-limit", "1000000000")


def run(event_counts: tuple[int, ...] = EVENT_COUNTS) -> dict[str, Any]:
    """Seconds of a first index sync by event count, and the seconds per 10k events at the largest."""
    node = start_anvil(extra_args=ANVIL_ARGS)
    try:
        deployment = deploy_contracts(Transport(make_provider(node.rpc_url), node.rpc_url), dev_account(0))
        lab = LedgerClient.from_url(node.rpc_url, deployment, dev_account(0))
        sender = lab._sender
        assert sender is not None
        artifact = load_artifact("BulkDatasetOwner")
        constructor = encode(
            ["address", "address"], [deployment.address("DatasetRegistry"), deployment.address("UsageGrants")]
        ).hex()
        bulk = sender.transact(None, artifact.bytecode + constructor, "deploy bulk owner")["contractAddress"]
        selector = keccak(text="registerAndGrant(bytes32,uint256,uint256,address,bytes32,uint64)")[:4]
        seed = hashlib.sha256(b"bench/index-growth").digest()
        expires = lab.latest_block().timestamp + 30 * 86400
        registered = 0
        seconds: dict[str, float] = {}
        setup = 0.0
        with tempfile.TemporaryDirectory(prefix="sov-bench-index-") as tmp:
            for target in event_counts:
                clock = time.perf_counter()
                wanted = -(-target // EVENTS_PER_DATASET)
                while registered < wanted:
                    count = min(DATASETS_PER_TX, wanted - registered)
                    call = selector + encode(
                        ["bytes32", "uint256", "uint256", "address", "bytes32", "uint64"],
                        [seed, registered, count, lab.address, purpose_id("ai-training"), expires],
                    )
                    sender.transact(
                        bulk, "0x" + call.hex(), "register and grant", gas=100_000 + count * GAS_PER_DATASET
                    )
                    registered += count
                setup += time.perf_counter() - clock
                with EventIndex(Path(tmp) / f"index-{target}.sqlite", lab) as index:
                    clock = time.perf_counter()
                    events = index.sync()
                    seconds[str(events)] = round(time.perf_counter() - clock, 3)
        largest = max(seconds, key=int)
        return {
            "growth_index_sync_seconds_by_events": seconds,
            "growth_index_sync_seconds_per_10k_events": round(seconds[largest] / int(largest) * 10_000, 3),
            "growth_index_setup_seconds": round(setup, 1),
        }
    finally:
        node.stop()


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
