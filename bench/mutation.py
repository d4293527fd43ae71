"""`make mutation`: mutation testing of the modules the trust model rests on, with mutmut.

What is mutated and which tests run is configured in `pyproject.toml` (`[tool.mutmut]`):
`ledger/audit/`, `ledger/provenance.py`, `fl_node/gate.py` and `fl_node/node.py`, against
the audit, provenance and node tests. mutmut 3 rewrites every function of those modules
into a trampoline that can run any one of its mutants, records which tests reach each
function, then for each mutant forks a fresh pytest process (from a fork server that has
imported the suite once) that runs only those tests, stopping at the first failure.

Each mutant's run is its own pytest session, so module fixtures (the audit's chain and
finished job) are built again in that process on their own anvil (free port, fresh
chain): parallel mutants never share chain state or a content store.

This script, rather than a bare `mutmut run`, because:

- mutmut copies `tests/` into `mutants/` on every run, and `tests/ipfs_node/node_modules`
  alone is ~400 MB. The run happens in a lean copy of the checkout, `.mutation/` (the
  packages with their built artifacts, the tests without node_modules, pyproject.toml);
  the copy also pins what is tested while people keep editing the tree.
- Pytest's temporary folders go under `.mutation/tmp` (removed afterwards): each mutant's
  process ends with `os._exit`, so pytest never releases its numbered temp folders.
- A mutant that hangs is killed at its time limit before its fixtures stop their anvil.
  Every process the run starts carries a marker in its environment; whatever still carries
  it at the end is stopped by pid.
- It runs mutmut's CLI with these changes (`mutmut_cli`). The type-check filter locates mypy's
  errors with `ast` instead of libcst (seconds instead of 8-10 minutes), and mypy runs beside
  the stats run instead of before it (~50 s). The fork server collects the tests once, and each
  mutant's process runs its tests from that collection instead of starting pytest again (0.3 s
  of a typical mutant's 0.4 s). The server also `gc.freeze()`s its heap, so a garbage collection
  in a mutant's process does not copy it (half the machine's time went to those copies). The
  "clean run" of the unmutated tests is skipped right after a full stats run that has just run
  them (~1 minute). And its set-up steps are timed (`seconds_by_step` in bench/mutation.json).
- It prints the score, lists the survivors with their diffs (`.mutation/survivors.txt`),
  writes `bench/mutation.json`, and exits 1 under the target.

Usage: `python -m bench.mutation` (fresh run), `python -m bench.mutation --keep [NAMES...]`
(keep earlier results; with mutmut name patterns such as `'ledger.audit.checks*'`, re-test
those). To look at one mutant: `cd .mutation && ../.venv/bin/mutmut show NAME`.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / ".mutation"
RESULTS = Path(__file__).with_name("mutation.json")
MUTMUT = Path(sys.executable).with_name("mutmut")
TARGET_SCORE = 0.90

# What the mutated tree and its tests need; everything else stays out of the copy.
STAGED = ("ledger", "fl_node", "api", "tests", "bench", "pyproject.toml")
NOT_STAGED = shutil.ignore_patterns("node_modules", "__pycache__", ".pytest_cache", ".hypothesis")
RUN_MARKER = "SOV_MUTATION_RUN"
PHASES = STAGE / "phases.jsonl"
"""When each of mutmut's set-up steps started and ended (`mutmut_cli` records them)."""
TIMED_STEPS = {
    "create_mutants": "generating mutants",
    "collect_or_load_stats": "stats run",
    "run_forced_fail_test": "forced-fail run",
}

# mutmut's exit-code vocabulary (mutmut/stats.py), folded to what the report needs.
KILLED_CODES = {1, 3}
SURVIVED_CODES = {0}
TIMEOUT_CODES = {36, 24, -24, 152, 255}
NO_TESTS_CODES = {5, 33}
TYPE_CHECK_CODES = {37}


