"""A job's facts read from the chain itself: `eth_getLogs` filtered by topic, and views at a pinned head.

The audit takes every fact it reports from here, never from the SQLite event index (a local
cache anyone with the file can edit): the job from its `JobCreated` log, its rounds from the
`RoundCommitted` logs filtered by job id, deeds from `DatasetRegistered` / `Transfer` /
`DatasetRetired` filtered by dataset id, grants from `GrantIssued` / `GrantRevoked` filtered by
(dataset, coordinator, purpose). Each filter is a handful of `eth_getLogs` requests whatever
the chain's size; a node that caps the block range gets the range halved until it answers.

A large round (an open job's round, committed in batches) is a `RoundCommitted` whose
participant list is empty, next to a `LargeRoundCommitted` in the same transaction; its
participants are the ids of the round's `RoundParticipantsAdded` logs since the job's
previous large round was committed or aborted (`ChainLogs.large_rounds`), each batch checked
by the contract at its own position.

`GrantTimeline.at` rebuilds a grant's state at a round's position (block, log index) from
those logs with the contract's precedence (`UsageGrants._status`); the audit also asks the
contract itself at the round's block where the node keeps that state.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.audit.chainstate import HistoricalReader, checksum_address
from ledger.chain.client import LedgerClient
from ledger.chain.types import BlockRef, DecodedEvent
from ledger.errors import RPCError
from ledger.index import (
    ZERO_ADDRESS,
    DeedTransfer,
    GrantEvent,
    GrantStateAt,
    GrantStatus,
    IndexedDataset,
    IndexedJob,
    IndexedRound,
)

log = logging.getLogger(__name__)

# A node refusing a range this small is refusing the filter, not the range.
_MIN_RANGE = 1
# Topic filters take at most this many alternatives per position on common providers.
_TOPIC_CHUNK = 100


def _topic_uint(value: int) -> str:
    return f"0x{value:064x}"


def _topic_address(address: str) -> str:
    return "0x" + bytes(12).hex() + address[2:].lower()


def _topic_bytes(value: bytes) -> str:
    return "0x" + value.hex()


@dataclass(frozen=True, slots=True)
class ParticipantBatch:
    """One `RoundParticipantsAdded` log: the datasets it added and where the contract checked them."""

    participants: tuple[int, ...]
    block_number: int
    log_index: int
    tx_hash: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class LargeRoundLog:
    """A committed large round: its `LargeRoundCommitted` log and the batches that built it."""

    round: int
    participant_count: int
    participants_hash: bytes
    batches: tuple[ParticipantBatch, ...]

    @property
    def participants(self) -> tuple[int, ...]:
        """Every dataset the batches added, in the order added (ascending on an honest chain)."""
        return tuple(d for batch in self.batches for d in batch.participants)

    def batch_of(self, dataset_id: int) -> ParticipantBatch | None:
        """The batch that added `dataset_id` (None when none did)."""
        return next((b for b in self.batches if dataset_id in b.participants), None)


def _position(block: int, log_index: int | None) -> tuple[int, float]:
    """A place in the chain's log order; `log_index` None is the end of `block` (after all its logs)."""
    return (block, math.inf if log_index is None else log_index)


