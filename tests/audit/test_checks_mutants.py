"""Every verdict of `ledger.audit.checks` on in-memory lineages: one lie per case, exact messages.

Fast cases for `make mutation` (the chain-backed cases, one per failure branch, are in
`test_checks.py`): the honest lineage of `synthetic` with one fact changed, as a lying chain,
store, index or coordinator would change it; the checks that did not pass (name, status,
subject, round, dataset, message) are compared with the reviewed list in
`tests/audit/golden/checks-lies.json`, and each case must change the verdict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from eth_utils.crypto import keccak
from synthetic import (
    DATASETS,
    DP,
    DP_DATASET,
    EPSILON,
    HOSPITALS,
    INITIAL,
    LAB,
    LEDGER,
    as_json,
    golden,
    lineage,
    participant,
    tx,
)

from ledger.audit.checks import CHECK_NAMES, Check, CheckStatus, evaluate
from ledger.audit.lineage import Lineage
from ledger.chain.types import AuthorizationStatus, DatasetState, GrantTerms
from ledger.index import DeedTransfer, GrantEvent, GrantStatus
from ledger.privacy import cumulative_epsilon, epsilon_e6
from ledger.provenance import ParticipantPrivacy
from ledger.purposes import purpose_id

OTHER = keccak(text="another 32 bytes")
OTHER_ADDRESS = "0x" + "ab" * 20


def _manifest(lin: Lineage, round_number: int, **changes: object) -> None:
    facts = lin.rounds[round_number - 1]
    assert facts.manifest is not None
    facts.manifest = facts.manifest.model_copy(update=changes)


def _entry(lin: Lineage, round_number: int, index: int, **changes: object) -> None:
    facts = lin.rounds[round_number - 1]
    assert facts.manifest is not None
    entries = list(facts.manifest.participants)
    position = next(i for i, e in enumerate(entries) if e.dataset_id == DATASETS[index])
    entries[position] = entries[position].model_copy(update=changes)
    facts.manifest = facts.manifest.model_copy(update={"participants": entries})
    participant(lin, round_number, index).entry = entries[position]


def _grant(lin: Lineage, round_number: int, index: int, **changes: object) -> None:
    p = participant(lin, round_number, index)
    assert p.grant is not None
    p.grant = dataclasses.replace(p.grant, **changes)


def _set(round_number: int, index: int, **changes: object) -> Callable[[Lineage], None]:
    def lie(lin: Lineage) -> None:
        p = participant(lin, round_number, index)
        for name, value in changes.items():
            setattr(p, name, value)

    return lie


def _round(round_number: int, **changes: object) -> Callable[[Lineage], None]:
    def lie(lin: Lineage) -> None:
        for name, value in changes.items():
            setattr(lin.rounds[round_number - 1], name, value)

    return lie


def _lineage_set(**changes: object) -> Callable[[Lineage], None]:
    def lie(lin: Lineage) -> None:
        for name, value in changes.items():
            setattr(lin, name, value)

    return lie


def _on_chain(**changes: object) -> Callable[[Lineage], None]:
    def lie(lin: Lineage) -> None:
        assert lin.on_chain_job is not None
        lin.on_chain_job = dataclasses.replace(lin.on_chain_job, **changes)

    return lie


def _rounds_renumbered(lin: Lineage) -> None:
    lin.all_rounds = [dataclasses.replace(lin.all_rounds[0], round=2), lin.all_rounds[1]]


def _no_rounds(lin: Lineage) -> None:
    lin.all_rounds = []
    lin.rounds = []
    lin.target = dataclasses.replace(lin.target, round=0)
    assert lin.on_chain_job is not None
    lin.on_chain_job = dataclasses.replace(lin.on_chain_job, last_round=0, last_digest=INITIAL)


def _no_rounds_wrong_digest(lin: Lineage) -> None:
    _no_rounds(lin)
    lin.target = dataclasses.replace(lin.target, digest=OTHER, kind="model-digest", text="0xabc")


def _no_rounds_initial_digest(lin: Lineage) -> None:
    _no_rounds(lin)
    lin.target = dataclasses.replace(lin.target, digest=INITIAL, kind="model-digest", text="0x0760")


def _target(**changes: object) -> Callable[[Lineage], None]:
    def lie(lin: Lineage) -> None:
        lin.target = dataclasses.replace(lin.target, **changes)

    return lie


def _target_right_digest(lin: Lineage) -> None:
    lin.target = dataclasses.replace(
        lin.target, digest=lin.rounds[1].committed.model_digest, kind="model-cid"
    )


def _committed(round_number: int, **changes: object) -> Callable[[Lineage], None]:
    def lie(lin: Lineage) -> None:
        facts = lin.rounds[round_number - 1]
        facts.committed = dataclasses.replace(facts.committed, **changes)

    return lie


def _participants_differ(lin: Lineage) -> None:
    _committed(1, participants=(DATASETS[0], DATASETS[1], 5))(lin)


def _participants_missing(lin: Lineage) -> None:
    _committed(1, participants=(DATASETS[0], DATASETS[1], DATASETS[2], 5))(lin)


def _participants_extra(lin: Lineage) -> None:
    _committed(1, participants=(DATASETS[0], DATASETS[1]))(lin)


def _two_parents(lin: Lineage) -> None:
    _committed(2, parent_digest=OTHER)(lin)
    _manifest(lin, 2, parent_digest=OTHER)


def _participants_two_each_way(lin: Lineage) -> None:
    _committed(1, participants=(DATASETS[0], 5, 6))(lin)


def _ledger_case(lin: Lineage) -> None:
    lin.training_ledger = LEDGER.lower()  # same address, other case: not a lie


def _weight(lin: Lineage) -> None:
    entry = participant(lin, 1, 1).entry
    assert entry is not None
    _entry(lin, 1, 1, weight=entry.weight + 2e-12)


def _weight_within_tolerance(lin: Lineage) -> None:
    entry = participant(lin, 1, 1).entry
    assert entry is not None
    _entry(lin, 1, 1, weight=entry.weight + 5e-13)


def _revoked(lin: Lineage) -> None:
    revocation = GrantEvent(
        DATASETS[0], LAB, purpose_id("ai-training"), "revoked", None, None, 35, 1, tx("r"), 5
    )
    _grant(lin, 1, 0, status=GrantStatus.REVOKED, revocation=revocation)
    participant(lin, 1, 0).chain_status = AuthorizationStatus.REVOKED


def _every_detail(lin: Lineage) -> None:
    revocation = GrantEvent(
        DATASETS[0], LAB, purpose_id("ai-training"), "revoked", None, None, 35, 1, tx("r"), 5
    )
    transfer = DeedTransfer(DATASETS[0], HOSPITALS[0].address, LAB, 36, 0, tx("t"), 6)
    _grant(
        lin,
        1,
        0,
        status=GrantStatus.UNKNOWN_DATASET,
        revocation=revocation,
        owner_change=transfer,
        retired_block=37,
        dataset_registered=False,
    )


def _no_grant(lin: Lineage) -> None:
    _grant(lin, 2, 1, status=GrantStatus.NO_GRANT, issued=None)


def _contract_disagrees(lin: Lineage) -> None:
    participant(lin, 1, 2).chain_status = AuthorizationStatus.EXPIRED


def _contract_disagrees_end_of_block_other(lin: Lineage) -> None:
    p = participant(lin, 1, 2)
    p.chain_status = AuthorizationStatus.EXPIRED
    assert p.grant is not None
    p.grant_end_of_block = dataclasses.replace(p.grant, status=GrantStatus.REVOKED)


def _contract_explained_by_end_of_block(lin: Lineage) -> None:
    p = participant(lin, 1, 2)
    p.chain_status = AuthorizationStatus.REVOKED
    assert p.grant is not None
    p.grant_end_of_block = dataclasses.replace(p.grant, status=GrantStatus.REVOKED)


def _no_state(lin: Lineage) -> None:
    lin.no_state_block = 40
    for facts in lin.rounds:
        for p in facts.participants:
            p.chain_status = None


def _other_signer(lin: Lineage) -> None:
    p = participant(lin, 1, 0)
    p.recovered_signer = OTHER_ADDRESS
    _entry(lin, 1, 0, node=OTHER_ADDRESS)


def _other_signer_no_state(lin: Lineage) -> None:
    _other_signer(lin)
    lin.no_state_block = 40


def _other_signer_known_eoa(lin: Lineage) -> None:
    _other_signer_no_state(lin)
    participant(lin, 1, 0).owner_is_contract = False


def _wallet(accepts: bool | None, note: str = "") -> Callable[[Lineage], None]:
    def lie(lin: Lineage) -> None:
        _other_signer(lin)
        p = participant(lin, 1, 0)
        p.owner_is_contract = True
        p.wallet_accepts = accepts
        p.wallet_note = note

    return lie


def _wallet_without_signer(lin: Lineage) -> None:
    _wallet(True, "the owner wallet accepts the signature (EIP-1271) at block 40")(lin)
    participant(lin, 1, 0).recovered_signer = None


def _bad_signature(lin: Lineage) -> None:
    p = participant(lin, 2, 1)
    p.recovered_signer = None
    p.signature_error = "signature is malleable or out of range (s must be in the lower half)"


def _registry_disagrees(lin: Lineage) -> None:
    participant(lin, 1, 1).chain_state = DatasetState(OTHER_ADDRESS, 1, False)


def _registry_end_of_block(lin: Lineage) -> None:
    p = participant(lin, 1, 1)
    p.chain_state = DatasetState(OTHER_ADDRESS, 1, False)
    p.owner_end_of_block = OTHER_ADDRESS


def _not_in_job(lin: Lineage) -> None:
    participant(lin, 2, 0).in_job = False


def _update(status: str | None, note: str) -> Callable[[Lineage], None]:
    def lie(lin: Lineage) -> None:
        p = participant(lin, 1, 1)
        p.update_status = status
        p.update_note = note
        if status == "missing":
            lin.rounds[0].aggregation_missing = (DATASETS[1],)
            lin.rounds[0].aggregate_digest = None

    return lie


def _two_missing(lin: Lineage) -> None:
    for i in (0, 1):
        p = participant(lin, 1, i)
        p.update_status = "missing"
        p.update_note = "update gone is not in the content store"
    lin.rounds[0].aggregation_missing = (DATASETS[0], DATASETS[1])
    lin.rounds[0].aggregate_digest = None


def _two_bad(lin: Lineage) -> None:
    for i in (0, 2):
        p = participant(lin, 1, i)
        p.update_status = "bad"
        p.update_note = "update x hashes to 0x00, not the attested update_digest 0x11"


def _bad_and_missing_entryless(lin: Lineage) -> None:
    p = participant(lin, 1, 1)
    p.entry = None
    p.update_status = "bad"  # without an entry the update is not the round's: no aggregation failure


def _privacy(index: int, round_number: int, **changes: object) -> Callable[[Lineage], None]:
    def lie(lin: Lineage) -> None:
        entry = participant(lin, round_number, index).entry
        assert entry is not None
        privacy = entry.privacy
        fields = {} if privacy is None else privacy.model_dump()
        fields.update(changes)
        _entry(lin, round_number, index, privacy=ParticipantPrivacy.model_construct(**fields))

    return lie


def _dp_claim(round_number: int, rounds: int) -> int:
    return epsilon_e6(cumulative_epsilon([DP] * rounds, 1e-5))


def _terms(index: int, round_number: int, terms: GrantTerms | None) -> Callable[[Lineage], None]:
    return _set(round_number, index, terms=terms)


def _no_dp_under_a_budget(lin: Lineage) -> None:
    _terms(0, 1, GrantTerms(3.0, 1e-6))(lin)


def _dp_no_budget(lin: Lineage) -> None:
    for r in (1, 2):
        _terms(2, r, GrantTerms())(lin)


def _dp_terms_unread(lin: Lineage) -> None:
    _terms(2, 2, None)(lin)


def _dp_terms_unread_both(lin: Lineage) -> None:
    _terms(2, 1, None)(lin)
    _terms(2, 2, None)(lin)


def _dp_budget_exceeded(lin: Lineage) -> None:
    for r in (1, 2):
        _terms(2, r, GrantTerms(3.0, 1e-5))(lin)


def _dp_budget_at_the_limit(lin: Lineage) -> None:
    attested = _dp_claim(2, 2)
    for r in (1, 2):
        _terms(2, r, GrantTerms(round(attested / 1e6 + 0.005, 2), 1e-5))(lin)


def _dp_earlier_use(lin: Lineage) -> None:
    # the first round attests earlier use (another job), the second the same total again: below
    _privacy(2, 1, epsilon_spent_e6=_dp_claim(1, 1) + 1_000_000)(lin)


def _dp_earlier_use_as_much_as_the_next_round(lin: Lineage) -> None:
    # the first round attests (with an earlier use) what the second attests: not below, allowed
    _privacy(2, 1, epsilon_spent_e6=_dp_claim(2, 2))(lin)


def _dp_within_rounding_then_overstated(lin: Lineage) -> None:
    # a first round 1e-6 off is exact (no earlier use): a later overstatement is then a lie
    _privacy(2, 1, epsilon_spent_e6=_dp_claim(1, 1) + 1)(lin)
    _privacy(2, 2, epsilon_spent_e6=_dp_claim(2, 2) + 2)(lin)


def _dp_understated(lin: Lineage) -> None:
    _privacy(2, 2, epsilon_spent_e6=_dp_claim(2, 2) - 2)(lin)


def _dp_within_rounding(lin: Lineage) -> None:
    _privacy(2, 2, epsilon_spent_e6=_dp_claim(2, 2) - 1)(lin)
    _privacy(2, 1, epsilon_spent_e6=_dp_claim(1, 1) + 1)(lin)


def _dp_overstated(lin: Lineage) -> None:
    _privacy(2, 2, epsilon_spent_e6=_dp_claim(2, 2) + 2)(lin)


def _dp_bad_parameters(lin: Lineage) -> None:
    _privacy(2, 1, steps=0)(lin)


def _dp_second_dataset(lin: Lineage) -> None:
    # dataset 1 trains with DP in round 2 only, with no budget read (terms unknown)
    claim = _dp_claim(1, 1)
    _privacy(1, 2, **dataclasses.asdict(DP), epsilon_spent_e6=claim)(lin)
    _terms(1, 2, None)(lin)


def _dp_budget_spent_exactly(lin: Lineage) -> None:
    # an earlier use attested in round 1 brings round 2 to the budget (hundredths, as stored) exactly
    budget_e6 = -(-_dp_claim(2, 2) // 10_000) * 10_000 + 10_000
    earlier = budget_e6 - _dp_claim(2, 2)
    _privacy(2, 1, epsilon_spent_e6=_dp_claim(1, 1) + earlier)(lin)
    _privacy(2, 2, epsilon_spent_e6=budget_e6)(lin)
    for r in (1, 2):
        _terms(2, r, GrantTerms(budget_e6 / 1e6, 1e-5))(lin)


def _dp_nothing_spent(lin: Lineage) -> None:
    # so much noise that the rounds compose to epsilon 0 at delta 0.1: attesting 0 twice is right
    silent = dataclasses.replace(DP, noise_multiplier_e6=10**15, sample_rate_e9=1, steps=1)
    for r in (1, 2):
        _privacy(2, r, **dataclasses.asdict(silent), epsilon_spent_e6=0)(lin)
        _terms(2, r, GrantTerms(EPSILON, 0.1))(lin)


def _dp_bad_parameters_before_another_dataset(lin: Lineage) -> None:
    # dataset 1's claim is unusable; dataset 2's, later in the same round, is still checked
    unusable = {**dataclasses.asdict(DP), "steps": 0}
    _privacy(1, 1, **unusable, epsilon_spent_e6=_dp_claim(1, 1))(lin)
    _privacy(2, 1, epsilon_spent_e6=_dp_claim(1, 1) - 2)(lin)


def _dp_without_a_budget_before_another_dataset(lin: Lineage) -> None:
    # dataset 1 trains with DP under a grant without a budget; dataset 2's understatement is still seen
    _privacy(1, 1, **dataclasses.asdict(DP), epsilon_spent_e6=_dp_claim(1, 1))(lin)
    _privacy(2, 1, epsilon_spent_e6=_dp_claim(1, 1) - 2)(lin)


LIES: dict[str, Callable[[Lineage], None]] = {
    "job unreadable": _lineage_set(on_chain_job=None, on_chain_job_error="execution reverted"),
    "job coordinator": _on_chain(coordinator=OTHER_ADDRESS),
    "job purpose": _on_chain(purpose=OTHER),
    "job spec": _on_chain(spec_digest=OTHER),
    "job rounds renumbered": _rounds_renumbered,
    "job last round": _on_chain(last_round=3),
    "job last digest": _on_chain(last_digest=OTHER),
    "job two facts": _on_chain(coordinator=OTHER_ADDRESS, purpose=OTHER),
    "job without rounds": _no_rounds,
    "target initial digest wrong": _no_rounds_wrong_digest,
    "target initial digest right": _no_rounds_initial_digest,
    "target round not committed": _target(round=3),
    "target digest wrong": _target(digest=OTHER, kind="model-file", text="model.safetensors"),
    "target digest right": _target_right_digest,
    "index problems": _lineage_set(
        index_problems=[(None, "job 7: the index has no job"), (2, "round 2: gone")]
    ),
    "manifest unavailable": _round(1, manifest=None, manifest_error="manifest bafy does not parse: bad"),
    "model unavailable": _round(2, model_bytes_digest=None, model_error="model bafk does not resolve"),
    "model other bytes": _round(2, model_bytes_digest=OTHER),
    "committed parent": _committed(2, parent_digest=OTHER),
    "manifest parent": lambda lin: _manifest(lin, 2, parent_digest=OTHER),
    "committed and manifest parent": _two_parents,
    "manifest job": lambda lin: _manifest(lin, 1, job_id=8),
    "manifest round": lambda lin: _manifest(lin, 1, round=2),
    "manifest job and round": lambda lin: _manifest(lin, 1, job_id=8, round=2),
    "manifest model digest": lambda lin: _manifest(lin, 1, model_digest=OTHER),
    "manifest root": lambda lin: _manifest(lin, 1, attestations_root=OTHER),
    "manifest lists and omits": _participants_differ,
    "manifest omits": _participants_missing,
    "manifest lists extra": _participants_extra,
    "manifest lists two and omits two": _participants_two_each_way,
    "manifest chain": lambda lin: _manifest(lin, 1, chain_id=1),
    "manifest ledger": lambda lin: _manifest(lin, 1, training_ledger=OTHER_ADDRESS),
    "ledger address case": _ledger_case,
    "manifest purpose": lambda lin: _manifest(lin, 1, purpose=purpose_id("analytics")),
    "manifest spec": lambda lin: _manifest(lin, 1, spec_digest=OTHER),
    "root differs": _round(1, computed_root=OTHER),
    "weight off": _weight,
    "weight within tolerance": _weight_within_tolerance,
    "attestation without manifest entry": _set(1, 1, entry=None),
    "attestation no owner": _set(1, 1, owner=None),
    "attestation no owner nor signer": _set(1, 1, owner=None, recovered_signer=None, signature_error="bad v"),
    "attestation registry disagrees": _registry_disagrees,
    "attestation registry end of block": _registry_end_of_block,
    "attestation other signer": _other_signer,
    "attestation node differs": _set(1, 0, recovered_signer=OTHER_ADDRESS),
    "attestation other signer no state": _other_signer_no_state,
    "attestation other signer known eoa": _other_signer_known_eoa,
    "attestation bad signature": _bad_signature,
    "wallet not asked": _wallet(None),
    "wallet not asked with note": _wallet(None, "not checked: node has no state at block 40"),
    "wallet accepts": _wallet(True, "the owner wallet accepts the signature (EIP-1271) at block 40"),
    "wallet accepts without signer": _wallet_without_signer,
    "wallet refuses": _wallet(False, "the owner wallet refuses the signature (EIP-1271) at block 40"),
    "grant not in job": _not_in_job,
    "grant revoked": _revoked,
    "grant every detail": _every_detail,
    "grant never issued": _no_grant,
    "grant contract disagrees": _contract_disagrees,
    "grant contract disagrees at end of block too": _contract_disagrees_end_of_block_other,
    "grant contract explained by end of block": _contract_explained_by_end_of_block,
    "grant contract silent": _set(1, 1, chain_status=None),
    "grant no state": _no_state,
    "update missing": _update("missing", "update bafk is not in the content store"),
    "update bad": _update("bad", "update bafk hashes to 0x00, not the attested update_digest 0x11"),
    "update not fetched": _update(None, ""),
    "updates missing": _two_missing,
    "updates bad": _two_bad,
    "update bad without entry": _bad_and_missing_entryless,
    "aggregation error": _round(
        2, aggregate_digest=None, aggregation_error="the attested updates do not aggregate"
    ),
    "aggregation other model": _round(2, aggregate_digest=OTHER),
    "privacy no dp under a budget": _no_dp_under_a_budget,
    "privacy no dp under a budget below one": _terms(0, 1, GrantTerms(0.5, 1e-6)),
    "privacy dp without a budget": _dp_no_budget,
    "privacy terms unread": _dp_terms_unread,
    "privacy terms never read": _dp_terms_unread_both,
    "privacy budget exceeded": _dp_budget_exceeded,
    "privacy budget at the limit": _dp_budget_at_the_limit,
    "privacy earlier use then below": _dp_earlier_use,
    "privacy earlier use as much as the next round": _dp_earlier_use_as_much_as_the_next_round,
    "privacy within rounding then overstated": _dp_within_rounding_then_overstated,
    "privacy understated": _dp_understated,
    "privacy within rounding": _dp_within_rounding,
    "privacy overstated": _dp_overstated,
    "privacy bad parameters": _dp_bad_parameters,
    "privacy second dataset": _dp_second_dataset,
    "privacy budget spent exactly": _dp_budget_spent_exactly,
    "privacy nothing spent": _dp_nothing_spent,
    "privacy bad parameters before another dataset": _dp_bad_parameters_before_another_dataset,
    "privacy without a budget before another dataset": _dp_without_a_budget_before_another_dataset,
}
# Cases that are not lies: the verdict stays VERIFIED (or not verified) and every check is listed.
HONEST = {
    "ledger address case",
    "weight within tolerance",
    "target digest right",
    "target initial digest right",
    "grant contract explained by end of block",
    "job without rounds",
    "attestation registry end of block",
    "wallet accepts",
    "wallet accepts without signer",
    "privacy dp without a budget",
    "privacy budget at the limit",
    "privacy budget spent exactly",
    "privacy nothing spent",
    "privacy within rounding",
    "privacy earlier use as much as the next round",
}


def _row(check: Check) -> dict[str, object]:
    row = check.to_json()
    row.pop("ok")
    return row


def _outcome(lie: Callable[[Lineage], None]) -> tuple[list[Check], list[Check]]:
    lin = lineage()
    lie(lin)
    checks = evaluate(lin)
    return checks, [c for c in checks if not c.ok]


def test_honest_lineage_passes_every_check_with_its_message() -> None:
    checks = evaluate(lineage())
    assert all(c.status is CheckStatus.PASS for c in checks)
    assert {c.name for c in checks} <= set(CHECK_NAMES)
    golden("checks-honest.json", as_json([_row(c) for c in checks]))


def test_each_lie_is_reported_with_the_reviewed_messages() -> None:
    outcomes: dict[str, object] = {}
    for name, lie in LIES.items():
        checks, not_passed = _outcome(lie)
        if name in HONEST:
            assert not any(c.failed for c in checks), (name, [c.message for c in not_passed])
            outcomes[name] = {
                "passed": [_row(c) for c in checks if c.ok and _differs(name, c)],
                "other": [_row(c) for c in not_passed],
            }
        else:
            assert not_passed, f"{name}: every check passed"
            outcomes[name] = [_row(c) for c in not_passed]
    golden("checks-lies.json", as_json(outcomes))


_HONEST_MESSAGES: set[str] = set()


def _differs(name: str, check: Check) -> bool:
    """Whether a passing check's message is not the honest lineage's (it says something about the case)."""
    if not _HONEST_MESSAGES:
        _HONEST_MESSAGES.update(c.message for c in evaluate(lineage()))
    return check.message not in _HONEST_MESSAGES


@pytest.mark.parametrize("status", list(CheckStatus))
def test_check_status_properties(status: CheckStatus) -> None:
    check = Check("job", status, "job 7", "m", 1, DATASETS[0])
    assert check.ok is (status == "pass")
    assert check.failed is (status == "fail")
    assert check.unverified is (status in ("not-verifiable", "not-checked"))
    assert check.to_json() == {
        "name": "job",
        "status": str(status),
        "ok": status == "pass",
        "subject": "job 7",
        "message": "m",
        "round": 1,
        "dataset_id": f"0x{DATASETS[0]:064x}",
    }
    assert Check("job", status, "s", "m").to_json()["dataset_id"] is None


def test_dp_dataset_is_the_third() -> None:
    assert DATASETS[2] == DP_DATASET