@dataclass(frozen=True)
class Score:
    """Counts over every mutant of the mutated modules."""

    killed: int
    timeout: int
    type_errors: int
    survived: list[str]
    no_tests: list[str]
    other: dict[str, int]

    @property
    def total(self) -> int:
        """Every mutant, whatever happened to it."""
        return (
            self.killed
            + self.timeout
            + self.type_errors
            + len(self.survived)
            + len(self.no_tests)
            + sum(self.other.values())
        )

    @property
    def tested(self) -> int:
        """Mutants that pass `mypy --strict`, i.e. could ship: only tests can catch these."""
        return self.total - self.type_errors

    @property
    def killed_by_tests(self) -> int:
        """Mutants some test noticed: a test failed, or the tests hung past their time limit."""
        return self.killed + self.timeout

    @property
    def ratio(self) -> float:
        """The score: killed by tests over the mutants that type-check (unreached ones count)."""
        return self.killed_by_tests / self.tested if self.tested else 0.0

    @property
    def overall(self) -> float:
        """Caught by tests or by the type checker, over every mutant."""
        return (self.killed_by_tests + self.type_errors) / self.total if self.total else 0.0


def stage(deselect: list[str], type_check: bool = True) -> None:
    """Refresh the lean copy of the checkout in `.mutation/`, keeping mutmut's `mutants/`.

    `copy2` keeps modification times: mutmut re-mutates a module only when its source is
    newer than the mutated copy, which is what lets `--keep` reuse earlier results.
    `deselect` adds tests to leave out to the copy's test selection (mutmut needs every
    selected test to pass on the unmutated code). Without `type_check` no mutant is
    filtered out by mypy first (mutmut's filter re-parses every mutated file: minutes).
    """
    STAGE.mkdir(exist_ok=True)
    for name in STAGED:
        target = STAGE / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=NOT_STAGED)
        else:
            shutil.copy2(source, target)
    if deselect:
        config = STAGE / "pyproject.toml"
        opening = "pytest_add_cli_args_test_selection = ["
        extra = "".join(f'\n    "--deselect={nodeid}",' for nodeid in deselect)
        config.write_text(config.read_text().replace(opening, opening + extra, 1))
    if not type_check:
        config = STAGE / "pyproject.toml"
        kept = [line for line in config.read_text().splitlines() if not line.startswith("type_check_command")]
        config.write_text("\n".join(kept) + "\n")


