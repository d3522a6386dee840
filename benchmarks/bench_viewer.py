"""Viewer speed on a big recording (issue 4 §7): first plot after open, cursor move, memory.

    python benchmarks/bench_viewer.py [--layers 100] [--steps 100000] [--rounds 40]

Makes the synthetic recording once under /tmp/bnviz-bench (several GB; not in the repo), then,
off screen: the time from ``open_files`` to the first painted drift plot; for each view, the
time for a cursor move to update and repaint every visible plot (moves interleaved across the
views, so machine noise hits them alike; median and 10-90% spread); peak resident memory.
Also the distribution-through-time table of one layer (``distribution_history``: every
histogram row of one tensor re-binned), for several layers. Budgets: first plot < 1.5 s, cursor
move < 30 ms median, distribution through time < 300 ms, RSS < 600 MB.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

BUDGET_FIRST_S, BUDGET_CURSOR_MS, BUDGET_HISTORY_MS, BUDGET_RSS_MB = 1.5, 30.0, 300.0, 600.0


def recording(layers: int, steps: int) -> Path:
    path = Path("/tmp/bnviz-bench") / f"run-{layers}x{steps}.h5"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        print(f"writing {path} (once, in a child process: the writer's memory is not the viewer's) ...", flush=True)
        child = multiprocessing.get_context("spawn").Process(target=_write, args=(path, layers, steps))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"writing {path} failed (exit code {child.exitcode})")
        print(f"  {path.stat().st_size / 2**30:.1f} GiB in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def _write(path: Path, layers: int, steps: int) -> None:
    from bnviz.store.synthetic import PATHOLOGIES, write_synthetic_run

    tmp = path.with_suffix(".part")
    write_synthetic_run(
        tmp,
        layers=layers,
        channels=32,
        steps=steps,
        flush_rows=1024,
        channel_every=10,
        hist_every=10,
        eval_every=1000,
        pathologies=PATHOLOGIES,
        overwrite=True,
    )
    tmp.rename(path)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=100)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    path = recording(args.layers, args.steps)

    from PySide6 import QtCore

    from bnviz.app.main_window import MainWindow
    from bnviz.app.render import ensure_app
    from bnviz.app.state import VIEWS

    app = ensure_app()
    rss_start = rss_mb()
    settings = QtCore.QSettings("/tmp/bnviz-bench/settings.ini", QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings)
    w.resize(1600, 1000)
    w.show()
    app.processEvents()

    t0 = time.perf_counter()
    assert w.open_files(str(path)), w.last_error
    app.processEvents()
    w.current_view().glw.viewport().repaint()
    first = time.perf_counter() - t0
    print(
        f"first plot (drift, {args.layers} layers x {args.steps} steps): {first:.2f} s "
        f"(budget {BUDGET_FIRST_S} s); RSS {rss_mb():.0f} MB",
        flush=True,
    )

    t = time.perf_counter()
    w.findings.wait(600_000)
    app.processEvents()
    print(
        f"findings (background thread) done {time.perf_counter() - t0:.1f} s after open: "
        f"{len(w.findings.items)} findings; RSS {rss_mb():.0f} MB",
        flush=True,
    )

    steps = w.session.steps
    rng = np.random.default_rng(0)
    views = list(VIEWS)
    # each view drawn once (its own first-draw cost), then cursor moves interleaved across views
    for v in views:
        t = time.perf_counter()
        w.session.state.update(view=v)
        app.processEvents()
        w.current_view().glw.viewport().repaint()
        print(f"  first draw of {v:13s} {1000 * (time.perf_counter() - t):7.0f} ms; RSS {rss_mb():.0f} MB", flush=True)
    times = {v: [] for v in views}
    full = {v: [] for v in views}
    for _ in range(args.rounds):
        for v in rng.permutation(views):
            w.session.state.update(view=str(v))
            app.processEvents()
            step = int(steps[rng.integers(len(steps))])
            t = time.perf_counter()
            w.session.state.update(step=step)
            app.processEvents()  # Qt repaints what the move made dirty
            times[str(v)].append(1000 * (time.perf_counter() - t))
            w.current_view().glw.viewport().repaint()
            full[str(v)].append(1000 * (time.perf_counter() - t))
    print(
        f"cursor move: state update + Qt's repaint of the dirty regions (and, worst case, a forced "
        f"repaint of the whole view), {args.rounds} moves each (budget {BUDGET_CURSOR_MS:.0f} ms median):"
    )
    for v in views:
        a, b = np.array(times[v]), np.array(full[v])
        print(
            f"  {v:13s} median {np.median(a):6.1f} ms   10-90% {np.percentile(a, 10):6.1f} - "
            f"{np.percentile(a, 90):6.1f} ms    whole view {np.median(b):6.1f} ms"
        )
    from bnviz.app.data import distribution_history

    run = w.session.primary.run
    layers = [li.path for li in run.layers]
    hist_ms = []
    for name in rng.permutation(layers)[:10]:
        t = time.perf_counter()
        distribution_history(run, str(name), "post")
        hist_ms.append(1000 * (time.perf_counter() - t))
    h = np.array(hist_ms)
    print(
        f"distribution through time of one layer ({len(run.hist_steps)} histogram rows, 10 layers): median "
        f"{np.median(h):.0f} ms, 10-90% {np.percentile(h, 10):.0f} - {np.percentile(h, 90):.0f} ms "
        f"(budget {BUDGET_HISTORY_MS:.0f} ms)"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"memory: RSS now {rss_mb():.0f} MB, peak {peak:.0f} MB (Qt + Python baseline "
        f"{rss_start:.0f} MB; budget {BUDGET_RSS_MB:.0f} MB)"
    )
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
