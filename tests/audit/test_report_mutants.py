"""The audit report's verdict, summary, counts and renderings, on in-memory lineages (no chain).

Fast cases for `make mutation` (they run first): the JSON report and the table are compared
with reviewed renderings (`tests/audit/golden/`), the verdict logic with exact strings.
"""

from __future__ import annotations

import dataclasses
import io

import pytest
import synthetic
from rich.console import Console
from synthetic import (
    DATASETS,
    VARIANTS,
    as_json,
    broken_lineage,
    ds,
    golden,
    lineage,
    rendered_table,
    report,
    withheld_lineage,
)

from ledger.audit.checks import CHECK_NAMES, FAIL, NOT_CHECKED, NOT_VERIFIABLE, PASS, Check
from ledger.audit.lineage import AuditTarget
from ledger.audit.report import REPORT_SCHEMA, AuditReport, _grant_json, _preparation
from ledger.index import GrantStatus


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_json_report_is_the_reviewed_one(variant: str) -> None:
    document = report(VARIANTS[variant]()).to_json()
    assert document["schema"] == REPORT_SCHEMA == "sovereign-ledger/audit-report/v1"
    # Every check name has a count; those no check of these lineages used are all zero (and
    # new check kinds must not change the reviewed file).
    counts = document["counts"]
    assert list(counts) == list(CHECK_NAMES)
    document["counts"] = {name: c for name, c in counts.items() if any(c.values())}
    golden(f"report-{variant}.json", as_json(document))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("all_checks", [False, True])
def test_table_is_the_reviewed_one(variant: str, all_checks: bool) -> None:
    golden(
        f"table-{variant}{'-all' if all_checks else ''}.txt",
        rendered_table(report(VARIANTS[variant]()), all_checks=all_checks),
    )


def test_verdicts_labels_and_exit_codes() -> None:
    honest, broken, withheld = report(lineage()), report(broken_lineage()), report(withheld_lineage())
    assert (honest.ok, honest.verdict, honest.verdict_label, honest.exit_code) == (
        True,
        "verified",
        "VERIFIED",
        0,
    )
    assert (broken.ok, broken.verdict, broken.verdict_label, broken.exit_code) == (
        False,
        "failed",
        "FAILED",
        1,
    )
    assert (withheld.ok, withheld.verdict, withheld.verdict_label, withheld.exit_code) == (
        False,
        "not-verified",
        "NOT VERIFIED",
        1,
    )
    assert honest.failures == [] and honest.unverified == []
    assert [(c.name, c.status) for c in withheld.unverified] == [
        ("update", NOT_VERIFIABLE),
        ("aggregation", NOT_VERIFIABLE),
    ]
    assert withheld.failures == []
    assert [c.name for c in broken.failures] == ["grant", "attestation", "attestation"]


def test_summaries_name_the_target_and_first_problem() -> None:
    assert report(lineage()).summary() == (
        "VERIFIED: job 7 — job 7 round 2; all 40 checks passed (2 round(s), 6 participation(s))"
    )
    withheld = report(withheld_lineage())
    assert withheld.summary() == (
        "NOT VERIFIED: job 7 — no check failed, but 2 of 40 checks could not be made; first: "
        + withheld.unverified[0].message
    )
    broken = report(broken_lineage())
    assert broken.summary() == ("FAILED: job 7 — 3 of 40 checks failed; first: " + broken.failures[0].message)


def _report_of(*statuses: str) -> AuditReport:
    codes = {"pass": PASS, "fail": FAIL, "nv": NOT_VERIFIABLE, "nc": NOT_CHECKED}
    names = ["job", "grant", "grant", "update", "bogus"]
    checks = [Check(names[i], codes[s], f"s{i}", f"m{i}") for i, s in enumerate(statuses)]
    return AuditReport(lineage(), checks)


def test_counts_per_check_name() -> None:
    r = _report_of("pass", "fail", "nc", "nv", "pass")
    counts = r.counts()
    assert list(counts)[: len(CHECK_NAMES)] == list(CHECK_NAMES)
    assert counts["job"] == (1, 0, 0)
    assert counts["grant"] == (0, 1, 1)
    assert counts["update"] == (0, 0, 1)
    assert counts["bogus"] == (1, 0, 0)  # a name outside CHECK_NAMES is still counted
    assert counts["privacy"] == (0, 0, 0)
    assert r.by_name()["grant"] == (0, 1)
    assert r.by_name()["job"] == (1, 0)
    assert r.verdict == "failed"
    assert _report_of("pass", "nc").verdict == "not-verified"
    assert (
        _report_of("pass", "nv")
        .summary()
        .startswith("NOT VERIFIED: job 7 — no check failed, but 1 of 2 checks")
    )
    assert _report_of("pass", "pass").verdict == "verified"