def run_mutmut(names: list[str], max_children: int, marker: str) -> int:
    """`mutmut run` in the stage; returns its exit status."""
    temp_root = STAGE / "tmp"
    shutil.rmtree(temp_root, ignore_errors=True)
    temp_root.mkdir()
    env = dict(os.environ)
    env.update(
        {
            RUN_MARKER: marker,
            # anvil and hardhat come from the checkout's npm packages, which are not staged.
            "SOV_NODE_MODULES": str(ROOT / "node_modules"),
            "PYTEST_DEBUG_TEMPROOT": str(temp_root),
            # Each mutant's pytest would scan every installed package for plugins (~50 ms); the
            # ones the tests use are named in pytest_add_cli_args.
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            # torch and BLAS start one thread per core by default; mutants run side by side.
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
    )
    env.pop("PYTHONPATH", None)
    # mutmut calls `mypy` (type_check_command) by name.
    env["PATH"] = os.pathsep.join([str(MUTMUT.parent), env.get("PATH", "")])
    # mutmut's CLI, from this module (`mutmut_cli`): same program, a cheaper type-check filter.
    launcher = "import sys; from bench.mutation import mutmut_cli; sys.exit(mutmut_cli())"
    command = [sys.executable, "-c", launcher, "run", "--max-children", str(max_children), *names]
    try:
        return subprocess.run(command, cwd=STAGE, env=env, check=False).returncode
    finally:
        stop_leftovers(marker)
        shutil.rmtree(temp_root, ignore_errors=True)


def _mutated_function_spans(source: str) -> list[tuple[str, int, int]]:
    """(name, first line, last line) of each generated mutant function in a mutated module.

    The functions mutmut generates are top level or methods of top-level (or nested) classes,
    never nested in other functions, as its own collector assumes.
    """
    from mutmut.utils.format_utils import is_mutated_method_name

    spans: list[tuple[str, int, int]] = []
    bodies: list[list[ast.stmt]] = [ast.parse(source).body]
    while bodies:
        for node in bodies.pop():
            if isinstance(node, ast.ClassDef):
                bodies.append(node.body)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and is_mutated_method_name(
                node.name
            ):
                spans.append((node.name, node.lineno, node.end_lineno or node.lineno))
    return spans


def filter_mutants_with_type_checker() -> Mapping[str, Any]:
    """mutmut's type-check filter, with the mutated functions located by `ast`, not libcst, and
    mypy running while mutmut goes on to its stats run.

    Same result as `mutmut.mutation.file_mutation.filter_mutants_with_type_checker` (every mypy
    error inside a generated mutant function marks that mutant as refused; an error anywhere
    else is a failure), but mutmut finds the functions with libcst's position metadata over
    every mutated file, which took 8-10 minutes of the run here; CPython's parser takes seconds.
    And mutmut waits for mypy (100 s) before its stats run (50 s) although neither needs the
    other: here mypy starts and the refusals are a mapping that waits for it when first read,
    which on a fresh run is when the mutants start (`TypeCheck`).
    """
    from mutmut.configuration import config

    return TypeCheck(Path("mutants").absolute(), config().type_check_command)


class TypeCheck(Mapping[str, Any]):
    """The mutants mypy refuses, by mutant name, from a mypy started in `mutants` at creation.

    mypy writes its JSON lines to a temporary file (its output, a few MB, would fill a pipe
    nobody reads yet). Reading the mapping waits for mypy, then locates each error's mutant.
    """

    def __init__(self, mutants: Path, command: list[str]) -> None:
        self._mutants = mutants
        self._started = time.time()
        # Closed once read (`_wait`): it outlives this call, so no `with`.
        self._output = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._mypy = subprocess.Popen(command, cwd=mutants, stdout=self._output, stderr=subprocess.DEVNULL)
        self._refused: dict[str, Any] | None = None

    def _wait(self) -> dict[str, Any]:
        if self._refused is None:
            self._mypy.wait()
            checked = time.time()
            self._output.seek(0)
            lines = [line for line in self._output if line.strip()]
            self._output.close()
            try:
                report = [json.loads(line) for line in lines]
            except ValueError:
                raise RuntimeError(f"mypy did not answer in JSON lines: {''.join(lines[:5])}") from None
            self._refused = self._locate(report)
            located = time.time()
            print(
                f"    type check: {len(report)} mypy diagnostics, {len(self._refused)} mutants refused; mypy "
                f"done {checked - self._started:.0f} s after it started, located in {located - checked:.1f} s"
            )
            _record_phase("type check (beside the stats run)", self._started, located)
        return self._refused

    def _locate(self, report: list[dict[str, Any]]) -> dict[str, Any]:
        from mutmut.mutation.file_mutation import FailedTypeCheckMutant, MutatedMethodLocation
        from mutmut.type_checking import parse_mypy_report
        from mutmut.utils.format_utils import get_mutant_name

        # mypy names files relative to where it ran
        errors = parse_mypy_report([{**line, "file": str(self._mutants / line["file"])} for line in report])
        by_file: dict[Path, list[Any]] = {}
        for error in errors:
            by_file.setdefault(Path(error.file_path), []).append(error)
        refused: dict[str, Any] = {}
        for path, file_errors in by_file.items():
            spans = _mutated_function_spans(path.read_text(encoding="utf-8"))
            if not spans:
                continue
            for error in file_errors:
                span = next((s for s in spans if s[1] <= error.line_number <= s[2]), None)
                if span is None:
                    where = f"{path}:{error.line_number} ({error.error_description})"
                    raise RuntimeError(f"type error outside every mutant: {where}")
                name = get_mutant_name(path.relative_to(self._mutants), span[0])
                location = MutatedMethodLocation(path, span[0], span[1], span[2])
                refused[name] = FailedTypeCheckMutant(method_location=location, name=name, error=error)
        return refused

    def __getitem__(self, name: str) -> Any:
        return self._wait()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._wait())

    def __len__(self) -> int:
        return len(self._wait())