@dataclass
class GrantTimeline:
    """A dataset's deed and one grant key's history, as the chain's logs tell it."""

    dataset_id: int
    registered: tuple[int, int] | None
    retired: tuple[int, int] | None
    transfers: tuple[DeedTransfer, ...]
    grant_events: tuple[GrantEvent, ...]

    def owner_at(self, block: int, log_index: int | None) -> str | None:
        """The deed holder just before (block, log_index) (end of `block` when `log_index` is None)."""
        position = _position(block, log_index)
        at = bisect.bisect_left([(t.block_number, t.log_index) for t in self.transfers], position)
        if at == 0:
            return None
        holder = self.transfers[at - 1].to_address
        return None if holder == ZERO_ADDRESS else holder

    def at(
        self, grantee: str, purpose: bytes, block: int, log_index: int | None, timestamp: int
    ) -> GrantStateAt:
        """The grant as it stood just before (block, log_index), with `UsageGrants._status`'s precedence."""
        position = _position(block, log_index)

        def before(where: tuple[int, int] | None) -> bool:
            return where is not None and where < position

        events = [e for e in self.grant_events if (e.block_number, e.log_index) < position]
        issued = next((e for e in reversed(events) if e.kind == "issued"), None)
        revocation = None
        owner_change = None
        if issued is not None:
            mark = (issued.block_number, issued.log_index)
            revocation = next(
                (e for e in events if e.kind == "revoked" and (e.block_number, e.log_index) > mark), None
            )
            owner_change = next(
                (
                    t
                    for t in self.transfers
                    if t.from_address != ZERO_ADDRESS
                    and t.to_address != ZERO_ADDRESS
                    and mark < (t.block_number, t.log_index) < position
                ),
                None,
            )
        registered = before(self.registered)
        retired = before(self.retired)
        if issued is None:
            status = GrantStatus.NO_GRANT if registered else GrantStatus.UNKNOWN_DATASET
        elif retired:
            status = GrantStatus.DATASET_RETIRED
        elif revocation is not None:
            status = GrantStatus.REVOKED
        elif owner_change is not None:
            status = GrantStatus.OWNER_CHANGED
        elif timestamp < (issued.not_before or 0):
            status = GrantStatus.NOT_YET_VALID
        elif timestamp > (issued.expires_at or 0):
            status = GrantStatus.EXPIRED
        else:
            status = GrantStatus.AUTHORIZED
        return GrantStateAt(
            dataset_id=self.dataset_id,
            grantee=grantee,
            purpose=purpose,
            block_number=block,
            log_index=log_index,
            timestamp=timestamp,
            status=status,
            issued=issued,
            revocation=revocation,
            owner_change=owner_change,
            retired_block=self.retired[0] if retired and self.retired is not None else None,
            dataset_registered=registered,
        )


