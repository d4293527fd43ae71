"""The owner's privacy budget: what each dataset has spent, per grantee and purpose, across jobs.

`BudgetLedger` keeps, in the owner's data directory (`$SOV_HOME/privacy/`), one JSON file per
(chain id, dataset, grantee, purpose) listing every DP-SGD round the dataset served under that
grant, in any job. Before a round the node plans it (`plan_round`): the round's DP parameters and
the cumulative epsilon after it, from `ledger.privacy.cumulative_epsilon` over the recorded rounds
plus this one. A round that would take the cumulative epsilon past the grant's budget is refused
(`privacy_budget_exhausted`); one that fits is recorded before its update leaves the node
(`record`). The same (job, round) asked again with the same parameters is the same deterministic
release and is recorded once.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from ledger.chain.types import GrantTerms
from ledger.privacy import EPSILON_SCALE, DPRound, calibrate_noise, cumulative_epsilon, epsilon_e6

from .errors import RoundRefusedError

DEFAULT_PLANNED_ROUNDS = 20
DEFAULT_MAX_GRAD_NORM = 1.0
_lock = threading.Lock()


@dataclass(frozen=True)
class PlannedRound:
    """The DP parameters of the next round and the dataset's cumulative epsilon after it."""

    dp: DPRound
    epsilon_after: float
    epsilon_after_e6: int


def round_shape(num_examples: int, batch_size: int, local_epochs: int) -> tuple[float, int]:
    """Poisson sampling rate and steps of one round: q = batch/n, epochs * ceil(n/batch) steps."""
    rate = min(1.0, batch_size / num_examples)
    return rate, local_epochs * math.ceil(num_examples / batch_size)


class BudgetLedger:
    """The persisted DP history of one owner's datasets (`home`/privacy/*.json)."""

    def __init__(self, home: Path, planned_rounds: int = 0) -> None:
        self.directory = Path(home) / "privacy"
        # The owner's policy when a job names no number of rounds: spread a budget over this
        # many rounds (0 = the grant's max_rounds, else DEFAULT_PLANNED_ROUNDS).
        self.planned_rounds = planned_rounds

    def _path(self, chain_id: int, dataset_id: int, grantee: str, purpose: bytes) -> Path:
        return self.directory / f"{chain_id}-{dataset_id:064x}-{grantee.lower()}-{purpose.hex()}.json"

    def history(self, chain_id: int, dataset_id: int, grantee: str, purpose: bytes) -> list[dict[str, int]]:
        """The recorded rounds: job, round and the fixed-point DP parameters of each."""
        path = self._path(chain_id, dataset_id, grantee, purpose)
        if not path.exists():
            return []
        rounds: list[dict[str, int]] = json.loads(path.read_text())["rounds"]
        return rounds

    def rounds(self, chain_id: int, dataset_id: int, grantee: str, purpose: bytes) -> list[DPRound]:
        return [_dp_of(entry) for entry in self.history(chain_id, dataset_id, grantee, purpose)]

    def spent(self, chain_id: int, dataset_id: int, grantee: str, purpose: bytes, delta: float) -> float:
        return cumulative_epsilon(self.rounds(chain_id, dataset_id, grantee, purpose), delta)

    def plan_round(
        self,
        *,
        chain_id: int,
        dataset_id: int,
        grantee: str,
        purpose: bytes,
        job_id: int,
        round_number: int,
        terms: GrantTerms,
        num_examples: int,
        batch_size: int,
        local_epochs: int,
        noise_multiplier: float = 0.0,
        max_grad_norm: float = 0.0,
        planned_rounds: int = 0,
    ) -> PlannedRound:
        """The next round's parameters, or `RoundRefusedError('privacy_budget_exhausted')`.

        `noise_multiplier` 0 = the node calibrates: the smallest sigma whose `planned_rounds`
        rounds (else the ledger's `planned_rounds`, else the grant's `max_rounds`, else 20) of
        this shape fit the whole budget.
        """
        rate, steps = round_shape(num_examples, batch_size, local_epochs)
        clip = max_grad_norm or DEFAULT_MAX_GRAD_NORM
        if noise_multiplier > 0:
            dp = DPRound.of(
                noise_multiplier=noise_multiplier, max_grad_norm=clip, sample_rate=rate, steps=steps
            )
        else:
            rounds = planned_rounds or self.planned_rounds or terms.max_rounds or DEFAULT_PLANNED_ROUNDS
            dp = calibrate_noise(
                epsilon=terms.epsilon,
                delta=terms.delta,
                sample_rate=rate,
                steps=steps,
                rounds=rounds,
                max_grad_norm=clip,
            )
        history = self.history(chain_id, dataset_id, grantee, purpose)
        same = _entry(job_id, round_number, dp)
        prior = [_dp_of(e) for e in history if e != same]
        before = cumulative_epsilon(prior, terms.delta)
        after = cumulative_epsilon([*prior, dp], terms.delta)
        after_e6 = epsilon_e6(after)
        if after_e6 > round(terms.epsilon * EPSILON_SCALE):
            raise RoundRefusedError(
                "privacy_budget_exhausted",
                f"dataset {dataset_id:#066x} has spent epsilon {before:.4f} of its budget {terms.epsilon:g} "
                f"(delta {terms.delta:g}) for {grantee}; this round (noise multiplier "
                f"{dp.noise_multiplier:g}, sampling rate {dp.sample_rate:.6f}, {dp.steps} steps) "
                f"would take it to {after:.4f}",
            )
        return PlannedRound(dp, after, after_e6)

    def record(
        self,
        *,
        chain_id: int,
        dataset_id: int,
        grantee: str,
        purpose: bytes,
        job_id: int,
        round_number: int,
        dp: DPRound,
    ) -> None:
        """Adds the round to the history, atomically on disk; the identical round again is kept once."""
        with _lock:
            path = self._path(chain_id, dataset_id, grantee, purpose)
            history = self.history(chain_id, dataset_id, grantee, purpose)
            entry = _entry(job_id, round_number, dp)
            if entry in history:
                return
            history.append(entry)
            self.directory.mkdir(parents=True, exist_ok=True)
            document = {
                "chain_id": chain_id,
                "dataset_id": f"{dataset_id:#066x}",
                "grantee": grantee,
                "purpose": "0x" + purpose.hex(),
                "rounds": history,
            }
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(document, indent=1, sort_keys=True))
            os.replace(tmp, path)


def _dp_of(entry: dict[str, int]) -> DPRound:
    return DPRound(
        entry["noise_multiplier_e6"], entry["max_grad_norm_e6"], entry["sample_rate_e9"], entry["steps"]
    )


def _entry(job_id: int, round_number: int, dp: DPRound) -> dict[str, int]:
    return {
        "job_id": job_id,
        "round": round_number,
        "noise_multiplier_e6": dp.noise_multiplier_e6,
        "max_grad_norm_e6": dp.max_grad_norm_e6,
        "sample_rate_e9": dp.sample_rate_e9,
        "steps": dp.steps,
    }