def _one_collection_for_every_mutant() -> None:
    """Make the fork server collect the tests once, and each mutant's process run its own from it.

    mutmut's fork server warms up with `pytest --collect-only`, then each mutant's process runs
    `pytest.main` on its tests: it parses the configuration, registers thirty plugins, collects
    the test files again and parses their fixtures (0.3 s of a 0.4 s run for most mutants).
    Here the fork server configures one pytest session and collects the selection
    (`PytestRunner.warm_up`); a mutant's process, forked from it with the mutant set, takes the
    collected items of its tests, lets the collection hooks order them (`mutation_plugin`, the
    fixtures' scopes), runs them with `-x` and finishes the session, as `pytest.main` would after
    its collection. No fixture is set up during a collection, so each process still builds its
    own, on its own anvil. Output is captured per process (`--capture=sys`, the file descriptors
    on /dev/null): fd capture would share the fork server's capture files between processes.

    The fork server then `gc.freeze()`s its heap: a garbage collection in a mutant's process
    would otherwise walk (and so write to) every object the server holds, turning copy-on-write
    sharing into copies of hundreds of megabytes per mutant (half of the machine's time went to
    the kernel).
    """
    import gc

    from _pytest.config import ExitCode, _prepareconfig
    from _pytest.main import Session
    from mutmut.runners.harness import PytestRunner
    from mutmut.utils.file_utils import change_cwd

    held: dict[str, Any] = {}
    run_tests = PytestRunner.run_tests

    def collect_once(self: PytestRunner) -> None:
        args = ["--rootdir=.", "--tb=native", *self._pytest_args_regular_run([])]
        with change_cwd("mutants"):
            config = _prepareconfig([*args, *self._pytest_add_cli_args, "--capture=sys"])
            session = Session.from_config(config)
            config._do_configure()
            config.hook.pytest_sessionstart(session=session)
            config.hook.pytest_collection(session=session)
        if session.testsfailed:
            raise RuntimeError(f"{session.testsfailed} error(s) collecting the tests")
        held.update(config=config, session=session, items={item.nodeid: item for item in session.items})
        gc.collect()
        gc.freeze()

    def run_collected(self: PytestRunner, *, mutant_name: str | None, tests: Any) -> int:
        names = list(dict.fromkeys(tests))
        if not held or not names or any(name not in held["items"] for name in names):
            return int(run_tests(self, mutant_name=mutant_name, tests=names))
        config, session = held["config"], held["session"]
        session.items = [held["items"][name] for name in names]
        session.testscollected = len(session.items)
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        os.close(quiet)
        with change_cwd("mutants"):
            config.hook.pytest_collection_modifyitems(session=session, config=config, items=session.items)
            with contextlib.suppress(session.Failed, session.Interrupted):
                config.hook.pytest_runtestloop(session=session)
            status = ExitCode.TESTS_FAILED if session.testsfailed else ExitCode.OK
            session.exitstatus = status
            config.hook.pytest_sessionfinish(session=session, exitstatus=status)
        return int(status)

    setattr(PytestRunner, "warm_up", collect_once)  # noqa: B010
    setattr(PytestRunner, "run_tests", run_collected)  # noqa: B010


def _time_steps(module: Any) -> None:
    """Record in `PHASES` when each of `TIMED_STEPS` (functions of `module`) starts and ends.

    Runs in mutmut's process, in the stage: `PHASES` is found from its working directory.
    """
    for name, label in TIMED_STEPS.items():
        step = getattr(module, name)

        def timed(*args: Any, _step: Any = step, _label: str = label, **kwargs: Any) -> Any:
            started = time.time()
            try:
                return _step(*args, **kwargs)
            finally:
                _record_phase(_label, started, time.time())

        setattr(module, name, timed)


