"""Packaging: every subpackage is listed, and a wheel installs like a tool (demo data included)."""

import hashlib
import os
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import numpy
import pytest

from bnviz.demo import DEMO_RUNS, PACKAGED_FOLDER
from bnviz.store import open_run
from bnviz.store.schema import FORMAT_VERSION_TEXT

ROOT = Path(__file__).resolve().parents[1]
# where this environment keeps its packages (the fresh one borrows them)
SITE = Path(numpy.__file__).parents[1]


def test_every_package_directory_is_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "bnviz").rglob("__init__.py")}
    found |= {
        "bnviz.hooks" + "".join("." + part for part in p.parent.relative_to(ROOT / "hooks").parts)
        for p in (ROOT / "hooks").rglob("__init__.py")
    }
    assert found == listed
    assert config["package-dir"] == {"bnviz": "bnviz", "bnviz.hooks": "hooks"}


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "-w", str(out), "--no-deps", "-q"],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (path,) = out.glob("bnviz-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh virtual environment holding only the wheel; its dependencies come from PYTHONPATH:
    all of this environment's packages (the view extra), or numpy and h5py alone (the base install)."""
    root = tmp_path_factory.mktemp("fresh")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    base = root / "base-deps"
    base.mkdir()
    for entry in SITE.iterdir():
        if entry.name.split("-")[0].split(".")[0] in ("numpy", "h5py"):
            (base / entry.name).symlink_to(entry)
    work = root / "work"
    work.mkdir()
    return venv, {"view": str(SITE), "base": str(base)}, work


def run_in(installed, deps, *args, **kwargs):
    venv, paths, work = installed
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "PYTHONPATH": paths[deps],
        "QT_QPA_PLATFORM": "offscreen",
        "HOME": str(work),
    }
    return subprocess.run(list(args), capture_output=True, text=True, cwd=work, env=env, timeout=300, **kwargs)


@pytest.mark.slow
def test_the_wheel_carries_the_current_demo_recordings(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name in DEMO_RUNS:
            member = f"bnviz/{PACKAGED_FOLDER}/{name}"
            assert member in names
            data = z.read(member)
            assert digest(data) == digest((ROOT / "sample_runs" / name).read_bytes())
            (tmp_path / name).write_bytes(data)
            with open_run(tmp_path / name) as run:
                assert run.format_version == FORMAT_VERSION_TEXT and run.writer_state == "closed"
    assert sum(z.getinfo(n).file_size for n in names) < 12 * 2**20, "keep the wheel small"


@pytest.mark.slow
def test_the_base_install_reads_the_demo_and_says_what_pictures_need(installed):
    venv = installed[0]
    where = run_in(
        installed,
        "base",
        "python",
        "-c",
        "import bnviz, bnviz.demo; print(bnviz.__file__); print(*bnviz.demo.demo_paths(), sep='\\n')",
    )
    assert where.returncode == 0, where.stderr
    lines = where.stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in lines), lines
    demo_file = lines[1]
    info = run_in(installed, "base", "bnviz", "info", demo_file)
    assert info.returncode == 0 and "findings" in info.stdout, info.stderr
    png = run_in(installed, "base", "bnviz", "export", demo_file, "--layer", "7", "-o", "x.png")
    assert png.returncode == 1 and png.stderr.count("\n") == 1
    assert "pip install 'bnviz[view]'" in png.stderr


@pytest.mark.slow
def test_bnviz_demo_from_the_wheel_opens_a_window(installed):
    venv, paths, work = installed
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "PYTHONPATH": paths["view"],
        "QT_QPA_PLATFORM": "offscreen",
        "HOME": str(work),
    }
    proc = subprocess.Popen(
        ["bnviz", "demo"], cwd=work, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        time.sleep(8)  # a failed start (no recordings, a missing library) exits within a second or two
        running = proc.poll() is None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    assert running, err
    assert "error" not in err.lower(), err
