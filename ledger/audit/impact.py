"""Reverse lineage: which model versions depend on a dataset, or on one grant.

A round that used the dataset depends on it directly; every later round of the same job
depends on it through its base model (round k+1 builds on round k). For each direct use
the grant is re-checked at that round's position (index history, and the contract at that
block when the node keeps state): a direct use under a grant that had been revoked,
expired, superseded by a deed transfer, or of a retired dataset is a violation. Later
versions committed after the grant ended are listed as such (they still carry what was
learnt before), which is what an owner asks after a revocation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address

from ledger.audit.chainstate import HistoricalReader, StatusQuery, probe_history
from ledger.audit.errors import ImpactQueryError
from ledger.audit.lineage import grant_status_name
from ledger.chain.client import LedgerClient
from ledger.index import EventIndex, GrantStatus, IndexedJob, NotIndexedError
from ledger.purposes import describe_purpose, purpose_id
from ledger.store import ContentStore


@dataclass(frozen=True, slots=True)
class DependentVersion:
    """A model version (job, round) that depends on the dataset or grant."""

    job_id: int
    round: int
    model_digest: bytes
    manifest_cid: str
    model_cid: str | None
    block_number: int
    timestamp: int
    direct: bool
    grant_status: str | None  # for direct uses: the grant's status at that round ("authorized" when valid)
    chain_status: str | None
    after_end: tuple[str, ...]  # why this version came after the grant / consent ended
    violation: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "job_id": self.job_id,
            "round": self.round,
            "model_digest": "0x" + self.model_digest.hex(),
            "model_cid": self.model_cid,
            "manifest_cid": self.manifest_cid,
            "block_number": self.block_number,
            "timestamp": self.timestamp,
            "direct": self.direct,
            "grant_status": self.grant_status,
            "chain_status": self.chain_status,
            "committed_after_end": list(self.after_end),
            "violation": self.violation,
        }


@dataclass
class ImpactReport:
    """Every dependent model version; `ok` when no direct use happened without a valid grant."""

    dataset_id: int
    grantee: str | None
    purpose: bytes | None
    versions: list[DependentVersion] = field(default_factory=list)
    ends: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def violations(self) -> list[DependentVersion]:
        """Direct uses at a round where the grant did not authorise (should be none)."""
        return [v for v in self.versions if v.violation is not None]

    @property
    def after_end(self) -> list[DependentVersion]:
        """Versions committed after the grant or consent ended (direct or through earlier rounds)."""
        return [v for v in self.versions if v.after_end]

    @property
    def ok(self) -> bool:
        """No direct use without a valid grant."""
        return not self.violations

    @property
    def exit_code(self) -> int:
        """0 when `ok`, 1 otherwise."""
        return 0 if self.ok else 1

    def summary(self) -> str:
        """One sentence for people."""
        subject = self.subject()
        direct = sum(1 for v in self.versions if v.direct)
        text = (
            f"{len(self.versions)} model version(s) depend on {subject} ({direct} direct use(s)); "
            f"{len(self.after_end)} committed after it ended; "
        )
        if self.ok:
            return text + "every direct use was under a valid grant (checked at each round's block)"
        return text + f"{len(self.violations)} direct use(s) WITHOUT a valid grant"

    def subject(self) -> str:
        """`dataset 0x…` or `grant (dataset, grantee, purpose)`."""
        ds = f"0x{self.dataset_id:064x}"
        if self.grantee is None or self.purpose is None:
            return f"dataset {ds}"
        return f"the grant of dataset {ds} to {self.grantee} for {describe_purpose(self.purpose)}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "schema": "sovereign-ledger/impact-report/v1",
            "ok": self.ok,
            "summary": self.summary(),
            "dataset_id": f"0x{self.dataset_id:064x}",
            "grantee": self.grantee,
            "purpose": None if self.purpose is None else "0x" + self.purpose.hex(),
            "ended": list(self.ends),
            "note": self.note,
            "versions": [v.to_json() for v in self.versions],
            "violations": [v.to_json() for v in self.violations],
            "committed_after_end": [v.to_json() for v in self.after_end],
        }


def _grant_key(grant: Sequence[Any]) -> tuple[int, str, bytes]:
    if len(grant) != 3:
        raise ImpactQueryError(f"a grant is (dataset_id, grantee, purpose); got {len(grant)} value(s)")
    dataset, grantee, purpose = grant
    dataset_id = int(dataset, 16) if isinstance(dataset, str) else int(dataset)
    try:
        who = to_checksum_address(grantee)
    except (TypeError, ValueError):
        raise ImpactQueryError(f"grantee {grantee!r} is not an address") from None
    return dataset_id, who, purpose_id(purpose)


def impact(
    *,
    index: EventIndex,
    client: LedgerClient | None = None,
    dataset_id: int | str | None = None,
    grant: Sequence[Any] | None = None,
    store: ContentStore | None = None,
    sync: bool = True,
) -> ImpactReport:
    """Every model version depending on `dataset_id` (or on `grant` = (dataset, grantee, purpose)).

    With `client`, each direct use is also checked against the contract at its block; with
    `store`, each version's model CID is read from its round manifest.
    """
    if sync:
        index.sync()
    grantee: str | None = None
    purpose: bytes | None = None
    if grant is not None:
        dataset_key, grantee, purpose = _grant_key(grant)
        if dataset_id is not None and _as_int(dataset_id) != dataset_key:
            raise ImpactQueryError(
                f"dataset_id 0x{_as_int(dataset_id):064x} and the grant's dataset 0x{dataset_key:064x} differ"
            )
        dataset_id = dataset_key
    if dataset_id is None:
        raise ImpactQueryError("impact needs a dataset id or a grant (dataset, grantee, purpose)")
    ds = _as_int(dataset_id)
    record = index.dataset(ds)  # NotIndexedError names the synced block
    report = ImpactReport(ds, grantee, purpose)
    if record.retired_block is not None:
        report.ends.append(f"dataset retired at block {record.retired_block}")
    grants = {(g.grantee, g.purpose): g for g in index.grants(dataset_id=ds)}
    if grantee is not None and purpose is not None:
        g = grants.get((grantee, purpose))
        if g is None:
            report.note = "no such grant was ever issued"
        else:
            if g.revoked_block is not None:
                report.ends.append(f"revoked at block {g.revoked_block}")
            if g.owner_changed_block is not None:
                report.ends.append(f"deed transferred at block {g.owner_changed_block}")
            report.ends.append(f"window ends at time {g.expires_at}")

    jobs: dict[int, IndexedJob] = {}
    first_use: dict[int, int] = {}
    uses = index.rounds_using_dataset(ds)
    # (job, round) pairs that used the dataset: a large round's RoundCommitted lists no one, so
    # membership comes from the index's participant rows (its batches), not from the event.
    used_in = {(used.job_id, used.round) for used in uses}
    for used in uses:
        job = jobs.get(used.job_id) or index.job(used.job_id)
        jobs[job.job_id] = job
        if grantee is not None and (job.coordinator != grantee or job.purpose != purpose):
            continue
        first_use[job.job_id] = min(first_use.get(job.job_id, used.round), used.round)

    versions = []
    for job_id in sorted(first_use):
        job = jobs[job_id]
        for committed in index.rounds(job_id):
            if committed.round < first_use[job_id]:
                continue
            direct = (job_id, committed.round) in used_in
            state = None
            # Where the contract checked the grant: the commit, or the batch that added the dataset.
            at = (committed.block_number, committed.log_index, committed.timestamp)
            if direct:
                at = index.batch_position(job_id, committed.round, ds) or at
                state = index.grant_state_at(ds, job.coordinator, job.purpose, at[0], at[1], timestamp=at[2])
            versions.append((job, committed, direct, state, at))

    chain: dict[StatusQuery, Any] = {}
    if client is not None and versions:
        first_block = min(at[0] for _, _, _, _, at in versions)
        has_history, why = probe_history(client, first_block)
        if has_history:
            reader = HistoricalReader(client)
            chain = reader.authorization_statuses(
                StatusQuery(ds, job.coordinator, job.purpose, at[0])
                for job, _, direct, _, at in versions
                if direct
            )
            report.note = (
                report.note + "; " if report.note else ""
            ) + "direct uses re-checked on the contract at each block"
        else:
            report.note = (
                report.note + "; " if report.note else ""
            ) + f"node has no state at block {first_block} ({why})"

    for job, committed, direct, state, at in versions:
        after = _after_end(
            record.retired_block,
            grants.get((job.coordinator, job.purpose)),
            committed.block_number,
            committed.timestamp,
        )
        chain_status = chain.get(StatusQuery(ds, job.coordinator, job.purpose, at[0])) if direct else None
        violation = None
        if state is not None and state.status is not GrantStatus.AUTHORIZED:
            violation = (
                f"job {job.job_id} round {committed.round} used "
                f"the dataset at block {at[0]} "
                f"without a valid grant ({grant_status_name(state.status)})"
            )
        elif chain_status is not None and int(chain_status) != int(GrantStatus.AUTHORIZED):
            end = index.grant_state_at(ds, job.coordinator, job.purpose, at[0], None, timestamp=at[2])
            if int(end.status) != int(chain_status):
                violation = (
                    f"job {job.job_id} round {committed.round}: the contract says "
                    f"{grant_status_name(chain_status)} at block {at[0]}"
                )
        report.versions.append(
            DependentVersion(
                job_id=job.job_id,
                round=committed.round,
                model_digest=committed.model_digest,
                manifest_cid=committed.manifest_cid,
                model_cid=_model_cid(store, committed.manifest_cid),
                block_number=committed.block_number,
                timestamp=committed.timestamp,
                direct=direct,
                grant_status=None if state is None else state.status.name.lower(),
                chain_status=None if chain_status is None else chain_status.name.lower(),
                after_end=after,
                violation=violation,
            )
        )
    return report


def _as_int(value: int | str) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _after_end(retired_block: int | None, grant: Any, block: int, timestamp: int) -> tuple[str, ...]:
    reasons = []
    if retired_block is not None and block > retired_block:
        reasons.append(f"after the dataset's retirement at block {retired_block}")
    if grant is not None:
        if grant.revoked_block is not None and block > grant.revoked_block:
            reasons.append(f"after the grant's revocation at block {grant.revoked_block}")
        if grant.owner_changed_block is not None and block > grant.owner_changed_block:
            reasons.append(f"after the deed transfer at block {grant.owner_changed_block}")
        if timestamp > grant.expires_at:
            reasons.append(f"after the grant expired at time {grant.expires_at}")
    return tuple(reasons)


def _model_cid(store: ContentStore | None, manifest_cid: str) -> str | None:
    if store is None:
        return None
    from ledger.errors import LedgerError
    from ledger.provenance import RoundManifest

    try:
        return RoundManifest.from_bytes(store.get(manifest_cid)).model_cid
    except LedgerError:
        return None


__all__ = ["DependentVersion", "ImpactReport", "NotIndexedError", "impact"]