def _record_phase(label: str, started: float, ended: float) -> None:
    """One line of `PHASES`, from mutmut's process in the stage (found from its working directory)."""
    with (Path.cwd() / PHASES.name).open("a") as phases:
        phases.write(json.dumps({"step": label, "started": started, "ended": ended}) + "\n")


def _no_clean_run_after_full_stats(module: Any) -> None:
    """Skip mutmut's clean run (the selected tests once more, unmutated) right after a full stats run.

    The stats run has just run every selected test on the unmutated code and mutmut stops unless
    they all passed; the clean run would run the same tests on the same code again (~1 minute).
    With `--keep` the stats are loaded from an earlier run, and the clean run happens as before.
    """
    full_stats: list[bool] = []
    collect = module.run_stats_collection

    def collect_and_note(runner: Any, tests: Any = None) -> None:
        collect(runner, tests)
        if tests is None:
            full_stats.append(True)

    make_runner = module.get_mutant_runner

    def runner_without_a_second_clean_run(max_workers: int = 1) -> Any:
        runner = make_runner(max_workers)
        clean = runner.run_clean_tests

        def clean_unless_just_run(tests: Any) -> int:
            return 0 if full_stats else int(clean(tests))

        runner.run_clean_tests = clean_unless_just_run
        return runner

    setattr(module, "run_stats_collection", collect_and_note)  # noqa: B010
    setattr(module, "get_mutant_runner", runner_without_a_second_clean_run)  # noqa: B010


def phase_seconds(started: float, ended: float) -> dict[str, float]:
    """Seconds per part of a run from `PHASES`: mutmut's set-up steps, then the mutants themselves.

    Between the stats run and the forced-fail run mutmut runs the selected tests once unmutated
    ("clean run"); what follows the forced-fail run is the mutants'.
    """
    steps: dict[str, tuple[float, float]] = {}
    if PHASES.exists():
        for line in PHASES.read_text().splitlines():
            step = json.loads(line)
            steps[step["step"]] = (step["started"], step["ended"])
    seconds = {label: round(end - start, 1) for label, (start, end) in steps.items()}
    if "stats run" in steps and "forced-fail run" in steps:
        seconds["clean run"] = round(steps["forced-fail run"][0] - steps["stats run"][1], 1)
    mutants_from = steps["forced-fail run"][1] if "forced-fail run" in steps else started
    seconds["mutants"] = round(ended - mutants_from, 1)
    return seconds


def mutmut_cli() -> int:
    """mutmut's command line with a cheaper type-check filter, one test collection for every
    mutant, no second run of the unmutated tests, and its set-up steps timed.

    See `filter_mutants_with_type_checker`, `_one_collection_for_every_mutant`,
    `_no_clean_run_after_full_stats` and `_time_steps`.
    """
    import mutmut.__main__ as mutmut_main

    setattr(mutmut_main, "filter_mutants_with_type_checker", filter_mutants_with_type_checker)  # noqa: B010
    _one_collection_for_every_mutant()
    _no_clean_run_after_full_stats(mutmut_main)
    _time_steps(mutmut_main)
    try:
        mutmut_main.cli(prog_name="mutmut")
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    return 0


def stop_leftovers(marker: str) -> list[int]:
    """Stop, by pid, every process still carrying this run's marker (an orphaned anvil)."""
    needle = f"{RUN_MARKER}={marker}".encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if sig == signal.SIGTERM and found:
            time.sleep(2)
    if found:
        print(f"stopped {len(found)} process(es) left by the run: {found}")
    return found


def read_score() -> Score:
    """Fold mutmut's per-module result files (`mutants/**/*.py.meta`) into one score."""
    killed = timeout = type_errors = 0
    survived: list[str] = []
    no_tests: list[str] = []
    other: Counter[str] = Counter()
    for meta in sorted((STAGE / "mutants").rglob("*.py.meta")):
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in sorted(codes.items()):
            if code in KILLED_CODES:
                killed += 1
            elif code in TIMEOUT_CODES:
                timeout += 1
            elif code in TYPE_CHECK_CODES:
                type_errors += 1
            elif code in SURVIVED_CODES:
                survived.append(name)
            elif code in NO_TESTS_CODES:
                no_tests.append(name)
            else:
                other["not checked" if code is None else f"exit {code}"] += 1
    return Score(killed, timeout, type_errors, survived, no_tests, dict(other))