def test_privacy_budgets_of_the_dp_dataset() -> None:
    budgets = report(lineage()).privacy_budgets()
    assert [b.dataset_id for b in budgets] == [DATASETS[2]]
    assert budgets[0].private_rounds == 2
    assert budgets[0].epsilon_budget == 8.0


def test_preparation_line_of_each_spec_shape() -> None:
    assert _preparation(None) == "job spec: not in the content store (only its digest is on chain)"
    assert _preparation({"preprocessing": None}) == (
        "job spec: found by its on-chain digest; no preprocessing (nodes hold prepared features)"
    )
    spec = {
        "preprocessing": {
            "label": "y",
            "columns": [{"kind": "numeric"}, {"kind": "categorical"}, {"kind": "numeric"}, "junk"],
        }
    }
    assert _preparation(spec) == (
        "job spec: found by its on-chain digest; preprocessing: label 'y', 2 numeric column(s) standardised "
        "with fixed constants and imputed, 1 one-hot encoded"
    )
    assert _preparation({"preprocessing": {}}) == (
        "job spec: found by its on-chain digest; preprocessing: label None, 0 numeric column(s) standardised "
        "with fixed constants and imputed, 0 one-hot encoded"
    )


def test_grant_json_of_no_grant() -> None:
    assert _grant_json(None) is None
    # a grant state with no issue behind it (a use the logs cannot explain): its fields are null
    never = dataclasses.replace(synthetic.grant(0, 30, 1000, GrantStatus.NO_GRANT), issued=None)
    assert _grant_json(never) == {
        "status": "no_grant",
        "not_before": None,
        "expires_at": None,
        "issued_block": None,
        "issued_tx": None,
        "revoked_block": None,
        "retired_block": None,
        "owner_changed_block": None,
    }
    issued = synthetic.grant(1, 30, 1000)
    assert _grant_json(issued) == {
        **_grant_json(never),  # type: ignore[dict-item]
        "status": "authorized",
        "not_before": synthetic.T0,
        "expires_at": synthetic.T0 + 86_400,
        "issued_block": 15,
        "issued_tx": synthetic.tx("grant 1"),
    }


def test_print_defaults_to_a_console_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    report(lineage()).print()
    out = capsys.readouterr().out
    assert "VERIFIED: job 7" in out and "lineage of job 7" in out
    assert "all checks" not in out  # only failures and checks not made, by default: none here
    report(lineage()).print(all_checks=True)
    assert "all checks" in capsys.readouterr().out


def test_table_marks_each_round() -> None:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(report(broken_lineage()).table())
    rows = [
        line for line in out.getvalue().splitlines() if line.startswith("│ 1 ") or line.startswith("│ 2 ")
    ]
    assert "FAIL" in rows[0] and "?" in rows[0]  # round 1: a failed grant, model CID unknown
    assert "FAIL" in rows[1]
    withheld = io.StringIO()
    Console(file=withheld, width=200, color_system=None).print(report(withheld_lineage()).table())
    rows = [
        line
        for line in withheld.getvalue().splitlines()
        if line.startswith("│ 1 ") or line.startswith("│ 2 ")
    ]
    assert " ok " in rows[0] and "not verified" in rows[1]
    assert ds(DATASETS[2])[:18] + "…" in withheld.getvalue()


def _plain(renderable: object, width: int = 200) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


def test_table_defaults_to_failures_and_lists_kinds_only_made() -> None:
    assert "all checks" not in _plain(report(lineage()).table())
    assert "failures and checks not made" in _plain(report(withheld_lineage()).table())
    # a kind with only checks not made still gets its row; one with none does not
    kinds = _plain(_report_of("pass", "nc").table()).split("failures and checks not made")[0]
    assert "│ grant " in kinds and "│ update " not in kinds


def test_long_values_fold_in_a_narrow_terminal() -> None:
    # a 64-digit dataset id is longer than the message column at 100 columns: folded, not cut
    golden("table-broken-narrow.txt", _plain(report(broken_lineage()).table(all_checks=True), width=100))
    assert (
        "…" not in _plain(report(broken_lineage()).table(all_checks=True), width=100).split("all checks")[1]
    )


def test_json_names_a_model_targets_digest_and_rounds_the_time() -> None:
    lin = synthetic.lineage()
    digest = lin.rounds[-1].committed.model_digest
    lin.target = AuditTarget("bafkreimodel", "model-cid", synthetic.JOB, 2, digest)
    document = synthetic.report(lin, seconds=0.123456).to_json()
    assert document["target"]["model_digest"] == "0x" + digest.hex()
    assert document["seconds"] == 0.1235
