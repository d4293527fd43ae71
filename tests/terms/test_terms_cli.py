"""`sov grant issue|sign|redeem|check` with terms, in-process against a real anvil."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from typer.testing import CliRunner

from api.cli.main import app
from ledger.chain.types import GrantTerms
from ledger.deploy import save_deployment
from ledger.keys import dev_account
from ledger.purposes import PURPOSES
from ledger.settings import Settings
from ledger.signed_grants import grant_typed_data
from tests.conftest import DeployedChain

AI = PURPOSES["ai-training"]
TERM_FLAGS = ("--epsilon", "3", "--delta", "1e-5", "--min-participants", "3", "--max-rounds", "50")


@dataclass
class Sov:
    runner: CliRunner
    env: dict[str, str]

    def __call__(self, *args: str) -> tuple[int, str, str]:
        result = self.runner.invoke(app, list(args), env=self.env)
        return result.exit_code, result.stdout, " ".join(result.output.split())

    def json(self, *args: str) -> Any:
        code, stdout, output = self(*args, "--json")
        assert code == 0, output
        return json.loads(stdout)


@pytest.fixture()
def sov(deployed: DeployedChain, tmp_path: Path) -> Iterator[Sov]:
    home = tmp_path / "home"
    save_deployment(Settings(home=home), deployed.deployment)
    yield Sov(CliRunner(), {"SOV_HOME": str(home), "SOV_RPC_URL": deployed.rpc_url, "COLUMNS": "400"})


def _dataset(deployed: DeployedChain, label: str) -> int:
    dataset_id, _ = deployed[1].register_dataset(hashlib.sha256(label.encode()).digest())
    return dataset_id


def test_issue_with_terms_and_check_shows_them(deployed: DeployedChain, sov: Sov) -> None:
    dataset_id = _dataset(deployed, "issue")
    lab = str(deployed[2].address)
    issued = sov.json("grant", "issue", str(dataset_id), lab, *TERM_FLAGS, "--account", "dev1")
    expected = {"epsilon": 3.0, "delta": 1e-05, "min_participants": 3, "max_rounds": 50}
    assert issued["terms"] == expected
    assert deployed[0].get_grant(dataset_id, lab, AI).terms == GrantTerms(3, 1e-5, 3, 50)
    checked = sov.json("grant", "check", str(dataset_id), lab)
    assert checked["authorized"] is True and checked["grant"]["terms"] == expected
    code, _, output = sov("grant", "check", str(dataset_id), lab)
    assert code == 0
    shown = "terms: epsilon 3, delta 1e-05, at least 3 participants per round, rounds 1 to 50"
    assert shown in output, output
    # Re-issued without flags: the grant has no terms any more.
    sov.json("grant", "issue", str(dataset_id), lab, "--account", "dev1")
    _, _, output = sov("grant", "check", str(dataset_id), lab)
    assert "terms: no terms" in output, output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ("--epsilon", "3", "--delta", "2e-5"),
            "delta 2e-05 is not a power of ten (stored as 10^-k); use 1e-5 (or 1e-4",
        ),
        (("--epsilon", "3.141", "--delta", "1e-5"), "epsilon 3.141 has more than two decimals"),
        (("--epsilon", "3"), "epsilon 3 and delta 0: set both for a DP budget, or neither"),
        (("--min-participants", "256"), "min_participants is 256: expected an integer from 0 (no limit) to"),
        (("--max-rounds", "70000"), "max_rounds is 70000: expected an integer from 0 (no limit) to 65535"),
    ],
)
def test_terms_the_chain_cannot_store_are_refused_before_sending(
    deployed: DeployedChain, sov: Sov, flags: tuple[str, ...], message: str
) -> None:
    dataset_id = _dataset(deployed, "bad")
    lab = str(deployed[2].address)
    owner = deployed[1]
    sent = owner.transport.request("eth_getTransactionCount", [owner.address, "latest"])
    code, _, output = sov("grant", "issue", str(dataset_id), lab, *flags, "--account", "dev1")
    assert code != 0 and message in output, output
    assert owner.transport.request("eth_getTransactionCount", [owner.address, "latest"]) == sent
    assert not owner.get_grant(dataset_id, lab, AI).exists


def test_sign_with_terms_and_redeem(deployed: DeployedChain, sov: Sov, tmp_path: Path) -> None:
    dataset_id = _dataset(deployed, "sign")
    lab = str(deployed[2].address)
    out = tmp_path / "grant.json"
    signed = sov.json("grant", "sign", str(dataset_id), lab, "-o", str(out), *TERM_FLAGS, "--account", "dev1")
    assert signed["terms"]["min_participants"] == 3
    document = json.loads(out.read_text())
    assert document["domain"]["version"] == "2"
    assert document["message"]["epsilonHundredths"] == 300 and document["message"]["deltaNegExponent"] == 5
    report = sov.json("grant", "redeem", str(out), "--account", "dev5")
    assert report["terms"] == {"epsilon": 3.0, "delta": 1e-05, "min_participants": 3, "max_rounds": 50}
    assert deployed[0].get_grant(dataset_id, lab, AI).terms == GrantTerms(3, 1e-5, 3, 50)


def test_redeem_of_a_version_1_grant_says_sign_again(
    deployed: DeployedChain, sov: Sov, tmp_path: Path
) -> None:
    dataset_id = _dataset(deployed, "v1")
    lab = str(deployed[2].address)
    now = deployed[0].latest_block().timestamp
    typed = grant_typed_data(
        deployed[0].chain_id,
        deployed.deployment.address("UsageGrants"),
        dataset_id,
        lab,
        AI,
        now,
        now + 3600,
        0,
        now + 600,
    )
    typed["domain"]["version"] = "1"
    typed["types"]["Grant"] = [f for f in typed["types"]["Grant"] if f["type"] not in ("uint8", "uint16")]
    for key in ("epsilonHundredths", "deltaNegExponent", "minParticipants", "maxRounds"):
        del typed["message"][key]
    signature = dev_account(1).sign_message(encode_typed_data(full_message=typed)).signature
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(dict(typed, signature="0x" + bytes(signature).hex())))
    relayer = deployed[5]
    sent = relayer.transport.request("eth_getTransactionCount", [relayer.address, "latest"])
    code, _, output = sov("grant", "redeem", str(path), "--account", "dev5")
    assert code != 0
    assert "signed for UsageGrants version 1" in output, output
    assert "the dataset owner must sign the grant again (`sov grant sign`)" in output, output
    assert relayer.transport.request("eth_getTransactionCount", [relayer.address, "latest"]) == sent
    assert not deployed[0].get_grant(dataset_id, lab, AI).exists


def test_check_shows_the_budget_this_machine_spent(deployed: DeployedChain, sov: Sov) -> None:
    """With a DP budget, `check` adds what the local budget ledger recorded: spent and left."""
    privacy = pytest.importorskip("fl_node.privacy")
    from ledger.privacy import DPRound, cumulative_epsilon

    dataset_id = _dataset(deployed, "budget")
    lab = str(deployed[2].address)
    sov.json("grant", "issue", str(dataset_id), lab, *TERM_FLAGS, "--account", "dev1")
    fresh = sov.json("grant", "check", str(dataset_id), lab)["grant"]["budget"]
    assert (fresh["epsilon_spent"], fresh["epsilon_left"], fresh["rounds_recorded"]) == (0.0, 3.0, 0)

    ledger = privacy.BudgetLedger(Path(sov.env["SOV_HOME"]))
    dp = DPRound.of(noise_multiplier=1.1, max_grad_norm=1.0, sample_rate=0.01, steps=100)
    ledger.record(
        chain_id=deployed[0].chain_id,
        dataset_id=dataset_id,
        grantee=lab,
        purpose=AI,
        job_id=1,
        round_number=1,
        dp=dp,
    )
    budget = sov.json("grant", "check", str(dataset_id), lab)["grant"]["budget"]
    spent = cumulative_epsilon([dp], 1e-5)
    assert budget["rounds_recorded"] == 1 and budget["epsilon_spent"] == pytest.approx(spent)
    assert 0 < spent < 3 and budget["epsilon_left"] == pytest.approx(3 - spent)
    _, _, output = sov("grant", "check", str(dataset_id), lab)
    assert f"epsilon {spent:.4f} spent, {3 - spent:.4f} left of 3" in output, output
