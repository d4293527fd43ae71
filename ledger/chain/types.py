"""Typed values the chain facade returns: on-chain records, receipts and decoded events."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class AuthorizationStatus(IntEnum):
    """Mirror of `IUsageGrants.Status`: why a (dataset, grantee, purpose) is or is not authorised."""

    AUTHORIZED = 0
    NO_GRANT = 1
    NOT_YET_VALID = 2
    EXPIRED = 3
    REVOKED = 4
    DATASET_RETIRED = 5
    OWNER_CHANGED = 6
    UNKNOWN_DATASET = 7

    @property
    def reason(self) -> str:
        """A short human reason (`expired`, `no grant`, ...)."""
        return self.name.lower().replace("_", " ")


@dataclass(frozen=True)
class DatasetState:
    """`DatasetRegistry.datasetState`: current deed holder, transfer epoch, retirement."""

    owner: str
    epoch: int
    retired: bool

    @property
    def registered(self) -> bool:
        """Whether a deed exists (an unknown dataset reads as the zero owner)."""
        return int(self.owner, 16) != 0


@dataclass(frozen=True)
class GrantRecord:
    """`UsageGrants.getGrant`: the stored grant (all zero when none).

    `revoked_once` and `revoked_epoch` are the sticky revocation record: once the key was
    revoked or renounced in deed epoch `revoked_epoch`, no signed grant re-creates it while the
    deed stays in that epoch, even after the owner re-issued it directly.
    """

    not_before: int
    expires_at: int
    epoch: int
    revoked: bool
    revoked_once: bool = False
    revoked_epoch: int = 0

    def signatures_refused_in(self, epoch: int) -> bool:
        """Whether `issueGrantBySig` refuses this key while the deed is in `epoch`."""
        return self.revoked_once and self.revoked_epoch == epoch

    @property
    def exists(self) -> bool:
        """Whether a grant was ever issued for the key (a stored grant never expires at 0)."""
        return self.expires_at != 0


@dataclass(frozen=True)
class JobRecord:
    """`TrainingLedger.getJob`: a job's coordinator, last round and digests.

    `spec_digest` is the digest of the model spec fixed at `createJob`; a node trains only
    for a spec that hashes to it.
    """

    coordinator: str
    last_round: int
    purpose: bytes
    last_digest: bytes
    datasets_hash: bytes
    spec_digest: bytes


@dataclass(frozen=True)
class BlockRef:
    """A block by number, hash and timestamp."""

    number: int
    hash: str
    timestamp: int


@dataclass(frozen=True)
class DecodedEvent:
    """A log decoded with the ABI of the contract that emitted it."""

    contract: str
    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class Receipt:
    """A mined, successful transaction and the events it emitted."""

    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int
    events: list[DecodedEvent] = field(default_factory=list)

    def event(self, name: str) -> DecodedEvent:
        """The first event called `name` (raises LookupError if there is none)."""
        for event in self.events:
            if event.name == name:
                return event
        raise LookupError(f"transaction {self.tx_hash} emitted no {name} event")
