"""The PROV-JSON rendering on in-memory lineages (no chain): reviewed documents and edge cases."""

from __future__ import annotations

import dataclasses
import time

import pytest
from synthetic import (
    DATASETS,
    HOSPITALS,
    LAB,
    VARIANTS,
    as_json,
    far_from_utc,
    golden,
    lineage,
    participant,
    report,
)

from ledger.audit.prov import SOV_NAMESPACE

__all__ = ["far_from_utc"]  # the fixture, imported for pytest


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_prov_document_is_the_reviewed_one(variant: str) -> None:
    golden(f"prov-{variant}.json", as_json(report(VARIANTS[variant]()).to_prov()))


def test_prefix_agents_and_initial_model() -> None:
    doc = report(lineage()).to_prov()
    assert doc["prefix"] == {"sov": SOV_NAMESPACE} == {"sov": "https://sovereign-ledger.example/ns/prov#"}
    assert doc["agent"][f"sov:coordinator_{LAB.lower()}"] == {
        "prov:type": {"$": "prov:Organization", "type": "prov:QUALIFIED_NAME"},
        "prov:label": f"coordinator {LAB} (job 7)",
        "sov:address": LAB,
    }
    node = doc["agent"][f"sov:node_{HOSPITALS[0].address.lower()}"]
    assert node["prov:type"] == {"$": "prov:SoftwareAgent", "type": "prov:QUALIFIED_NAME"}


def _usage(doc: dict[str, object], dataset_id: int, round_number: int) -> dict[str, object]:
    used = doc["used"]
    assert isinstance(used, dict)
    return next(
        u
        for u in used.values()
        if u["prov:entity"] == f"sov:dataset_{dataset_id:064x}"
        and u["prov:activity"] == f"sov:round_7_{round_number}"
    )


@pytest.mark.parametrize(
    ("expires_at", "shown"),
    [
        (2**64 - 1, "9999-12-31T23:59:59Z"),  # a grant "forever": xsd:dateTime stops at year 9999
        (253402300799, "9999-12-31T23:59:59Z"),
        (253402300798, "9999-12-31T23:59:58Z"),
    ],
)
def test_grant_expiry_is_capped_at_the_last_xsd_datetime(expires_at: int, shown: str) -> None:
    lin = lineage()
    p = participant(lin, 1, 0)
    assert p.grant is not None and p.grant.issued is not None
    p.grant = dataclasses.replace(p.grant, issued=dataclasses.replace(p.grant.issued, expires_at=expires_at))
    usage = _usage(report(lin).to_prov(), DATASETS[0], 1)
    assert usage["sov:grantExpiresAt"] == {"$": shown, "type": "xsd:dateTime"}
    assert usage["sov:grantNotBefore"] == {"$": "2026-01-01T00:00:00Z", "type": "xsd:dateTime"}


def test_grant_without_a_window_has_no_window_attributes() -> None:
    lin = lineage()
    for attribute in ("not_before", "expires_at"):
        p = participant(lin, 1, 0)
        assert p.grant is not None and p.grant.issued is not None
        issued = dataclasses.replace(p.grant.issued, **{attribute: None})
        p.grant = dataclasses.replace(p.grant, issued=issued)
        usage = _usage(report(lin).to_prov(), DATASETS[0], 1)
        assert usage["sov:grantStatus"] == "authorized"
        assert "sov:grantNotBefore" not in usage and "sov:grantExpiresAt" not in usage
        assert "sov:grantIssuedTx" not in usage


def test_a_usage_without_an_attestation_and_signer_has_no_node() -> None:
    lin = lineage(1)
    p = participant(lin, 1, 1)
    p.entry = None
    p.recovered_signer = None
    doc = report(lin).to_prov()
    usage = _usage(doc, DATASETS[1], 1)
    assert "sov:numExamples" not in usage and "sov:attestationSigner" not in usage
    assert usage["sov:verified"] is False
    assert f"sov:node_{HOSPITALS[1].address.lower()}" not in doc["agent"]
    delegations = [d["prov:delegate"] for d in doc["actedOnBehalfOf"].values()]
    assert delegations == [f"sov:node_{HOSPITALS[i].address.lower()}" for i in (0, 2)]


@pytest.mark.usefixtures("far_from_utc")
def test_times_are_utc_whatever_the_local_zone() -> None:
    assert time.strftime("%H:%M", time.localtime(0)) == "05:30"  # the zone took effect
    usage = _usage(report(lineage()).to_prov(), DATASETS[0], 1)
    assert usage["sov:grantNotBefore"] == {"$": "2026-01-01T00:00:00Z", "type": "xsd:dateTime"}
