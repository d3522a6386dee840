"""A writer killed at any point leaves a file that opens with every committed row, and no half rows.

The writer runs in a subprocess that SIGKILLs itself at a chosen point of an append (between two
dataset writes, just before the data flush, between the data flush and the commit) or after a
delay while the background writer thread is busy. It prints its committed row count after each
append, so the test knows what must be in the file.
"""

import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bnviz.store import open_run

ROWS_PER_BLOCK = 16

CHILD = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import h5py
    from bnviz.store import AsyncWriter, RunWriter
    from bnviz.store.synthetic import synthetic_blocks

    path, point, n = sys.argv[1], sys.argv[2], float(sys.argv[3])
    table, meta, blocks = synthetic_blocks(layers=4, channels=8, steps=10**7, flush_rows=%d,
                                           channel_every=2, hist_every=3, probes=2)
    calls = {"write": 0, "flush": 0}

    def kill_on(kind, original):
        def wrapper(*args, **kw):
            calls[kind] += 1
            if calls[kind] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kw)
        return wrapper

    if point == "write":
        RunWriter._write = kill_on("write", RunWriter._write)
    elif point == "flush":
        h5py.File.flush = kill_on("flush", h5py.File.flush)
    writer = RunWriter(path, layers=table, meta=meta, probes=2)
    if point == "timer":
        threading.Timer(n, os.kill, (os.getpid(), signal.SIGKILL)).start()
        async_writer = AsyncWriter(writer, max_pending=2)
        for block in blocks:
            while not async_writer.submit(block, timeout=1.0):
                pass
            print(writer.rows["summary"], flush=True)
    for block in blocks:
        writer.append(block)
        print(writer.rows["summary"], flush=True)
"""
    % ROWS_PER_BLOCK
)

# (point, n): the n-th dataset write, the n-th flush (odd: before an append's data flush,
# even: after it, before the commit), or a kill after n seconds of asynchronous writing.
KILL_POINTS = [
    ("write", 3),
    ("write", 60),
    ("flush", 1),
    ("flush", 2),
    ("flush", 7),
    ("flush", 8),
    ("timer", 0.3),
    ("timer", 0.7),
    ("timer", 1.1),
]


@pytest.mark.parametrize("point,n", KILL_POINTS)
def test_killed_writer_leaves_every_committed_row(tmp_path, point, n):
    path = tmp_path / "run.h5"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), point, str(n)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == -signal.SIGKILL, out.stderr
    printed = [int(line) for line in out.stdout.split()]
    known = printed[-1] if printed else 0  # committed before the last report
    with open_run(path) as run:
        assert run.writer_state == "writer gone"
        rows = len(run.steps)
        # the kill may land after a commit and before its report; asynchronously, every block
        # submitted (one report each, plus the one being submitted) may have been committed
        submitted = len(printed) + 1 if point == "timer" else known // ROWS_PER_BLOCK + 1
        assert known <= rows <= submitted * ROWS_PER_BLOCK
        assert rows % ROWS_PER_BLOCK == 0
        np.testing.assert_array_equal(run.steps, np.arange(rows))
        # no half rows: unwritten data would read back as HDF5's fill value, zero
        assert np.all(run.summary_all("n") > 0)
        assert np.all(run.times > 0)
        np.testing.assert_array_equal(run.channel_steps, np.arange(0, rows, 2))
        for layer in range(4):
            assert np.all(run.channels(layer, "running_var") > 0)
            assert np.all(np.isfinite(run.quantiles(layer, "pre")))
        np.testing.assert_array_equal(run.hist_steps, np.arange(0, rows, 3))
        for row in range(len(run.hist_steps)):
            assert run.hist(0, "xhat", row).counts.sum() > 0
        if rows:
            np.testing.assert_array_equal(run.scalar("loss")[0], np.arange(rows))
