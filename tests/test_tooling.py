"""The tree is clean under the formatter, the linter and the type checker configured in
pyproject.toml, so a full test run catches what CI's .ci/run would (CONTRIBUTING.md)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_tool(*args):
    tool = Path(sys.executable).parent / args[0]
    if not tool.exists():
        pytest.fail(f"{args[0]} is not installed in this environment: pip install -e '.[test]'")
    return subprocess.run([str(tool), *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_tree_is_formatted():
    out = run_tool("ruff", "format", "--check", ".")
    assert out.returncode == 0, f"run `ruff format .`:\n{out.stdout}{out.stderr}"


def test_the_tree_passes_the_linter():
    out = run_tool("ruff", "check", ".")
    assert out.returncode == 0, f"run `ruff check --fix .` and fix the rest:\n{out.stdout}{out.stderr}"


def test_the_package_type_checks():
    out = run_tool("mypy")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success" in out.stdout
