"""pytest plugin for `make mutation` (loaded with `-p bench.mutation_plugin`, see pyproject.toml).

mutmut runs every mutant in a fresh pytest process forked from a fork server that has
collected the suite once. Two things make that cheaper without changing what is tested:

- Importing here, in the fork server, the heavy modules every run would otherwise import
  again (torch's compiler stack, pulled in by `torch.use_deterministic_algorithms`, and
  scikit-learn's data sets: ~3.5 s per process on this machine).
- Running the cheapest tests first. mutmut stops a mutant's run at the first failing test,
  so a mutant that a 0.2 s test kills should not wait for a chain-and-training fixture
  first. The stats run (the unmutated suite, once) records what each test module costs;
  mutant runs order modules by it, and the tests inside a module as the file has them.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

# Imported for the fork server's children (unused here). opacus is the DP accountant and
# DP-SGD (`ledger.privacy`, `fl_node.train`), imported on first use: ~5 s per process otherwise.
import opacus
import opacus.accountants.analysis.rdp  # noqa: F401
import pytest
import sklearn.datasets  # noqa: F401
import torch._dynamo
import torch._inductor  # noqa: F401

COSTS = Path("mutation-costs.json")
"""Seconds per test module, written by the stats run in mutmut's working folder (mutants/)."""
RUNS = Path("mutation-runs.jsonl")
"""One line per mutant's pytest process: mutant, seconds, tests run, exit status."""

_spent: dict[str, float] = defaultdict(float)
_ran: list[str] = []
_started = time.perf_counter()


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _stats_run() -> bool:
    return os.environ.get("MUTANT_UNDER_TEST") == "stats"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        _spent[_module(item.nodeid)] += time.perf_counter() - started
        _ran.append(item.nodeid)


def pytest_sessionstart(session: pytest.Session) -> None:
    global _started
    _started = time.perf_counter()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _stats_run() and _spent:
        known = json.loads(COSTS.read_text()) if COSTS.exists() else {}
        COSTS.write_text(json.dumps({**known, **_spent}, indent=1, sort_keys=True))
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if mutant and mutant not in ("stats", "fail", "list_all_tests"):
        line = {
            "mutant": mutant,
            "seconds": round(time.perf_counter() - _started, 3),
            "selected": session.testscollected,
            "ran": len(_ran),
            "last": _ran[-1] if _ran else "",
            "exit": int(exitstatus),
        }
        # One short write per process on an O_APPEND file: lines from parallel runs do not mix.
        with RUNS.open("a") as runs:
            runs.write(json.dumps(line) + "\n")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if _stats_run() or not COSTS.exists():
        return
    cost: dict[str, float] = json.loads(COSTS.read_text())
    # mutmut names a mutant's tests from a set, in no useful order; inside a module the file's
    # order puts the broad cases (an honest run that must verify) before the narrow ones.
    order = {id(item): index for index, item in enumerate(items)}
    items.sort(
        key=lambda item: (
            cost.get(_module(item.nodeid), float("inf")),
            item.location[1] if item.location[1] is not None else -1,
            order[id(item)],
        )
    )