def diffs_of(names: list[str]) -> str:
    """mutmut's diff of each mutant against its original function (one process for all)."""
    script = (
        "import sys\n"
        "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
        "for name in sys.argv[1:]:\n"
        "    print(f'# {name}')\n"
        "    print(get_diff_for_mutant(name))\n"
        "    print()\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script, *names], cwd=STAGE, capture_output=True, text=True, check=False
    )
    return shown.stdout + shown.stderr


def report(score: Score, seconds: float, max_children: int, phases: dict[str, float]) -> None:
    """Print the score and survivors, keep their diffs, write bench/mutation.json."""
    undetected = score.survived + score.no_tests
    (STAGE / "survivors.txt").write_text(diffs_of(undetected) if undetected else "")
    for name in score.survived:
        print(f"survived: {name}")
    for name in score.no_tests:
        print(f"no test reaches: {name}")
    for what, count in sorted(score.other.items()):
        print(f"{what}: {count}")
    print(
        f"mutants: {score.total}; {score.type_errors} refused by mypy --strict; of the other "
        f"{score.tested}, tests killed {score.killed_by_tests} ({score.killed} failed, "
        f"{score.timeout} timed out), {len(score.survived)} survived, "
        f"{len(score.no_tests)} reached by no test"
    )
    print(
        f"mutation score: {score.ratio:.1%} of type-correct mutants killed (target {TARGET_SCORE:.0%}); "
        f"{score.overall:.1%} of all mutants caught by tests or mypy; "
        f"{seconds / 60:.1f} min with {max_children} workers; diffs in {STAGE / 'survivors.txt'}"
    )
    print("seconds: " + ", ".join(f"{step} {value:.0f}" for step, value in phases.items()))
    document = {
        "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "make mutation",
        "cores": os.cpu_count(),
        "workers": max_children,
        "minutes": round(seconds / 60, 1),
        "seconds_by_step": phases,
        "total": score.total,
        "type_errors": score.type_errors,
        "tested": score.tested,
        "killed": score.killed,
        "timeout": score.timeout,
        "score": round(score.ratio, 4),
        "caught_by_tests_or_mypy": round(score.overall, 4),
        "survived": score.survived,
        "no_tests": score.no_tests,
        "other": score.other,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mutation", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="mutmut mutant names or patterns to (re-)test")
    parser.add_argument("--keep", action="store_true", help="keep earlier results (default: fresh run)")
    # One more than the cores: a mutant's process waits on its anvil part of the time (measured
    # on 2 cores: 21.7 minutes with 2 workers, 20.7 with 3, slower again with 4).
    workers = (os.cpu_count() or 2) + 1
    parser.add_argument("--max-children", type=int, default=workers, help="parallel mutants")
    parser.add_argument("--nice", type=int, default=10, help="lower the run's priority by this much")
    parser.add_argument("--no-type-check", action="store_true", help="run mypy-refused mutants too")
    parser.add_argument(
        "--deselect", action="append", default=[], metavar="NODEID", help="leave this test out (repeatable)"
    )
    args = parser.parse_args(argv)
    if args.names and not args.keep:
        parser.error("naming mutants re-tests them against earlier results: add --keep")
    os.nice(args.nice)
    if not args.keep:
        shutil.rmtree(STAGE / "mutants", ignore_errors=True)
    stage(args.deselect, type_check=not args.no_type_check)
    marker = uuid.uuid4().hex
    PHASES.unlink(missing_ok=True)
    started = time.time()
    status = run_mutmut(args.names, args.max_children, marker)
    ended = time.time()
    if status != 0:
        print(f"mutmut run exited {status}", file=sys.stderr)
        return status
    score = read_score()
    report(score, ended - started, args.max_children, phase_seconds(started, ended))
    return 0 if score.ratio >= TARGET_SCORE else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
