"""``python -m bnviz.app.findings_job RUN``: ``bnviz info``'s description of RUN (with its
findings) as JSON on stdout.

The viewer runs the analysis in this separate process: it reads every layer of the file, and
its memory (hundreds of MB on a 100-layer x 100k-step run) and CPU then stay out of the window's
process. Exit status 1 with the reason on stderr when the file cannot be analysed.

Start it with ``command(path)``, never a bare ``python -m``: that puts the working directory
first on the import path, so an ``h5py.py`` (or ``numpy.py``) lying in the folder the viewer
was started from would run instead of the library; ``-P`` keeps the working directory off it.
"""

from __future__ import annotations

import json
import os
import sys

from bnviz.analysis.findings import Finding
from bnviz.analysis.runinfo import describe
from bnviz.store import open_run


def command(path) -> list[str]:
    """The argv that analyses ``path`` in a separate interpreter: this one, same environment."""
    return [sys.executable, "-P", "-m", "bnviz.app.findings_job", os.path.abspath(path)]


def parse(text: str) -> tuple[dict, list[Finding]]:
    """The job's output: the description and its findings as ``Finding`` objects."""
    info = json.loads(text)
    found = [Finding(**{**d, "channels": tuple(d["channels"])}) for d in info["findings"]]
    return info, found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bnviz.app.findings_job RUN", file=sys.stderr)
        return 2
    try:
        with open_run(argv[0]) as run:
            info = describe(run)
    except Exception as e:  # reported by the panel; the viewer itself goes on
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
