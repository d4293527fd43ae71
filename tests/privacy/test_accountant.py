"""The accountant the node and the audit share, against Opacus' own reference values."""

from __future__ import annotations

import math

import pytest

import ledger.privacy as accountant
from ledger.privacy import DPRound, PrivacyError, calibrate_noise, cumulative_epsilon, epsilon_e6


def test_epsilon_matches_opacus_reference_value() -> None:
    # Reference: opacus 1.6.0, opacus/tests/accountants_test.py::test_rdp_accountant
    # (noise multiplier 1.5, sample rate 0.04, int(90 / 0.04) steps, delta 1e-5 -> 7.32911117143).
    dp = DPRound.of(noise_multiplier=1.5, max_grad_norm=1.0, sample_rate=0.04, steps=int(90 / 0.04))
    assert cumulative_epsilon([dp], 1e-5) == pytest.approx(7.32911117143, abs=1e-9)


def test_rounds_compose_as_one_run_of_their_steps() -> None:
    # RDP composes additively: 10 rounds of 225 steps are the reference's 2250 steps.
    one = DPRound.of(noise_multiplier=1.5, max_grad_norm=1.0, sample_rate=0.04, steps=225)
    assert cumulative_epsilon([one] * 10, 1e-5) == pytest.approx(7.32911117143, abs=1e-9)
    assert cumulative_epsilon([], 1e-5) == 0.0
    assert cumulative_epsilon([one] * 5, 1e-5) < cumulative_epsilon([one] * 10, 1e-5)


@pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")  # so much noise: expected
def test_a_round_that_reveals_next_to_nothing_spends_zero_not_a_negative_epsilon() -> None:
    # opacus' conversion gives about -0.105 here (delta 0.1, sigma 1e9): an epsilon is never below 0
    dp = DPRound(noise_multiplier_e6=10**15, max_grad_norm_e6=1_000_000, sample_rate_e9=1, steps=1)
    assert cumulative_epsilon([dp], 0.1) == 0.0
    assert epsilon_e6(cumulative_epsilon([dp], 0.1)) == 0
    assert cumulative_epsilon([dp], 1e-5) > 0


def test_the_accountant_is_opacus_rdp_accountant() -> None:
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    history = [(1.1, 0.05, 40), (2.0, 0.2, 12), (0.9, 0.01, 300)]
    for sigma, q, steps in history:
        for _ in range(steps):
            accountant.step(noise_multiplier=sigma, sample_rate=q)
    ours = cumulative_epsilon(
        [DPRound.of(noise_multiplier=s, max_grad_norm=1.0, sample_rate=q, steps=n) for s, q, n in history],
        1e-5,
    )
    assert ours == pytest.approx(accountant.get_epsilon(delta=1e-5), rel=1e-9)


def test_calibrated_noise_spends_at_most_the_budget_and_barely_less() -> None:
    dp = calibrate_noise(epsilon=3.0, delta=1e-5, sample_rate=0.18, steps=12, rounds=20)
    spent = cumulative_epsilon([dp] * 20, 1e-5)
    assert spent <= 3.0
    assert dp.noise_multiplier_e6 % 100 == 0  # a multiple of 1e-4...
    lower = DPRound(dp.noise_multiplier_e6 - 100, dp.max_grad_norm_e6, dp.sample_rate_e9, dp.steps)
    assert cumulative_epsilon([lower] * 20, 1e-5) > 3.0  # ...and the smallest that fits
    # more noise for a tighter budget
    assert calibrate_noise(
        epsilon=1.0, delta=1e-5, sample_rate=0.18, steps=12, rounds=20
    ).noise_multiplier > (dp.noise_multiplier)


def test_calibration_interpolates_instead_of_halving(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each candidate sigma is one RDP curve (0.1-0.2 s), computed before every DP round; halving
    # the interval to 1e-4 took 20 curves for this case (the same sigma).
    curves: list[DPRound] = []
    compute = accountant._round_rdp.__wrapped__

    def counted(dp_round: DPRound) -> tuple[float, ...]:
        curves.append(dp_round)
        return compute(dp_round)

    monkeypatch.setattr(accountant, "_round_rdp", counted)
    dp = calibrate_noise(epsilon=3.0, delta=1e-5, sample_rate=0.18, steps=12, rounds=20)
    assert len(curves) <= 8 and len(set(curves)) == len(curves)
    assert dp.noise_multiplier_e6 == 4_316_600


def test_fixed_point_rounds_towards_more_epsilon() -> None:
    dp = DPRound.of(noise_multiplier=1.2345678, max_grad_norm=0.5, sample_rate=1 / 3, steps=7)
    assert dp.noise_multiplier_e6 == 1234567  # sigma rounded down
    assert dp.sample_rate_e9 == 333333334  # q rounded up
    assert epsilon_e6(1.0000001) == 1000001 and epsilon_e6(2.0) == 2000000
    assert math.isclose(dp.max_grad_norm, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"noise_multiplier": 0.0, "max_grad_norm": 1.0, "sample_rate": 0.1, "steps": 1}, "noise_multiplier"),
        ({"noise_multiplier": 1.0, "max_grad_norm": -1.0, "sample_rate": 0.1, "steps": 1}, "max_grad_norm"),
        ({"noise_multiplier": 1.0, "max_grad_norm": 1.0, "sample_rate": 1.5, "steps": 1}, "sample_rate"),
        ({"noise_multiplier": 1.0, "max_grad_norm": 1.0, "sample_rate": 0.1, "steps": 0}, "steps"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, float], named: str) -> None:
    with pytest.raises(PrivacyError, match=named):
        DPRound.of(**kwargs)  # type: ignore[arg-type]
