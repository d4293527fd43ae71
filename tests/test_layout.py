"""The suite tests the checkout it lives in, not an installed copy of the project.

A package-shaped test folder (`tests/ledger/__init__.py`) once made pytest import the tests
as `ledger`, and the real package came only through the editable install, i.e. from
whichever tree that install points at. These checks fail in any checkout whose code is not
the code under test, in this process and in the processes tests start.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("ledger", "fl_node", "api")


def test_repo_root_is_this_checkout() -> None:
    assert Path(__file__).resolve().parent.parent == REPO_ROOT


@pytest.mark.parametrize("name", PACKAGES)
def test_packages_import_from_this_checkout(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    location = Path(module.__file__).resolve()
    assert location.is_relative_to(REPO_ROOT / name), f"{name} imported from {location}, not {REPO_ROOT}"


def test_no_test_folder_is_a_package_named_like_the_project() -> None:
    shadowing = [str(p) for p in (REPO_ROOT / "tests").glob("*/__init__.py")]
    assert not shadowing, f"test folders must not be packages (they shadow the real ones): {shadowing}"


def test_test_module_basenames_are_unique() -> None:
    # Without packages, pytest imports each test file by its basename: two alike would collide.
    names = [p.name for p in (REPO_ROOT / "tests").rglob("test_*.py") if "node_modules" not in p.parts]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"test files share a basename: {duplicates}"


def test_subprocesses_import_this_checkout() -> None:
    code = "import ledger, fl_node, api; print(ledger.__file__); print(fl_node.__file__); print(api.__file__)"
    env = dict(os.environ)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd="/"
    ).stdout.split()
    for name, path in zip(PACKAGES, out, strict=True):
        where = Path(path).resolve()
        assert where.is_relative_to(REPO_ROOT / name), f"a subprocess imported {name} from {where}"
