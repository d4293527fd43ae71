"""The audit: verify a model's provenance from the chain and the content store alone.

    report = audit("bafk...", client=client, index=index, store=store)
    report.ok, report.checks, report.to_json(), report.to_prov(), report.to_html()
    impact(index=index, client=client, dataset_id=ds)

The auditor needs nothing from the coordinator: an RPC URL, the deployment manifest
(contract addresses) and the content store (or a CAR export of it, with the rounds'
manifests, models and the nodes' updates). Every fact comes from the chain (logs and views);
the local event index only suggests which job and round a model belongs to, and is checked.

Verdicts: VERIFIED (exit 0) when every check passed; FAILED (exit 1) when one failed;
NOT VERIFIED (exit 1) when none failed but some could not be made: an update the lab did
not hand over ("not verifiable"), or a node without state at the rounds' blocks ("not
checked: node has no state at block N"). See `ledger.audit.checks`.
"""

from __future__ import annotations

import time

from ledger.audit.chainlog import ChainLogs
from ledger.audit.checks import CHECK_NAMES, Check, CheckStatus, evaluate
from ledger.audit.errors import AuditError, AuditTargetError, ImpactQueryError
from ledger.audit.impact import DependentVersion, ImpactReport, impact
from ledger.audit.lineage import AuditTarget, Lineage, rebuild_lineage, resolve_target
from ledger.audit.report import AuditReport
from ledger.chain.client import LedgerClient
from ledger.index import EventIndex
from ledger.store import ContentStore


def audit(
    target: str | int,
    *,
    client: LedgerClient,
    index: EventIndex,
    store: ContentStore,
    sync: bool = True,
    chain_checks: bool = True,
) -> AuditReport:
    """Rebuilds and verifies the lineage of `target` (model CID, model file path, model digest or job id).

    `sync` brings the index up to the chain head first (it is only used to find which job
    and round a model belongs to, and compared with the chain); `chain_checks` asks the
    contracts at each round's block. Without it, or when the node keeps no state there, the
    checks that need those reads are reported "not checked" and the verdict is NOT VERIFIED.
    """
    started = time.perf_counter()
    if sync:
        index.sync()
    chain = ChainLogs(client)
    resolved = resolve_target(str(target), index, store, chain)
    lineage = rebuild_lineage(resolved, client, index, store, chain_checks=chain_checks, chain=chain)
    report = AuditReport(lineage, evaluate(lineage))
    report.seconds = time.perf_counter() - started
    return report


def audit_model(cid: str, client: LedgerClient, index: EventIndex, store: ContentStore) -> AuditReport:
    """`audit` of a model CID (the API's entry point)."""
    return audit(cid, client=client, index=index, store=store)


__all__ = [
    "CHECK_NAMES",
    "AuditError",
    "AuditReport",
    "AuditTarget",
    "AuditTargetError",
    "ChainLogs",
    "Check",
    "CheckStatus",
    "DependentVersion",
    "ImpactQueryError",
    "ImpactReport",
    "Lineage",
    "audit",
    "audit_model",
    "evaluate",
    "impact",
    "rebuild_lineage",
    "resolve_target",
]
