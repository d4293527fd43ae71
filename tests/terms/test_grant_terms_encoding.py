"""`GrantTerms`: the on-chain encoding round-trips; each bound is accepted exactly, refused one past."""

from __future__ import annotations

import pytest

from ledger.chain.types import GrantRecord, GrantTerms
from ledger.errors import GrantTermsError, LedgerError


@pytest.mark.parametrize(
    ("terms", "encoded"),
    [
        (GrantTerms(), (0, 0, 0, 0)),
        (GrantTerms(3, 1e-5, 3, 50), (300, 5, 3, 50)),
        (GrantTerms(0.01, 1e-1), (1, 1, 0, 0)),
        (GrantTerms(655.35, 1e-255, 255, 65535), (65535, 255, 255, 65535)),
        (GrantTerms(min_participants=2), (0, 0, 2, 0)),
    ],
)
def test_round_trip(terms: GrantTerms, encoded: tuple[int, int, int, int]) -> None:
    assert terms.to_chain() == encoded
    assert GrantTerms.from_chain(*encoded) == terms


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"epsilon": 655.36, "delta": 1e-5},
            "epsilon 655.36 is out of range: 0 (DP not required) or 0.01 to",
        ),
        ({"epsilon": 0.005, "delta": 1e-5}, "the smallest budget is 0.01"),
        ({"epsilon": -0.01, "delta": 1e-5}, "epsilon -0.01 is out of range"),
        ({"epsilon": 1.2e308, "delta": 1e-5}, "epsilon 1.2e+308 is out of range"),
        ({"epsilon": float("nan"), "delta": 1e-5}, "epsilon is nan"),
        ({"epsilon": 1, "delta": 1.0}, "delta 1 is out of range"),
        ({"epsilon": 1, "delta": 1e-256}, "delta 1e-256 is out of range: 1e-1 to 1e-255"),
        ({"epsilon": 1, "delta": 3e-6}, "use 1e-6 (or 1e-5 if a larger delta is acceptable)"),
        ({"epsilon": 1, "delta": 0.5}, "delta 0.5 is not a power of ten (stored as 10^-k); use 1e-1"),
        ({"delta": 1e-5}, "epsilon 0 and delta 1e-05: set both"),
        ({"min_participants": 256}, "min_participants is 256"),
        ({"min_participants": -1}, "min_participants is -1"),
        ({"max_rounds": 65536}, "max_rounds is 65536"),
        ({"max_rounds": True}, "max_rounds is True"),
    ],
)
def test_refused_with_what_is_valid(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(GrantTermsError) as caught:
        GrantTerms(**kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value), str(caught.value)
    assert isinstance(caught.value, LedgerError) and isinstance(caught.value, ValueError)


def test_allows_round_matches_the_contract_rule() -> None:
    terms = GrantTerms(min_participants=3, max_rounds=50)
    assert terms.allows_round(3, 50)
    assert not terms.allows_round(2, 50)
    assert not terms.allows_round(3, 51)
    assert GrantTerms().allows_round(1, 10**9)


def test_grant_record_terms() -> None:
    record = GrantRecord(1, 2, 0, False, False, 0, 3.0, 1e-5, 3, 50)
    assert record.terms == GrantTerms(3, 1e-5, 3, 50) and record.terms.requires_dp
    assert GrantRecord(1, 2, 0, False).terms.is_empty
