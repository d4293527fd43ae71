"""Typed values the chain facade returns: on-chain records, receipts and decoded events."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from ledger.errors import GrantTermsError

EPSILON_MAX = 655.35
DELTA_EXPONENT_MAX = 255
MIN_PARTICIPANTS_MAX = 255
MAX_ROUNDS_MAX = 65535


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


def _delta_of(exponent: int) -> float:
    """delta = 10**-exponent as the float its decimal spelling gives (1e-05, not 1.0000000000000001e-05)."""
    return 0.0 if exponent == 0 else float(f"1e-{exponent}")


@dataclass(frozen=True)
class GrantTerms:
    """The terms a grant carries beside purpose and window (`IUsageGrants.GrantTerms`).

    - `epsilon`, `delta`: the differential-privacy budget of this dataset for this grantee,
      spent by the owner's node across every job under the grant. Both 0 = DP not required;
      otherwise both set. On chain epsilon is stored in hundredths (0.01 to 655.35) and delta
      as a negative power of ten (1e-1 to 1e-255), so only such values are accepted.
    - `min_participants`: a round using the grant must have at least this many participating
      datasets (0 = no minimum; at most 255). Enforced by `TrainingLedger.commitRound`.
    - `max_rounds`: a job may use the grant in rounds 1 to `max_rounds` (0 = no limit; at
      most 65535). Enforced by `TrainingLedger.commitRound`.

    Construction checks every value and raises `GrantTermsError` naming it and what is valid.
    """

    epsilon: float = 0.0
    delta: float = 0.0
    min_participants: int = 0
    max_rounds: int = 0

    def __post_init__(self) -> None:
        # Validates (and raises) through the encoders.
        self.epsilon_hundredths  # noqa: B018
        self.delta_neg_exponent  # noqa: B018
        for name, value, top in (
            ("min_participants", self.min_participants, MIN_PARTICIPANTS_MAX),
            ("max_rounds", self.max_rounds, MAX_ROUNDS_MAX),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise GrantTermsError(f"{name} is {value!r}: expected an integer from 0 (no limit) to {top}")
        if (self.epsilon == 0) != (self.delta == 0):
            raise GrantTermsError(
                f"epsilon {self.epsilon:g} and delta {self.delta:g}: set both for a DP budget, or neither "
                "(DP not required)"
            )

    @property
    def epsilon_hundredths(self) -> int:
        """epsilon as stored on chain: hundredths, 0 to 65535."""
        eps = self.epsilon
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not math.isfinite(eps):
            raise GrantTermsError(f"epsilon is {eps!r}: expected a number from 0.01 to {EPSILON_MAX} (or 0)")
        # Range first: a huge finite epsilon times 100 overflows to infinity.
        hundredths = round(eps * 100) if 0 <= eps <= EPSILON_MAX + 0.005 else -1
        if not 0 <= hundredths <= 65535:
            raise GrantTermsError(
                f"epsilon {eps:g} is out of range: 0 (DP not required) or 0.01 to {EPSILON_MAX}"
            )
        if not math.isclose(hundredths / 100, eps, rel_tol=0, abs_tol=1e-9):
            floor = math.floor(eps * 100) / 100
            hint = f"use {floor:.2f}" if floor > 0 else "the smallest budget is 0.01"
            raise GrantTermsError(
                f"epsilon {eps:g} has more than two decimals (stored in hundredths); {hint}"
            )
        return int(hundredths)

    @property
    def delta_neg_exponent(self) -> int:
        """delta as stored on chain: k with delta = 10**-k (0 = no DP)."""
        d = self.delta
        if isinstance(d, bool) or not isinstance(d, int | float) or not math.isfinite(d):
            raise GrantTermsError(f"delta is {d!r}: expected a power of ten such as 1e-5 (or 0)")
        if d == 0:
            return 0
        if not 0 < d < 1:
            raise GrantTermsError(f"delta {d:g} is out of range: 0 (DP not required) or 1e-1 to 1e-255")
        k = round(-math.log10(d))
        if not math.isclose(10.0**-k, d, rel_tol=1e-9):
            stricter = math.ceil(-math.log10(d))
            looser = f" (or 1e-{stricter - 1} if a larger delta is acceptable)" if stricter > 1 else ""
            raise GrantTermsError(
                f"delta {d:g} is not a power of ten (stored as 10^-k); use 1e-{stricter}{looser}"
            )
        if not 1 <= k <= DELTA_EXPONENT_MAX:
            raise GrantTermsError(f"delta {d:g} is out of range: 1e-1 to 1e-{DELTA_EXPONENT_MAX}")
        return int(k)

    @property
    def requires_dp(self) -> bool:
        """Whether the grant sets a DP budget (epsilon, delta)."""
        return self.epsilon != 0

    @property
    def is_empty(self) -> bool:
        """No terms at all (what `issueGrant` without terms stores)."""
        return self == GrantTerms()

    def to_chain(self) -> tuple[int, int, int, int]:
        """`(epsilonHundredths, deltaNegExponent, minParticipants, maxRounds)`: the ABI tuple."""
        return (self.epsilon_hundredths, self.delta_neg_exponent, self.min_participants, self.max_rounds)

    @classmethod
    def from_chain(
        cls, epsilon_hundredths: int, delta_neg_exponent: int, min_participants: int, max_rounds: int
    ) -> GrantTerms:
        """Terms from their on-chain encoding (as `getGrant`, `GrantIssued` and signed grants carry them)."""
        return cls(
            int(epsilon_hundredths) / 100,
            _delta_of(int(delta_neg_exponent)),
            int(min_participants),
            int(max_rounds),
        )

    def allows_round(self, participants: int, round_number: int) -> bool:
        """What `commitRound` checks: enough participants, round within `max_rounds`."""
        return participants >= self.min_participants and (
            self.max_rounds == 0 or round_number <= self.max_rounds
        )

    def as_dict(self) -> dict[str, float | int]:
        """JSON form: epsilon, delta, min_participants, max_rounds (0 = none)."""
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "min_participants": self.min_participants,
            "max_rounds": self.max_rounds,
        }


NO_TERMS = GrantTerms()


@dataclass(frozen=True)
class GrantRecord:
    """`UsageGrants.getGrant`: the stored grant (all zero when none).

    `revoked_once` and `revoked_epoch` are the sticky revocation record: once the key was
    revoked or renounced in deed epoch `revoked_epoch`, no signed grant re-creates it while the
    deed stays in that epoch, even after the owner re-issued it directly.

    `epsilon`, `delta`, `min_participants`, `max_rounds` are the grant's terms (see
    `GrantTerms`; 0 = no limit / not required), also as one value in `terms`.
    """

    not_before: int
    expires_at: int
    epoch: int
    revoked: bool
    revoked_once: bool = False
    revoked_epoch: int = 0
    epsilon: float = 0.0
    delta: float = 0.0
    min_participants: int = 0
    max_rounds: int = 0

    @property
    def terms(self) -> GrantTerms:
        """The grant's terms as a `GrantTerms`."""
        return GrantTerms(self.epsilon, self.delta, self.min_participants, self.max_rounds)

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