@dataclass
class ChainLogs:
    """Reads a job's facts from logs and views of one deployment, up to a head pinned at creation."""

    client: LedgerClient
    head: BlockRef = field(init=False)
    _blocks: dict[int, BlockRef] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.head = self.client.latest_block()
        self._reader = HistoricalReader(self.client)
        ledger, registry, grants = (
            self.client.abis[n] for n in ("TrainingLedger", "DatasetRegistry", "UsageGrants")
        )
        self._topic0 = {
            name: "0x" + next(e.topic0 for e in abi.events.values() if e.name == name).hex()
            for abi, names in (
                (
                    ledger,
                    (
                        "JobCreated",
                        "RoundCommitted",
                        "RoundParticipantsAdded",
                        "LargeRoundAborted",
                        "LargeRoundCommitted",
                    ),
                ),
                (registry, ("DatasetRegistered", "DatasetRetired", "Transfer")),
                (grants, ("GrantIssued", "GrantRevoked")),
            )
            for name in names
        }

    # ------------------------------------------------------------------ plumbing

    def logs(self, contracts: Sequence[str], topics: Sequence[Any], from_block: int) -> list[DecodedEvent]:
        """Decoded logs matching `topics` from `from_block` to the pinned head, in chain order."""
        addresses = [self.client.deployment.address(c) for c in contracts]
        found = self._range(addresses, list(topics), from_block, self.head.number)
        found.sort(key=lambda e: (e.block_number, e.log_index))
        return found

    def _range(self, addresses: list[str], topics: list[Any], start: int, end: int) -> list[DecodedEvent]:
        query = {"address": addresses, "topics": topics, "fromBlock": hex(start), "toBlock": hex(end)}
        try:
            raw = self.client.transport.request("eth_getLogs", [query])
        except RPCError as error:
            # Providers cap eth_getLogs by block range or result count: split the range.
            if end - start + 1 <= _MIN_RANGE:
                raise
            middle = (start + end) // 2
            log.debug("eth_getLogs %d..%d refused (%s); splitting", start, end, error)
            return self._range(addresses, topics, start, middle) + self._range(
                addresses, topics, middle + 1, end
            )
        return [e for e in (self.client.decode_log(item) for item in raw if not item.get("removed")) if e]

    def blocks(self, numbers: Iterable[int]) -> dict[int, BlockRef]:
        """Headers (number, hash, timestamp) of blocks, one batched request for those not seen yet."""
        numbers = list(numbers)
        wanted = sorted(set(numbers) - set(self._blocks))
        if wanted:
            for number, header in zip(wanted, self._reader.headers(wanted), strict=True):
                self._blocks[number] = header
        return {n: self._blocks[n] for n in numbers}

    # ------------------------------------------------------------------ facts

    def job(self, job_id: int) -> IndexedJob | None:
        """The job's `JobCreated` log (None when the chain has no job `job_id`)."""
        deployed = self.client.deployment.deployed_block
        found = [
            e
            for e in self.logs(
                ["TrainingLedger"], [self._topic0["JobCreated"], _topic_uint(job_id)], deployed
            )
            if e.name == "JobCreated"
        ]
        if not found:
            return None
        e = found[0]
        block = self.blocks([e.block_number])[e.block_number]
        return IndexedJob(
            job_id=int(e.args["jobId"]),
            coordinator=checksum_address(e.args["coordinator"]),
            purpose=bytes(e.args["purpose"]),
            datasets=tuple(int(d) for d in e.args["datasets"]),
            initial_model_digest=bytes(e.args["initialModelDigest"]),
            spec_digest=bytes(e.args["specDigest"]),
            block_number=e.block_number,
            block_hash=e.block_hash,
            log_index=e.log_index,
            tx_hash=e.tx_hash,
            timestamp=block.timestamp,
            rounds_committed=0,
        )

    def rounds(self, job: IndexedJob) -> list[IndexedRound]:
        """Every `RoundCommitted` of the job up to the pinned head, in chain order."""
        events = [
            e
            for e in self.logs(
                ["TrainingLedger"],
                [self._topic0["RoundCommitted"], _topic_uint(job.job_id)],
                job.block_number,
            )
            if e.name == "RoundCommitted"
        ]
        headers = self.blocks(e.block_number for e in events)
        return [
            IndexedRound(
                job_id=int(e.args["jobId"]),
                round=int(e.args["round"]),
                parent_digest=bytes(e.args["parentDigest"]),
                model_digest=bytes(e.args["modelDigest"]),
                manifest_cid=str(e.args["manifestCid"]),
                participants=tuple(int(d) for d in e.args["participants"]),
                attestations_root=bytes(e.args["attestationsRoot"]),
                block_number=e.block_number,
                block_hash=e.block_hash,
                log_index=e.log_index,
                tx_hash=e.tx_hash,
                timestamp=headers[e.block_number].timestamp,
            )
            for e in events
        ]

    def large_rounds(self, job: IndexedJob) -> dict[int, LargeRoundLog]:
        """The job's committed large rounds by round number, each with the batches added since the
        job's previous large round closed (committed or aborted: a job has one open at a time)."""
        names = ("RoundParticipantsAdded", "LargeRoundAborted", "LargeRoundCommitted")
        events = [
            e
            for e in self.logs(
                ["TrainingLedger"],
                [[self._topic0[n] for n in names], _topic_uint(job.job_id)],
                job.block_number,
            )
            if e.name in names
        ]
        headers = self.blocks(e.block_number for e in events if e.name == "RoundParticipantsAdded")
        found: dict[int, LargeRoundLog] = {}
        pending: list[ParticipantBatch] = []
        for e in events:
            number = int(e.args["round"])
            if e.name == "LargeRoundAborted":
                pending = []
            elif e.name == "RoundParticipantsAdded":
                pending.append(
                    ParticipantBatch(
                        participants=tuple(int(d) for d in e.args["participants"]),
                        block_number=e.block_number,
                        log_index=e.log_index,
                        tx_hash=e.tx_hash,
                        timestamp=headers[e.block_number].timestamp,
                    )
                )
            else:
                found[number] = LargeRoundLog(
                    round=number,
                    participant_count=int(e.args["participantCount"]),
                    participants_hash=bytes(e.args["participantsHash"]),
                    batches=tuple(pending),
                )
                pending = []
        return found

    def timelines(
        self, dataset_ids: Sequence[int], grantee: str, purpose: bytes
    ) -> tuple[dict[int, GrantTimeline], dict[int, IndexedDataset]]:
        """Deed and grant history of each dataset for one (grantee, purpose), from the logs."""
        deployed = self.client.deployment.deployed_block
        ids = sorted(set(dataset_ids))
        events: list[DecodedEvent] = []
        for start in range(0, len(ids), _TOPIC_CHUNK):
            chunk = [_topic_uint(d) for d in ids[start : start + _TOPIC_CHUNK]]
            events += self.logs(
                ["DatasetRegistry"],
                [[self._topic0["DatasetRegistered"], self._topic0["DatasetRetired"]], chunk],
                deployed,
            )
            events += self.logs(["DatasetRegistry"], [self._topic0["Transfer"], None, None, chunk], deployed)
            events += self.logs(
                ["UsageGrants"],
                [
                    [self._topic0["GrantIssued"], self._topic0["GrantRevoked"]],
                    chunk,
                    _topic_address(grantee),
                    _topic_bytes(purpose),
                ],
                deployed,
            )
        events.sort(key=lambda e: (e.block_number, e.log_index))
        headers = self.blocks(e.block_number for e in events)
        timelines: dict[int, GrantTimeline] = {}
        records: dict[int, IndexedDataset] = {}
        registrations: dict[int, DecodedEvent] = {}
        retirements: dict[int, DecodedEvent] = {}
        transfers: dict[int, list[DeedTransfer]] = {d: [] for d in ids}
        grant_events: dict[int, list[GrantEvent]] = {d: [] for d in ids}
        for e in events:
            if e.name == "DatasetRegistered":
                registrations.setdefault(int(e.args["datasetId"]), e)
            elif e.name == "DatasetRetired":
                retirements.setdefault(int(e.args["datasetId"]), e)
            elif e.name == "Transfer" and int(e.args["tokenId"]) in transfers:
                transfers[int(e.args["tokenId"])].append(
                    DeedTransfer(
                        dataset_id=int(e.args["tokenId"]),
                        from_address=checksum_address(e.args["from"]),
                        to_address=checksum_address(e.args["to"]),
                        block_number=e.block_number,
                        log_index=e.log_index,
                        tx_hash=e.tx_hash,
                        timestamp=headers[e.block_number].timestamp,
                    )
                )
            elif e.name in ("GrantIssued", "GrantRevoked") and int(e.args["datasetId"]) in grant_events:
                issued = e.name == "GrantIssued"
                grant_events[int(e.args["datasetId"])].append(
                    GrantEvent(
                        dataset_id=int(e.args["datasetId"]),
                        grantee=checksum_address(e.args["grantee"]),
                        purpose=bytes(e.args["purpose"]),
                        kind="issued" if issued else "revoked",
                        not_before=int(e.args["notBefore"]) if issued else None,
                        expires_at=int(e.args["expiresAt"]) if issued else None,
                        block_number=e.block_number,
                        log_index=e.log_index,
                        tx_hash=e.tx_hash,
                        timestamp=headers[e.block_number].timestamp,
                    )
                )
        for d in ids:
            reg, ret = registrations.get(d), retirements.get(d)
            timelines[d] = GrantTimeline(
                dataset_id=d,
                registered=None if reg is None else (reg.block_number, reg.log_index),
                retired=None if ret is None else (ret.block_number, ret.log_index),
                transfers=tuple(transfers[d]),
                grant_events=tuple(grant_events[d]),
            )
            if reg is None:
                continue
            history = tuple(transfers[d])
            registrant = checksum_address(reg.args["owner"])
            records[d] = IndexedDataset(
                dataset_id=d,
                registrant=registrant,
                owner=history[-1].to_address if history else registrant,
                parent_id=int(reg.args["parentId"]),
                uri=str(reg.args["uri"]),
                block_number=reg.block_number,
                log_index=reg.log_index,
                tx_hash=reg.tx_hash,
                timestamp=headers[reg.block_number].timestamp,
                epoch=sum(1 for t in history if ZERO_ADDRESS not in (t.from_address, t.to_address)),
                retired_block=None if ret is None else ret.block_number,
                retired_tx=None if ret is None else ret.tx_hash,
                transfers=history,
            )
        return timelines, records
