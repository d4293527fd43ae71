"""The model-file and FedAvg code lives in `ledger`, yet `import ledger` and the CLI stay torch-free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ledger_and_the_cli_start_without_torch() -> None:
    code = (
        "import sys\n"
        "import ledger, ledger.provenance, ledger.audit, ledger.chain.client, api.cli.main\n"
        "print(sorted(m for m in ('torch', 'fl_node.runner', 'ledger.aggregation') if m in sys.modules))\n"
        "import ledger.aggregation\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, timeout=120
    )
    assert result.stdout.split("\n")[:2] == ["[]", "True"]
