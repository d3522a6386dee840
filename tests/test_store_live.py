"""A reader follows a file while another process writes it: it sees the rows grow, never an error."""

import subprocess
import sys
import textwrap
import time

import numpy as np

from bnviz.store import open_run

BLOCKS, ROWS = 40, 8

WRITER = textwrap.dedent(
    """
    import sys, time
    from bnviz.store import AsyncWriter, RunWriter
    from bnviz.store.synthetic import synthetic_blocks

    table, meta, blocks = synthetic_blocks(layers=3, channels=6, steps=%d, flush_rows=%d,
                                           channel_every=2, hist_every=2, eval_every=5)
    writer = AsyncWriter(RunWriter(sys.argv[1], layers=table, meta=meta, probes=4), max_pending=4)
    print("ready", flush=True)
    for block in blocks:
        assert writer.submit(block, timeout=10)
        time.sleep(0.03)
    writer.close(timeout=30)
"""
    % (BLOCKS * ROWS, ROWS)
)


def follow(child, path):
    """Read ``path`` while ``child`` writes it; the row counts seen, writer states, final rows."""
    assert child.stdout.readline().strip() == "ready", child.stderr.read()
    with open_run(path) as run:
        seen, states = [len(run.steps)], {run.writer_state}
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline:
            grew = run.refresh()
            rows = len(run.steps)
            assert grew == (rows != seen[-1])
            seen.append(rows)
            states.add(run.writer_state)
            if rows:  # every visible row is complete, in every tier
                assert np.all(run.summary_all("n", slice(-ROWS, None)) > 0)
                assert np.all(np.diff(run.steps) >= 0)
                assert np.all(run.channels(2, "gamma", slice(-2, None)) != 0)
                assert run.hist(1, "post", -1).counts.sum() > 0
            time.sleep(0.01)
        assert child.wait(30) == 0, child.stderr.read()
        run.refresh()
        assert run.writer_state == "closed"
        return seen, states, len(run.steps)


def test_reader_follows_a_live_writer(tmp_path):
    path = tmp_path / "live.h5"
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        try:
            seen, states, total = follow(child, path)
        finally:
            child.kill()
    assert seen == sorted(seen)
    assert len(set(seen)) >= 5, f"saw too few distinct row counts: {sorted(set(seen))}"
    assert "live" in states
    assert total == BLOCKS * ROWS + BLOCKS * ROWS // 5  # train rows plus one eval row per 5 steps
