"""The ABI and bytecode shipped in ledger/artifacts/ match the Solidity sources.

Recomputes, without Node, the `sourceHash` that contracts/export-artifacts.mjs records:
sha256 over `<posix path>\\0<content>\\0` of every `.sol` file under contracts/ except the
tests (contracts/test/, *.t.sol) and of hardhat.config.js, in sorted path order.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.contracts.devchain import ARTIFACTS, REPO

SHIPPED = ["DatasetRegistry", "UsageGrants", "TrainingLedger", "MockSignerWallet", "MockRejectingWallet"]
REFRESH = "node_modules/.bin/hardhat compile && node contracts/export-artifacts.mjs (Node 22 first on PATH)"


def source_hash(root: Path = REPO) -> str:
    """The same digest export-artifacts.mjs computes, for the checkout at `root`."""
    sources = [
        p.relative_to(root).as_posix()
        for p in (root / "contracts").rglob("*.sol")
        if not p.name.endswith(".t.sol") and not p.relative_to(root).as_posix().startswith("contracts/test/")
    ]
    digest = hashlib.sha256()
    for rel in sorted([*sources, "hardhat.config.js"]):
        digest.update(rel.encode() + b"\0")
        digest.update((root / rel).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@pytest.mark.parametrize("name", SHIPPED)
def test_artifact_is_fresh(name: str) -> None:
    """Each artifact was exported from the current sources and compiler settings."""
    artifact = json.loads((ARTIFACTS / f"{name}.json").read_text())
    assert artifact["contractName"] == name
    assert artifact["sourceHash"] == source_hash(), (
        f"ledger/artifacts/{name}.json is stale against contracts/**/*.sol; refresh with: {REFRESH}"
    )


@pytest.mark.parametrize("name", SHIPPED)
def test_artifact_has_code_and_abi(name: str) -> None:
    """Deployable bytecode and a non-empty ABI (a pure interface would export empty code)."""
    artifact = json.loads((ARTIFACTS / f"{name}.json").read_text())
    assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 2
    assert artifact["deployedBytecode"].startswith("0x") and len(artifact["deployedBytecode"]) > 2
    assert any(entry.get("type") == "function" for entry in artifact["abi"])


def test_hash_tracks_sources_not_tests(tmp_path: Path) -> None:
    """Editing a source or the config changes the hash; editing a *.t.sol test does not.

    Works on a copy so the shared checkout is never touched.
    """
    shutil.copytree(REPO / "contracts", tmp_path / "contracts", ignore=shutil.ignore_patterns("cache"))
    shutil.copy(REPO / "hardhat.config.js", tmp_path / "hardhat.config.js")
    before = source_hash(tmp_path)
    assert before == source_hash()

    (tmp_path / "contracts" / "test").mkdir(exist_ok=True)
    (tmp_path / "contracts" / "test" / "Extra.t.sol").write_text("// a test file\n")
    (tmp_path / "contracts" / "test" / "Helper.sol").write_text("// a test helper\n")
    assert source_hash(tmp_path) == before

    interface = tmp_path / "contracts" / "interfaces" / "IUsageGrants.sol"
    interface.write_bytes(interface.read_bytes() + b"\n")
    after_source = source_hash(tmp_path)
    assert after_source != before

    config = tmp_path / "hardhat.config.js"
    config.write_text(config.read_text().replace("runs:", "runs: 1 ||"))
    assert source_hash(tmp_path) != after_source
