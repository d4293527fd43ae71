"""pytest plugin for `make mutation` (loaded with `-p bench.mutation_plugin`, see pyproject.toml).

mutmut runs every mutant in a fresh process forked from a fork server that has collected the
suite once; the process orders and runs its tests from that collection (bench/mutation.py), so
`pytest_collection_modifyitems` is where its run starts. Three things make that cheaper without
changing what is tested:

- Importing here, in the fork server, the heavy modules every run would otherwise import
  again (torch's compiler stack, pulled in by `torch.use_deterministic_algorithms`, and
  scikit-learn's data sets: ~3.5 s per process on this machine).
- Giving the fork server the DP accountant's per-round RDP curves the stats run computed
  (`ledger.privacy._round_rdp`, memoised per process). `ledger.privacy` is not mutated and a
  curve is a pure function of its `DPRound`, so a child reads the same numbers it would
  compute; computing the synthetic job's curve in opacus was 0.2 s of a 0.3 s mutant run. A
  round the stats run never saw (a mutant that changes the parameters) is computed as before.
- Running first the tests most likely to fail, cheapest first. mutmut stops a mutant's run
  at the first failing test, so a mutant that a 0.2 s test kills should not wait for a
  chain-and-training fixture first. Tests that killed other mutants of the same function in
  this run (from `mutation-runs.jsonl`; mutmut runs a function's mutants one after another)
  come first, then those that killed mutants of the same module, then the rest; within each
  group, by what the module cost in the stats run (the unmutated suite, once). Tests that
  share a module's chain (`SHARED_FIXTURES`) move as their module, in the file's order, so
  each sees the chain state the file's order gives it, whatever the mutant; the others
  (function-scoped fixtures only) move one by one. Only the order changes: a mutant still
  runs every test that reaches its code until one fails.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter, defaultdict
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

from ledger import privacy

COSTS = Path("mutation-costs.json")
"""Seconds per test module, written by the stats run in mutmut's working folder (mutants/)."""
SHARED_FIXTURES = frozenset({"lab", "pruned_lab", "world"})
"""Module-scoped chains that tests of a module add to (tests/audit/conftest.py)."""
RUNS = Path("mutation-runs.jsonl")
"""One line per mutant's pytest process: mutant, seconds, tests run, exit status."""
CURVES = Path("mutation-rdp-curves.json")
"""Each `DPRound` the stats run composed, with its RDP curve (`ledger.privacy._round_rdp`)."""

_spent: dict[str, float] = defaultdict(float)
_ran: list[str] = []
_started = time.perf_counter()
_curves: dict[privacy.DPRound, tuple[float, ...]] = {}


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _stats_run() -> bool:
    return os.environ.get("MUTANT_UNDER_TEST") == "stats"


def pytest_configure(config: pytest.Config) -> None:
    """Answer the RDP curves a stats run recorded from memory; a stats run records the others."""
    if CURVES.exists():
        for row in json.loads(CURVES.read_text()):
            _curves[privacy.DPRound(**row["round"])] = tuple(row["curve"])
    computed = privacy._round_rdp

    def known_or_computed(dp_round: privacy.DPRound) -> tuple[float, ...]:
        curve = _curves.get(dp_round)
        if curve is None:
            curve = computed(dp_round)
            if _stats_run():
                _curves[dp_round] = curve
        return curve

    privacy._round_rdp = known_or_computed  # type: ignore[assignment]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        _spent[_module(item.nodeid)] += time.perf_counter() - started
        _ran.append(item.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _stats_run() and _spent:
        known = json.loads(COSTS.read_text()) if COSTS.exists() else {}
        COSTS.write_text(json.dumps({**known, **_spent}, indent=1, sort_keys=True))
    if _stats_run() and _curves:
        rows = [{"round": dataclasses.asdict(r), "curve": list(c)} for r, c in _curves.items()]
        CURVES.write_text(json.dumps(rows))
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


def _function(mutant: str) -> str:
    """`fl_node.gate.x__read__mutmut_6` -> `fl_node.gate.x__read` (the mutated function)."""
    return mutant.rsplit("__mutmut_", 1)[0]


def _source_module(mutant: str) -> str:
    """`fl_node.gate.x__read__mutmut_6` -> `fl_node.gate` (the mutated module)."""
    return _function(mutant).rsplit(".", 1)[0]


def _kills(mutant: str) -> tuple[Counter[str], Counter[str]]:
    """Tests that killed this run's finished mutants: of the same function, of the same module.

    A killed mutant's run stopped at its first failing test (`-x`), its `last` line.
    """
    same_function: Counter[str] = Counter()
    same_module: Counter[str] = Counter()
    if not RUNS.exists():
        return same_function, same_module
    function, module = _function(mutant), _source_module(mutant)
    quoted = f'"{module}.'  # most lines are other modules' mutants: skip them before parsing
    for line in RUNS.read_text().splitlines():
        if quoted not in line:
            continue
        try:
            run = json.loads(line)
        except ValueError:  # a line a parallel process is still writing
            continue
        if run.get("exit") != 1 or not run.get("last"):
            continue
        if _function(run["mutant"]) == function:
            same_function[run["last"]] += 1
        elif _source_module(run["mutant"]) == module:
            same_module[run["last"]] += 1
    return same_function, same_module


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A mutant's process starts here: the fork server collected for it (bench/mutation.py).
    global _started
    _started = time.perf_counter()
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if _stats_run() or not COSTS.exists():
        return
    cost: dict[str, float] = json.loads(COSTS.read_text())
    same_function, same_module = _kills(mutant) if "__mutmut_" in mutant else (Counter(), Counter())
    # mutmut names a mutant's tests from a set, in no useful order; inside a module the file's
    # order puts the broad cases (an honest run that must verify) before the narrow ones.
    order = {id(item): index for index, item in enumerate(items)}

    def unit(item: pytest.Item) -> str:
        shares_a_chain = SHARED_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        return _module(item.nodeid) if shares_a_chain else item.nodeid

    units = {id(item): unit(item) for item in items}
    by_function: Counter[str] = Counter()
    by_module: Counter[str] = Counter()
    for item in items:
        by_function[units[id(item)]] += same_function[item.nodeid]
        by_module[units[id(item)]] += same_module[item.nodeid]

    def key(item: pytest.Item) -> tuple[int, int, float, int, int]:
        return (
            -by_function[units[id(item)]],
            -by_module[units[id(item)]],
            cost.get(_module(item.nodeid), float("inf")),
            item.location[1] if item.location[1] is not None else -1,
            order[id(item)],
        )

    items.sort(key=key)
