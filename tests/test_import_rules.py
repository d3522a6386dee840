"""The two sides stay apart: the training side never imports Qt, the viewer side never torch.

Checked twice: by importing every module of a side in a fresh interpreter and looking at
sys.modules (catches indirect imports), and by scanning the source for import statements
(catches imports inside functions that a plain import would not run).
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "bnviz.app")
TORCH = ("torch", "bnviz.hooks")
VIEWER_PACKAGES = ("bnviz.store", "bnviz.analysis", "bnviz.app")
VIEWER_SOURCES = [
    *(ROOT / "bnviz").glob("*.py"),
    *(p for pkg in ("store", "analysis", "app") for p in (ROOT / "bnviz" / pkg).rglob("*.py")),
]
TRAINING_SOURCES = sorted((ROOT / "hooks").rglob("*.py"))

_PROBE = """
import importlib, json, pkgutil, sys
for pkg in {packages!r}:
    m = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(m.__path__, pkg + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
{extra}
print(json.dumps(sorted(sys.modules)))
"""


def loaded_after(packages, extra=""):
    code = _PROBE.format(packages=tuple(packages), extra=extra)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def offenders(modules, banned):
    return sorted(m for m in modules if any(m == b or m.startswith(b + ".") for b in banned))


def test_training_side_imports_no_qt():
    assert offenders(loaded_after(["bnviz.hooks"]), QT) == []


def test_viewer_side_imports_no_torch(tmp_path):
    run = tmp_path / "run.h5"
    # Exercise the CLI's read paths too, not only module import.
    extra = (
        f"from bnviz.store.synthetic import write_synthetic_run\n"
        f"write_synthetic_run({str(run)!r}, layers=2, channels=4, steps=20)\n"
        f"import bnviz, bnviz.cli, bnviz.export\n"
        f"assert bnviz.cli.main(['info', {str(run)!r}, '--json']) == 0\n"
        f"bnviz.findings(bnviz.open_run({str(run)!r}))\n"
    )
    assert offenders(loaded_after(VIEWER_PACKAGES, extra), TORCH) == []


def test_import_bnviz_loads_neither_torch_nor_qt():
    modules = loaded_after([], "import bnviz")
    assert offenders(modules, TORCH + QT) == []


def imported_names(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize(
    "sources, banned", [(TRAINING_SOURCES, QT), (VIEWER_SOURCES, TORCH)], ids=["training-no-qt", "viewer-no-torch"]
)
def test_no_source_file_imports_across_the_line(sources, banned):
    assert sources, "no source files found: the scan would prove nothing"
    bad = {str(p.relative_to(ROOT)): offenders(imported_names(p), banned) for p in sources}
    assert {k: v for k, v in bad.items() if v} == {}
