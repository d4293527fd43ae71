"""The differential-privacy accountant the node spends budgets with and the audit re-derives them with.

One function, `cumulative_epsilon`, turns a history of DP-SGD rounds into the (epsilon, delta)
guarantee of all of them together: Opacus' Rényi-DP analysis of the sampled Gaussian mechanism
(`opacus.accountants.analysis.rdp.compute_rdp`, summed over the rounds at every order of
`RDP_ORDERS`, then `get_privacy_spent`). The node (`fl_node.privacy`) calls it before a round to
decide whether the round fits the grant's budget and attests the result; the audit calls the same
function on the attested parameters. Opacus (and so torch) is imported on first use only: `ledger`
starts without torch.

Attested values are fixed-point integers, so that the node and the auditor feed the accountant the
same numbers: the noise multiplier and the clipping norm in millionths, the sampling rate in
billionths, the cumulative epsilon in millionths rounded up.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.errors import LedgerError

NOISE_SCALE = 1_000_000
CLIP_SCALE = 1_000_000
SAMPLE_RATE_SCALE = 1_000_000_000
EPSILON_SCALE = 1_000_000
UINT64_MAX = 2**64 - 1

# Opacus' RDPAccountant.DEFAULT_ALPHAS, spelled out here so that a library upgrade changing its
# default cannot change what an attested epsilon means.
RDP_ORDERS: tuple[float, ...] = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))


class PrivacyError(LedgerError, ValueError):
    """DP parameters out of range, or a budget that cannot be met."""


@dataclass(frozen=True, slots=True)
class DPRound:
    """The DP-SGD parameters of one round as attested (fixed point, see the module docstring).

    `noise_multiplier_e6` / 1e6 is sigma (noise std / clipping norm), `max_grad_norm_e6` / 1e6
    the per-sample clipping norm, `sample_rate_e9` / 1e9 the Poisson sampling rate q and `steps`
    the number of noisy steps the round took.
    """

    noise_multiplier_e6: int
    max_grad_norm_e6: int
    sample_rate_e9: int
    steps: int

    def __post_init__(self) -> None:
        for name, top in (
            ("noise_multiplier_e6", UINT64_MAX),
            ("max_grad_norm_e6", UINT64_MAX),
            ("sample_rate_e9", SAMPLE_RATE_SCALE),
            ("steps", UINT64_MAX),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise PrivacyError(f"{name} is {value!r}: expected an integer from 1 to {top}")

    @property
    def noise_multiplier(self) -> float:
        return self.noise_multiplier_e6 / NOISE_SCALE

    @property
    def max_grad_norm(self) -> float:
        return self.max_grad_norm_e6 / CLIP_SCALE

    @property
    def sample_rate(self) -> float:
        return self.sample_rate_e9 / SAMPLE_RATE_SCALE

    @classmethod
    def of(cls, *, noise_multiplier: float, max_grad_norm: float, sample_rate: float, steps: int) -> DPRound:
        """Fixed-point form: sigma rounded down and q rounded up (both only ever cost more epsilon)."""
        for name, value in (
            ("noise_multiplier", noise_multiplier),
            ("max_grad_norm", max_grad_norm),
            ("sample_rate", sample_rate),
        ):
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise PrivacyError(f"{name} is {value!r}: expected a positive finite number")
        if sample_rate > 1:
            raise PrivacyError(f"sample_rate is {sample_rate!r}: expected at most 1")
        return cls(
            noise_multiplier_e6=max(1, math.floor(noise_multiplier * NOISE_SCALE)),
            max_grad_norm_e6=max(1, round(max_grad_norm * CLIP_SCALE)),
            sample_rate_e9=min(SAMPLE_RATE_SCALE, math.ceil(sample_rate * SAMPLE_RATE_SCALE)),
            steps=steps,
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.max_grad_norm,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
        }


def _rdp() -> Any:
    from opacus.accountants.analysis import rdp  # torch comes with it: only when DP is used

    return rdp


@functools.lru_cache(maxsize=4096)
def _round_rdp(dp_round: DPRound) -> tuple[float, ...]:
    """One round's RDP at every order of `RDP_ORDERS` (~0.1-0.2 s in opacus).

    Memoised: a pure function of a frozen `DPRound`, and the same round is composed again and
    again (a job of k rounds with the same parameters is one curve; the audit recomposes each
    dataset's history at every round; the node plans, records and attests the same round).
    """
    rdp = _rdp().compute_rdp(
        q=dp_round.sample_rate,
        noise_multiplier=dp_round.noise_multiplier,
        steps=dp_round.steps,
        orders=list(RDP_ORDERS),
    )
    return tuple(float(v) for v in rdp)


def _epsilon_of(total_rdp: Sequence[float], delta: float) -> float:
    if not 0 < delta < 1:
        raise PrivacyError(f"delta is {delta!r}: expected 0 < delta < 1")
    epsilon, _order = _rdp().get_privacy_spent(orders=list(RDP_ORDERS), rdp=list(total_rdp), delta=delta)
    # The RDP-to-(epsilon, delta) conversion goes below 0 for a large delta and much noise; an
    # (epsilon, delta) guarantee with epsilon < 0 holds at 0 as well, and attestations are unsigned.
    return max(float(epsilon), 0.0)


def cumulative_epsilon(rounds: Iterable[DPRound], delta: float) -> float:
    """epsilon at `delta` of all `rounds` composed (RDP), 0.0 for no rounds."""
    total = [0.0] * len(RDP_ORDERS)
    any_round = False
    for dp_round in rounds:
        any_round = True
        total = [a + b for a, b in zip(total, _round_rdp(dp_round), strict=True)]
    return _epsilon_of(total, delta) if any_round else 0.0


def epsilon_e6(epsilon: float) -> int:
    """An epsilon as attested: millionths, rounded up."""
    return math.ceil(epsilon * EPSILON_SCALE - 1e-6)


def calibrate_noise(
    *, epsilon: float, delta: float, sample_rate: float, steps: int, rounds: int, max_grad_norm: float = 1.0
) -> DPRound:
    """The smallest noise multiplier (a multiple of 1e-4, at least 0.3) whose `rounds` identical
    rounds cost at most `epsilon`.

    The node uses it to spread a grant's budget over a job's planned rounds, before every round.
    Each candidate costs one RDP curve (~0.1-0.2 s), so the search interpolates: epsilon falls
    smoothly as the noise grows, and false position (Illinois) brackets the smallest fitting
    multiple in 4-9 curves where halving the interval took 15-20.
    """
    if rounds < 1:
        raise PrivacyError(f"rounds is {rounds!r}: expected at least 1")
    if not epsilon > 0:
        raise PrivacyError(f"epsilon is {epsilon!r}: expected a positive budget")

    def excess(units: int) -> float:  # log(epsilon spent / budget) at sigma = units / 10_000
        one = DPRound.of(
            noise_multiplier=units / 10_000, max_grad_norm=max_grad_norm, sample_rate=sample_rate, steps=steps
        )
        spent = _epsilon_of([rounds * v for v in _round_rdp(one)], delta)
        return math.log(max(spent, 1e-300) / epsilon)

    # Invariant: `high` fits (excess <= 0); `low` does not, or is the floor 0.3 (2999: never tried).
    low, high = 2_999, 10_000
    low_excess, high_excess = math.inf, excess(high)
    while high_excess > 0:
        low, low_excess = high, high_excess
        high *= 2
        if high > 100_000_000:
            raise PrivacyError(
                f"no noise multiplier up to 1e4 keeps {rounds} rounds of {steps} steps at sampling rate "
                f"{sample_rate:g} within epsilon {epsilon:g} (delta {delta:g})"
            )
        high_excess = excess(high)
    # epsilon falls about as a power of sigma: interpolate log(epsilon) against log(sigma)
    kept = ""  # the end that stayed put last time (Illinois: halve its weight if it stays again)
    while high - low > 1:
        if math.isinf(low_excess) or low_excess == high_excess:
            probe = (low + high) // 2
        else:
            at = math.log(high) - high_excess * (math.log(high) - math.log(low)) / (high_excess - low_excess)
            probe = round(math.exp(at))
        probe = min(max(probe, low + 1), high - 1)
        value = excess(probe)
        if value > 0:
            low, low_excess = probe, value
            high_excess, kept = (high_excess / 2, "high") if kept == "high" else (high_excess, "high")
        else:
            high, high_excess = probe, value
            low_excess, kept = (low_excess / 2, "low") if kept == "low" else (low_excess, "low")
    return DPRound.of(
        noise_multiplier=high / 10_000, max_grad_norm=max_grad_norm, sample_rate=sample_rate, steps=steps
    )
