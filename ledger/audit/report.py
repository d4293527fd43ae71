"""The audit report: the rebuilt lineage plus its checks, rendered for people and programs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ledger.audit.checks import CHECK_NAMES, Check
from ledger.audit.lineage import Lineage
from ledger.audit.privacy import DatasetBudget, privacy_findings
from ledger.purposes import describe_purpose

REPORT_SCHEMA = "sovereign-ledger/audit-report/v1"

# The table's palette (rich style names), one word per state wherever the table shows it.
PASSED = "green"
VERIFIED = "bold green"
FAILED = "bold red"
UNVERIFIED = "bold yellow"
NOTE = "dim"


def _hex(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


@dataclass
class AuditReport:
    """An audit of one target: `ok` only when every check passed."""

    lineage: Lineage
    checks: list[Check]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every check passed (the verdict is VERIFIED)."""
        return all(check.ok for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        """The checks that failed, in order."""
        return [check for check in self.checks if check.failed]

    @property
    def unverified(self) -> list[Check]:
        """The checks that could not be made (`not-verifiable`, `not-checked`), in order."""
        return [check for check in self.checks if check.unverified]

    @property
    def verdict(self) -> str:
        """`verified` (every check passed), `failed` (some check failed) or `not-verified` (none
        failed, but some could not be made: withheld updates, a node without historical state)."""
        if self.failures:
            return "failed"
        return "verified" if self.ok else "not-verified"

    @property
    def verdict_label(self) -> str:
        """`VERIFIED`, `FAILED` or `NOT VERIFIED`."""
        return self.verdict.upper().replace("-", " ")

    @property
    def exit_code(self) -> int:
        """What `sov audit` exits with: 0 only when VERIFIED; 1 when FAILED or NOT VERIFIED."""
        return 0 if self.ok else 1

    def summary(self) -> str:
        """One sentence: verified, how many checks failed, or how many could not be made."""
        t = self.lineage.target
        if self.ok:
            return (
                f"VERIFIED: {t.kind} {t.text} — job {t.job_id} "
                f"round {t.round}; all {len(self.checks)} checks passed "
                f"({len(self.lineage.rounds)} round(s), "
                f"{sum(len(r.participants) for r in self.lineage.rounds)} "
                "participation(s))"
            )
        if self.failures:
            return (
                f"FAILED: {t.kind} {t.text} — {len(self.failures)} of {len(self.checks)} checks failed; "
                f"first: {self.failures[0].message}"
            )
        return (
            f"NOT VERIFIED: {t.kind} {t.text} — no check failed, but {len(self.unverified)} of "
            f"{len(self.checks)} checks could not be made; first: {self.unverified[0].message}"
        )

    def by_name(self) -> dict[str, tuple[int, int]]:
        """(passed, failed) per check name (checks not made count in neither; see `counts`)."""
        return {name: (p, f) for name, (p, f, _) in self.counts().items()}

    def counts(self) -> dict[str, tuple[int, int, int]]:
        """(passed, failed, not made) per check name."""
        result = {name: (0, 0, 0) for name in CHECK_NAMES}
        for check in self.checks:
            passed, failed, unverified = result.get(check.name, (0, 0, 0))
            result[check.name] = (
                passed + int(check.ok),
                failed + int(check.failed),
                unverified + int(check.unverified),
            )
        return result

    def privacy_budgets(self) -> list[DatasetBudget]:
        """Each dataset's DP spending in this job against its grant's budget (`ledger.audit.privacy`)."""
        _findings, budgets = privacy_findings(self.lineage)
        return [budgets[d] for d in sorted(budgets)]

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        """The whole report as a JSON-ready dict (ids and digests as 0x-hex strings)."""
        lin = self.lineage
        job = lin.job
        rounds = []
        for facts in lin.rounds:
            c = facts.committed
            rounds.append(
                {
                    "round": c.round,
                    "block_number": c.block_number,
                    "block_hash": c.block_hash,
                    "tx_hash": c.tx_hash,
                    "timestamp": c.timestamp,
                    "parent_digest": _hex(c.parent_digest),
                    "model_digest": _hex(c.model_digest),
                    "model_cid": facts.model_cid,
                    "manifest_cid": c.manifest_cid,
                    "attestations_root": _hex(c.attestations_root),
                    "recomputed_model_digest": _hex(facts.aggregate_digest),
                    "metrics": dict(facts.manifest.metrics) if facts.manifest else {},
                    "participants": [
                        {
                            "dataset_id": f"0x{p.dataset_id:064x}",
                            "on_chain": p.on_chain,
                            "in_manifest": p.entry is not None,
                            "owner": p.owner,
                            "node": None if p.entry is None else p.entry.node,
                            "signer": p.recovered_signer,
                            "num_examples": None if p.entry is None else p.entry.num_examples,
                            "weight": None if p.entry is None else p.entry.weight,
                            "update_digest": None if p.entry is None else _hex(p.entry.update_digest),
                            "update_cid": None if p.entry is None else p.entry.update_cid,
                            "update_status": p.update_status,
                            "grant": _grant_json(p.grant),
                            "chain_status": None if p.chain_status is None else p.chain_status.name.lower(),
                            "privacy": None
                            if p.entry is None or p.entry.privacy is None
                            else p.entry.privacy.model_dump(mode="json"),
                        }
                        for p in facts.participants
                    ],
                }
            )
        datasets = [
            {
                "dataset_id": f"0x{d.dataset_id:064x}",
                "registrant": d.registrant,
                "owner": d.owner,
                "uri": d.uri,
                "parent_id": f"0x{d.parent_id:064x}",
                "registered_block": d.block_number,
                "retired_block": d.retired_block,
                "epoch": d.epoch,
            }
            for d in sorted(lin.datasets.values(), key=lambda d: d.dataset_id)
        ]
        return {
            "schema": REPORT_SCHEMA,
            "verified": self.ok,
            "verdict": self.verdict,
            "summary": self.summary(),
            "seconds": round(self.seconds, 4),
            "target": {
                "text": lin.target.text,
                "kind": lin.target.kind,
                "job_id": lin.target.job_id,
                "round": lin.target.round,
                "model_digest": _hex(lin.target.digest),
                "also_committed_in": [{"job_id": j, "round": r} for j, r in lin.target.also_in],
            },
            "chain": {
                "chain_id": lin.chain_id,
                "rpc_url": lin.rpc_url,
                "training_ledger": lin.training_ledger,
                "index_synced_block": lin.synced_block,
                "head_block": lin.head_block,
                "historical_state": lin.chain_history,
                "note": lin.chain_history_note,
            },
            "job": {
                "job_id": job.job_id,
                "coordinator": job.coordinator,
                "purpose": _hex(job.purpose),
                "purpose_name": describe_purpose(job.purpose),
                "datasets": [f"0x{d:064x}" for d in job.datasets],
                "initial_model_digest": _hex(job.initial_model_digest),
                "spec_digest": _hex(job.spec_digest),
                # Which preparation the hospitals used: the spec the digest names, when the CAR has it.
                "spec": lin.spec,
                "preprocessing": None if lin.spec is None else lin.spec.get("preprocessing"),
                "block_number": job.block_number,
                "tx_hash": job.tx_hash,
            },
            "rounds": rounds,
            "datasets": datasets,
            # Per dataset with DP rounds: epsilon spent (attested), recomputed, budget and left.
            "privacy": [b.to_json() for b in self.privacy_budgets()],
            "checks": [check.to_json() for check in self.checks],
            "counts": {
                name: {"passed": p, "failed": f, "not_made": u} for name, (p, f, u) in self.counts().items()
            },
        }

    # ------------------------------------------------------------------ people

    def table(self, *, all_checks: bool = False) -> Group:
        """A rich renderable: the lineage by round, the checks per kind and every failure."""
        lin = self.lineage
        rounds = Table(
            title=f"lineage of job {lin.job.job_id} (coordinator {lin.job.coordinator}, "
            f"{describe_purpose(lin.job.purpose)})"
        )
        for column in ("round", "block", "model digest", "model CID", "participants", "status"):
            rounds.add_column(column)
        failed_rounds = {c.round for c in self.failures}
        unchecked_rounds = {c.round for c in self.unverified}
        for facts in lin.rounds:
            c = facts.committed
            bad = c.round in failed_rounds
            unsure = c.round in unchecked_rounds
            rounds.add_row(
                str(c.round),
                str(c.block_number),
                "0x" + c.model_digest.hex()[:16] + "…",
                facts.model_cid or "?",
                str(len(facts.participants)),
                Text("FAIL", style=FAILED)
                if bad
                else Text("not verified", style=UNVERIFIED)
                if unsure
                else Text("ok", style=PASSED),
            )
        kinds = Table(title="checks")
        for column in ("check", "passed", "failed", "not made"):
            kinds.add_column(column)
        for name, (passed, failed, unverified) in self.counts().items():
            if passed or failed or unverified:
                kinds.add_row(
                    name,
                    str(passed),
                    Text(str(failed), style=FAILED) if failed else "0",
                    Text(str(unverified), style=UNVERIFIED) if unverified else "0",
                )
        parts: list[Any] = [rounds, kinds]
        budgets = self.privacy_budgets()
        if budgets:
            privacy = Table(title="privacy budget per dataset")
            for column in ("dataset", "DP rounds", "epsilon spent", "budget", "delta", "left"):
                privacy.add_column(column)
            for b in budgets:
                privacy.add_row(
                    f"0x{b.dataset_id:064x}"[:18] + "…",
                    str(b.private_rounds),
                    f"{b.epsilon_spent:.4f}",
                    "?" if b.epsilon_budget is None else f"{b.epsilon_budget:g}",
                    "?" if b.delta is None else f"{b.delta:g}",
                    "-" if b.epsilon_left is None else f"{b.epsilon_left:.4f}",
                )
            parts.append(privacy)
        shown = self.checks if all_checks else [c for c in self.checks if not c.ok]
        if shown:
            detail = Table(title="all checks" if all_checks else "failures and checks not made")
            for column in ("check", "round", "status", "message"):
                detail.add_column(column, overflow="fold")
            for check in shown:
                detail.add_row(
                    check.name,
                    "" if check.round is None else str(check.round),
                    Text(
                        str(check.status),
                        style=PASSED if check.ok else UNVERIFIED if check.unverified else FAILED,
                    ),
                    check.message,
                )
            parts.append(detail)
        if lin.chain_history_note:
            parts.append(Text(lin.chain_history_note, style=NOTE))
        parts.append(Text(_preparation(lin.spec), style=NOTE))
        style = VERIFIED if self.ok else FAILED if self.failures else UNVERIFIED
        parts.append(Text(self.summary(), style=style))
        return Group(*parts)

    def print(self, console: Console | None = None, *, all_checks: bool = False) -> None:
        """Prints the table on `console` (stdout by default)."""
        (console or Console()).print(self.table(all_checks=all_checks))

    # ------------------------------------------------------------------ other renderings

    def to_prov(self) -> dict[str, Any]:
        """W3C PROV-JSON document of the lineage (see `ledger.audit.prov`)."""
        from ledger.audit.prov import report_to_prov

        return report_to_prov(self)

    def to_graph(self) -> dict[str, Any]:
        """The lineage graph (datasets -> rounds -> model versions) with per-node status."""
        from ledger.audit.html import lineage_graph

        return lineage_graph(self)

    def to_html(self) -> str:
        """A self-contained HTML page with the lineage graph as inline SVG."""
        from ledger.audit.html import report_to_html

        return report_to_html(self)


def _preparation(spec: dict[str, Any] | None) -> str:
    """One line on the job's spec: how the hospitals prepared their data."""
    if spec is None:
        return "job spec: not in the content store (only its digest is on chain)"
    prep = spec.get("preprocessing")
    if not isinstance(prep, dict):
        return "job spec: found by its on-chain digest; no preprocessing (nodes hold prepared features)"
    columns = prep.get("columns", [])
    kinds = [c.get("kind") for c in columns if isinstance(c, dict)]
    return (
        f"job spec: found by its on-chain digest; preprocessing: label {prep.get('label')!r}, "
        f"{kinds.count('numeric')} numeric column(s) standardised with fixed constants and imputed, "
        f"{kinds.count('categorical')} one-hot encoded"
    )


def _grant_json(grant: Any) -> dict[str, Any] | None:
    if grant is None:
        return None
    issued = grant.issued
    return {
        "status": grant.status.name.lower(),
        "not_before": None if issued is None else issued.not_before,
        "expires_at": None if issued is None else issued.expires_at,
        "issued_block": None if issued is None else issued.block_number,
        "issued_tx": None if issued is None else issued.tx_hash,
        "revoked_block": None if grant.revocation is None else grant.revocation.block_number,
        "retired_block": grant.retired_block,
        "owner_changed_block": None if grant.owner_change is None else grant.owner_change.block_number,
    }
