"""``python -m bnviz.app.findings_job RUN``: the findings of RUN as JSON on stdout.

The viewer runs the analysis in this separate process: it reads every layer of the file, and
its memory (hundreds of MB on a 100-layer x 100k-step run) and CPU then stay out of the window's
process. Exit status 1 with the reason on stderr when the file cannot be analysed.
"""

from __future__ import annotations

import json
import sys

from bnviz.analysis.findings import Finding, findings
from bnviz.store import open_run


def to_json(items: list[Finding]) -> str:
    return json.dumps([f.to_dict() for f in items], allow_nan=True)


def from_json(text: str) -> list[Finding]:
    return [Finding(**{**d, "channels": tuple(d["channels"])}) for d in json.loads(text)]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bnviz.app.findings_job RUN", file=sys.stderr)
        return 2
    try:
        with open_run(argv[0]) as run:
            result = findings(run)
    except Exception as e:  # reported by the panel; the viewer itself goes on
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(to_json(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
