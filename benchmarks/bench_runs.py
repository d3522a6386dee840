"""What comparing many runs costs (issue 14 item 2): a view's redraw with 1, 3 and N runs shown.

    python benchmarks/bench_runs.py [--runs 9] [--layers 8] [--steps 5000] [--rounds 12]

Writes N synthetic recordings once under /tmp/bnviz-bench-runs, opens them all in one Session
and, off screen, times the drift view's rebuild (every plot redrawn and painted) with 1, 3 and
all N runs visible (the others hidden), the variants interleaved round by round so machine noise
hits them alike. Reports the median, the quartiles and each variant's ratio to one run; ratios
are what to compare between machines, not the milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def recordings(n: int, layers: int, steps: int) -> list[str]:
    from bnviz.store.synthetic import write_synthetic_run

    folder = Path("/tmp/bnviz-bench-runs")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"run{i}-{layers}x{steps}.h5"
        if not path.exists():
            write_synthetic_run(path, layers=layers, channels=32, steps=steps, seed=i, pathologies=("drift",))
        paths.append(str(path))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=12)
    args = ap.parse_args()
    paths = recordings(args.runs, args.layers, args.steps)

    from bnviz.app.render import ensure_app
    from bnviz.app.session import Session
    from bnviz.app.views import VIEW_CLASSES

    app = ensure_app()
    session = Session()
    t = time.perf_counter()
    session.open(*paths)
    print(f"open {args.runs} runs: {(time.perf_counter() - t) * 1000:.0f} ms")
    view = VIEW_CLASSES["drift"](session)
    view.resize(1100, 800)
    view.show()
    app.processEvents()
    shown = sorted({1, min(3, args.runs), args.runs})
    times: dict[int, list[float]] = {k: [] for k in shown}
    for _ in range(args.rounds):
        for k in shown:
            session.state.update(hidden_runs=tuple(range(k, args.runs)))
            t = time.perf_counter()
            view.rebuild()
            app.processEvents()
            times[k].append(time.perf_counter() - t)
    one = statistics.median(times[1])
    for k, v in times.items():
        q1, _, q3 = statistics.quantiles(v, n=4)
        print(
            f"{k} visible of {args.runs} open: drift rebuild median {statistics.median(v) * 1000:.0f} ms "
            f"(quartiles {q1 * 1000:.0f}-{q3 * 1000:.0f}), {statistics.median(v) / one:.2f}x one run"
        )
    session.close()


if __name__ == "__main__":
    main()
