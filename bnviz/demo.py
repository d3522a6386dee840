"""The demo recordings: the BN paper's Figure 1 pair (with vs without BN) that ``bnviz demo`` opens.

A wheel carries them as package data in ``bnviz/demo_runs/``, copied from ``sample_runs/`` when
the wheel is built (setup.py), so the copy is never older than the sample runs it was built
from. A checkout (an editable install) has no such folder and uses ``sample_runs/`` itself.
This module imports only the standard library: setup.py reads it too.
"""

from __future__ import annotations

from pathlib import Path

DEMO_RUNS = ("bn_paper_with_bn.h5", "bn_paper_without_bn.h5")
# the last hidden layer: where the BN paper's Figure 1 looks
DEMO_LAYER = "7"
PACKAGED_FOLDER = "demo_runs"


def demo_folders() -> list[Path]:
    """Where the demo recordings may be, first match wins: installed with the package, then the
    sample_runs/ of the repository checkout this bnviz runs from."""
    here = Path(__file__).resolve().parent
    return [here / PACKAGED_FOLDER, here.parent / "sample_runs"]


def demo_paths() -> list[Path]:
    """The demo recordings (with BN, without BN); FileNotFoundError says how to get them."""
    folders = demo_folders()
    for folder in folders:
        paths = [folder / name for name in DEMO_RUNS]
        if all(p.is_file() for p in paths):
            return paths
    raise FileNotFoundError(
        f"the demo recordings {' and '.join(DEMO_RUNS)} are in neither {folders[0]} nor {folders[1]}: "
        f"reinstall bnviz (`pip install --force-reinstall 'bnviz[view]'`), or in a checkout of the bnviz "
        f"repository make them with `python sample_runs/bn_paper.py` (about a minute; needs torch and "
        f"scikit-learn)"
    )
