"""Renderings: PROV-JSON validates against the PROV-JSON schema; the HTML page is self-contained;
the CLI prints each format and exits 0 only when every check passed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import typer
from typer.testing import CliRunner

from api.cli.audit import audit as audit_command
from api.cli.audit import impact as impact_command
from ledger.audit import audit
from tests.audit.conftest import World
from tests.audit.prov_schema import PROV_JSON_SCHEMA, undeclared_prefixes


def _report(world: World, tmp_path: Path):  # type: ignore[no-untyped-def]
    return audit(
        str(world.job_id), client=world.lab, index=world.index(tmp_path / "i.sqlite"), store=world.store
    )


def test_prov_json_validates_against_the_prov_json_schema(world: World, tmp_path: Path) -> None:
    report = _report(world, tmp_path)
    doc = report.to_prov()
    validator = jsonschema.Draft202012Validator(PROV_JSON_SCHEMA, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    assert undeclared_prefixes(doc) == set()
    # the schema check can fail: a record without its required participant is rejected
    broken = json.loads(json.dumps(doc))
    first_usage = next(iter(broken["used"]))
    del broken["used"][first_usage]["prov:activity"]
    assert any("prov:activity" in e.message for e in validator.iter_errors(broken))

    rounds = report.lineage.rounds
    entities, activities = doc["entity"], doc["activity"]
    for facts in rounds:
        assert entities[f"sov:model_{facts.committed.model_digest.hex()}"]["sov:verified"] is True
        assert f"sov:round_{world.job_id}_{facts.committed.round}" in activities
    for dataset_id in world.federation.dataset_ids:
        assert entities[f"sov:dataset_{dataset_id:064x}"]["prov:type"]["$"] == "sov:Dataset"
    usages = [u for u in doc["used"].values() if u.get("prov:role", {}).get("$") == "sov:trainingData"]
    assert len(usages) == sum(len(r.participants) for r in rounds)
    assert all(u["sov:grantStatus"] == "authorized" and u["sov:purpose"] == "ai-training" for u in usages)
    agent_types = {a["prov:type"]["$"] for a in doc["agent"].values()}
    assert agent_types == {"prov:Organization", "prov:SoftwareAgent"}
    assert len(doc["actedOnBehalfOf"]) == len(usages)


def test_html_page_is_self_contained_with_an_inline_svg_graph(world: World, tmp_path: Path) -> None:
    report = _report(world, tmp_path)
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|\bhref=\"https?:|url\((?!#)|@import", page)
    assert 'data-verified="true"' in page
    statuses = re.findall(r'class="node node-(\w+) status-(\w+)"', page)
    assert ("round", "verified") in statuses and ("dataset", "verified") in statuses
    assert len([s for s in statuses if s[0] == "model"]) == 1 + len(report.lineage.rounds)
    graph = report.to_graph()
    assert graph["verified"] is True and len(graph["checks"]) == len(report.checks)


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("audit")(audit_command)
    app.command("impact")(impact_command)
    return app


def test_cli_formats_and_exit_status(world: World, tmp_path: Path) -> None:
    env = {"SOV_HOME": str(world.settings.home), "SOV_RPC_URL": world.node.rpc_url}
    runner = CliRunner()
    ok = runner.invoke(_cli(), ["audit", str(world.job_id), "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["verified"] is True
    table = runner.invoke(_cli(), ["audit", str(world.job_id)], env=env)
    assert table.exit_code == 0 and "VERIFIED" in table.stdout
    html_out = tmp_path / "audit.html"
    page = runner.invoke(
        _cli(), ["audit", str(world.job_id), "--format", "html", "-o", str(html_out)], env=env
    )
    assert page.exit_code == 0 and html_out.read_text().startswith("<!DOCTYPE html>")
    prov = runner.invoke(_cli(), ["audit", str(world.job_id), "--format", "prov"], env=env)
    assert prov.exit_code == 0 and "wasGeneratedBy" in json.loads(prov.stdout)

    # a damaged store (another SOV_HOME with the same deployment) makes the command exit 1
    other = tmp_path / "home"
    shutil.copytree(world.settings.home / "deployments", other / "deployments")
    shutil.copytree(world.settings.blockstore_dir, other / "blocks")
    victim = json.loads(ok.stdout)["rounds"][0]["model_cid"]
    block = next((other / "blocks").rglob(f"{victim}.data"))
    block.write_bytes(block.read_bytes()[:-1] + b"\x00")
    bad = runner.invoke(_cli(), ["audit", str(world.job_id), "--json"], env={**env, "SOV_HOME": str(other)})
    assert bad.exit_code == 1
    failed = [c for c in json.loads(bad.stdout)["checks"] if c["status"] == "fail"]
    assert [(c["name"], c["round"]) for c in failed] == [("content", 1)]

    unknown = runner.invoke(_cli(), ["audit", "424242"], env=env)
    assert unknown.exit_code == 1
    assert "job 424242 does not exist on chain 31337" in " ".join(unknown.output.split())

    # without historical calls nothing fails, but the checks that need them are not made: exit 1
    light = runner.invoke(_cli(), ["audit", str(world.job_id), "--no-historical-calls"], env=env)
    assert light.exit_code == 1
    text = " ".join(light.stdout.split())
    assert "NOT VERIFIED" in text and "not-checked" in text and "FAILED" not in text

    dataset = f"0x{world.federation.dataset_ids[0]:064x}"
    imp = runner.invoke(_cli(), ["impact", "--dataset", dataset, "--json"], env=env)
    assert imp.exit_code == 0, imp.output
    assert json.loads(imp.stdout)["ok"] is True


def test_not_verified_report_renders_as_such_in_every_format(world: World, tmp_path: Path) -> None:
    report = audit(
        str(world.job_id),
        client=world.lab,
        index=world.index(tmp_path / "i.sqlite"),
        store=world.store,
        chain_checks=False,
    )
    assert report.verdict == "not-verified" and not report.failures and report.unverified
    assert report.summary().startswith(f"NOT VERIFIED: job {world.job_id}")
    assert report.to_json()["counts"]["grant"] == {"passed": 0, "failed": 0, "not_made": 8}
    page = report.to_html()
    assert 'data-verdict="not-verified"' in page and 'data-verified="false"' in page
    assert ("round", "unchecked") in re.findall(r'class="node node-(\w+) status-(\w+)"', page)
    doc = report.to_prov()
    validator = jsonschema.Draft202012Validator(PROV_JSON_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert not list(validator.iter_errors(doc))
    rounds = [a for k, a in doc["activity"].items() if k.startswith("sov:round_")]
    assert rounds and all(a["sov:verified"] is False for a in rounds)
    assert report.to_graph()["verified"] is False
