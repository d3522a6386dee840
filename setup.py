"""Builds the package as pyproject.toml describes, plus the demo recordings as package data.

The demo pair is copied from sample_runs/ into the built package (bnviz/demo_runs/) at build
time, so a wheel always carries the sample runs of the tree it was built from.
"""

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _demo_module():
    spec = importlib.util.spec_from_file_location("_bnviz_demo", ROOT / "bnviz" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithDemo(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads sample_runs/ in place
            return
        demo = _demo_module()
        target = Path(self.build_lib) / "bnviz" / demo.PACKAGED_FOLDER
        target.mkdir(parents=True, exist_ok=True)
        for name in demo.DEMO_RUNS:
            source = ROOT / "sample_runs" / name
            if not source.is_file():
                raise SystemExit(
                    f"{source} is missing: make it with `python sample_runs/bn_paper.py` before building a wheel"
                )
            shutil.copyfile(source, target / name)


setup(cmdclass={"build_py": BuildWithDemo})
