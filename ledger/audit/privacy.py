"""The audit's privacy-budget check: each participant's cumulative epsilon, recomputed.

For every dataset of the job, in round order, the attested DP-SGD parameters of each round it
served are composed with `ledger.privacy.cumulative_epsilon` (the accountant the node spends
with) at the delta of the grant's terms read at the round's block, and compared with the
cumulative epsilon the node attested:

- an attestation without DP parameters under a grant with a budget fails;
- an attested cumulative epsilon below what this job's rounds alone compose to fails
  (understated); when the dataset's first round in the job attests no earlier use, every later
  round must match the recomputed value exactly (1e-6), so an overstated one fails too;
- an attested cumulative epsilon above the grant's budget at that block fails;
- a round whose grant terms could not be read (no state at its block) is not checked.

Rounds under the same grant in other jobs are not enumerated: they show as earlier use in the
first round's attested value, which the check accepts only upwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger.audit.lineage import Lineage
from ledger.privacy import EPSILON_SCALE, DPRound, cumulative_epsilon, epsilon_e6
from ledger.provenance import ManifestError

# Rounding of the attested millionths (node and auditor may differ by one unit across platforms).
TOLERANCE_E6 = 1


@dataclass
class DatasetBudget:
    """One dataset's privacy spending in the audited job, against its grant's budget."""

    dataset_id: int
    epsilon_budget: float | None = None  # at the last round's block; None: terms not read
    delta: float | None = None
    epsilon_spent: float = 0.0  # the last attested cumulative epsilon
    epsilon_recomputed: float = 0.0  # this job's rounds alone, composed by the auditor
    private_rounds: int = 0
    rounds: list[DPRound] = field(default_factory=list)

    @property
    def epsilon_left(self) -> float | None:
        if self.epsilon_budget is None or not self.epsilon_budget:
            return None
        return max(0.0, self.epsilon_budget - self.epsilon_spent)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset_id": f"0x{self.dataset_id:064x}",
            "epsilon_budget": self.epsilon_budget,
            "delta": self.delta,
            "epsilon_spent": self.epsilon_spent,
            "epsilon_recomputed": self.epsilon_recomputed,
            "epsilon_left": self.epsilon_left,
            "private_rounds": self.private_rounds,
        }


@dataclass(frozen=True)
class PrivacyFinding:
    """One participant round's verdict: status is 'pass', 'fail' or 'not-checked'."""

    round: int
    dataset_id: int
    status: str
    message: str


def privacy_findings(lineage: Lineage) -> tuple[list[PrivacyFinding], dict[int, DatasetBudget]]:
    """The per-round findings and the per-dataset budgets of the lineage (DP participants only)."""
    findings: list[PrivacyFinding] = []
    budgets: dict[int, DatasetBudget] = {}
    exact: dict[int, bool] = {}
    last_attested: dict[int, int] = {}
    for facts in lineage.rounds:
        r = facts.committed.round
        for p in facts.participants:
            if p.entry is None:
                continue
            ds = f"0x{p.dataset_id:064x}"
            where = f"round {r}: dataset {ds}"
            try:
                claim = p.entry.privacy_claim()
            except ManifestError as error:
                findings.append(PrivacyFinding(r, p.dataset_id, "fail", f"{where}: {error}"))
                continue
            terms = p.terms
            if claim is None:
                if terms is not None and terms.epsilon > 0:
                    findings.append(
                        PrivacyFinding(
                            r,
                            p.dataset_id,
                            "fail",
                            f"{where}: the grant sets a privacy budget (epsilon {terms.epsilon:g}, delta "
                            f"{terms.delta:g}) but the attestation carries no DP parameters",
                        )
                    )
                continue
            budget = budgets.setdefault(p.dataset_id, DatasetBudget(p.dataset_id))
            budget.rounds.append(claim.dp)
            budget.private_rounds += 1
            budget.epsilon_spent = claim.epsilon_spent
            if terms is None:
                findings.append(
                    PrivacyFinding(
                        r,
                        p.dataset_id,
                        "not-checked",
                        f"{where}: not checked: the grant's terms at block {facts.committed.block_number} "
                        "could not be read; attested cumulative epsilon "
                        f"{claim.epsilon_spent:.6f}",
                    )
                )
                continue
            budget.epsilon_budget, budget.delta = terms.epsilon, terms.delta
            if not terms.epsilon:
                findings.append(
                    PrivacyFinding(
                        r, p.dataset_id, "pass", f"{where}: DP-SGD used, the grant sets no privacy budget"
                    )
                )
                continue
            recomputed = cumulative_epsilon(budget.rounds, terms.delta)
            budget.epsilon_recomputed = recomputed
            recomputed_e6 = epsilon_e6(recomputed)
            attested_e6 = claim.epsilon_spent_e6
            if p.dataset_id not in exact:
                exact[p.dataset_id] = abs(attested_e6 - recomputed_e6) <= TOLERANCE_E6
            budget_e6 = round(terms.epsilon * EPSILON_SCALE)
            params = (
                f"noise multiplier {claim.dp.noise_multiplier:g}, clipping norm {claim.dp.max_grad_norm:g}, "
                f"sampling rate {claim.dp.sample_rate:.6f}, {claim.dp.steps} steps"
            )
            if attested_e6 + TOLERANCE_E6 < recomputed_e6:
                status, message = (
                    "fail",
                    f"{where}: attests cumulative epsilon {claim.epsilon_spent:.6f}, but its "
                    f"{budget.private_rounds} DP round(s) in this job alone compose to {recomputed:.6f} "
                    f"(delta {terms.delta:g}; this round: {params})",
                )
            elif exact[p.dataset_id] and attested_e6 > recomputed_e6 + TOLERANCE_E6:
                status, message = (
                    "fail",
                    f"{where}: attests cumulative epsilon {claim.epsilon_spent:.6f}, but its DP rounds "
                    f"compose to {recomputed:.6f} (no earlier use was attested in its first round)",
                )
            elif attested_e6 < last_attested.get(p.dataset_id, 0):
                status, message = (
                    "fail",
                    f"{where}: attests cumulative epsilon {claim.epsilon_spent:.6f}, below the "
                    f"{last_attested[p.dataset_id] / EPSILON_SCALE:.6f} it attested in an earlier round",
                )
            elif attested_e6 > budget_e6:
                status, message = (
                    "fail",
                    f"{where}: cumulative epsilon {claim.epsilon_spent:.6f} exceeds the grant's budget "
                    f"{terms.epsilon:g} (delta {terms.delta:g}) at block {facts.committed.block_number}",
                )
            else:
                status, message = (
                    "pass",
                    f"{where}: cumulative epsilon {claim.epsilon_spent:.6f} (recomputed {recomputed:.6f} "
                    f"from this job's rounds) within the budget {terms.epsilon:g} (delta {terms.delta:g}); "
                    f"{params}",
                )
            last_attested[p.dataset_id] = max(attested_e6, last_attested.get(p.dataset_id, 0))
            findings.append(PrivacyFinding(r, p.dataset_id, status, message))
    return findings, budgets
