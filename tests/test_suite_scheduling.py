"""The parallel test run (``pytest -n 2``, README's test command) keeps what must run once on one
worker: each module is one unit of work, every module that uses the quick-start run is listed in
``helpers.QUICK_START_MODULES`` and those share one unit; and the benchmark loader imports each
script once."""

from __future__ import annotations

import ast

import pytest

from helpers import (
    EXPENSIVE_SCOPES,
    QUICK_START_MODULES,
    REPO_ROOT,
    load_benchmark,
    xdist_scope,
)


def _modules_requesting(fixture: str) -> set[str]:
    """Node-id paths of the test modules with a function taking ``fixture`` as an argument."""
    found = set()
    for path in sorted((REPO_ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if fixture in {a.arg for a in node.args.args}:
                    found.add(path.relative_to(REPO_ROOT).as_posix())
    return found


def test_quick_start_modules_are_exactly_the_fixture_users():
    users = _modules_requesting("quick_start_run")
    assert "tests/test_pipeline.py" in users  # the scan finds the known user
    assert users == set(QUICK_START_MODULES)


def test_each_module_is_one_unit_and_the_quick_start_modules_share_one():
    scopes = {xdist_scope(f"{m}::test_x[a::b]") for m in QUICK_START_MODULES}
    assert scopes == {"quick_start"}
    assert xdist_scope("tests/test_env.py::test_x[a::b]") == "tests/test_env.py"
    assert xdist_scope("tests/test_env.py::Case::test_y") == "tests/test_env.py"


def test_expensive_scopes_name_existing_units():
    units = {
        xdist_scope(f"{p.relative_to(REPO_ROOT).as_posix()}::t")
        for p in (REPO_ROOT / "tests").glob("test_*.py")
    }
    assert len(set(EXPENSIVE_SCOPES)) == len(EXPENSIVE_SCOPES)
    assert set(EXPENSIVE_SCOPES) <= units, set(EXPENSIVE_SCOPES) - units


def test_load_benchmark_imports_a_script_once():
    first = load_benchmark("walk_forward_gap")
    assert first.__file__ == str(REPO_ROOT / "benchmarks" / "walk_forward_gap.py")
    assert load_benchmark("walk_forward_gap") is first
    with pytest.raises(FileNotFoundError, match="no_such_script"):
        load_benchmark("no_such_script")
