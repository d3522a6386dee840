"""A reader follows a file while another process writes it: it sees the rows grow, never an error,
and follows the run into the segments a resumed training writes."""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from live_writer import Writer, blocks  # tests/live_writer.py (pytest's pythonpath)

from bnviz.store import checks, h5files, layout, open_run, reader, schema
from bnviz.store.errors import CorruptRunFile
from bnviz.store.reader import Run
from bnviz.store.segments import segment_path

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


# --- a file caught mid-write is not a damaged file --------------------------------------------------


def test_a_commit_landing_while_the_file_opens_is_not_damage(tmp_path, monkeypatch):
    """Opening reads the datasets, then the commit record: a commit landing in between made the
    committed rows look missing (CorruptRunFile on a healthy live file, under load)."""
    path = tmp_path / "live.h5"
    with Writer(path, "--steps", "40") as writer:
        writer.send()
        checked = Run._check_datasets
        landed = []

        def check_then_commit(run):
            checked(run)
            landed.append(writer.send() if not landed else None)  # the writer commits 8 more rows now

        monkeypatch.setattr(Run, "_check_datasets", check_then_commit)
        with open_run(path) as run:
            assert landed == [16], "opened at the first try (a second try would hide the race)"
            assert len(run.steps) == 16
            assert list(run.steps) == list(range(16))
        writer.end()


def test_a_refresh_that_catches_the_writer_mid_write_keeps_the_last_view(tmp_path, monkeypatch):
    """A failure of a file being written may be the writer's flush in progress: the reader keeps the
    last good view and says it is waiting, until the failure outlasts the grace; a file no writer
    is at fails at once."""
    path = tmp_path / "live.h5"
    committed = checks.committed

    def mid_write(path, *args):
        raise CorruptRunFile(path, "the commit record says 16 summary rows, but the file holds 8; the file is damaged")

    with Writer(path, "--steps", "40") as writer:
        writer.send()
        assert h5files.being_written(path)
        loads, load = [], Run._load_header

        def fails_once(run):
            loads.append(1)
            if len(loads) == 1:
                raise CorruptRunFile(path, "cannot read dataset summary (checksum failed); the file is damaged")
            load(run)

        monkeypatch.setattr(Run, "_load_header", fails_once)
        with open_run(path) as run:  # opened on the second try
            monkeypatch.setattr(Run, "_load_header", load)
            assert len(loads) == 2 and len(run.steps) == 8 and run.waiting is None
            monkeypatch.setattr(checks, "committed", mid_write)
            writer.send()
            assert not run.refresh() and len(run.steps) == 8
            assert "waiting for the writer" in run.waiting and "holds 8" in run.waiting
            monkeypatch.setattr(checks, "committed", committed)
            assert run.refresh() and len(run.steps) == 16 and run.waiting is None

            monkeypatch.setattr(checks, "committed", mid_write)  # a failure that lasts is damage
            monkeypatch.setattr(reader, "LIVE_GRACE_S", 0.05)
            writer.send()
            assert not run.refresh()
            time.sleep(0.1)
            with pytest.raises(
                CorruptRunFile, match=r"holds 8; the file is damaged \(for \d+ s, while its writer went on writing\)"
            ):
                run.refresh()
        writer.end()
    assert not h5files.being_written(path)  # closed: HDF5's open-for-write flags are cleared
    killed = tmp_path / "killed.h5"
    with Writer(killed, "--steps", "8", "--end", "kill") as gone:
        gone.send()
        gone.end()
    assert h5files.being_written(killed)  # a killed writer leaves the flags set ...
    os.utime(killed, (0, 0))
    assert not h5files.being_written(killed)  # ... but the file stops changing
    loads.clear()
    monkeypatch.setattr(Run, "_load_header", fails_once)
    with pytest.raises(CorruptRunFile, match="checksum failed"):
        open_run(killed)
    assert len(loads) == 1, "no writer at work: no second try"


LATE = textwrap.dedent(
    """
    import sys, h5py, numpy as np
    with h5py.File(sys.argv[1], "w", libver="latest") as f:
        late = f.create_dataset("late", shape=(4,), dtype="f8")  # contiguous: space comes with the first write
        f.swmr_mode = True
        print("ready", flush=True)
        sys.stdin.readline()
        late[...] = np.arange(4.0)
        f.flush()
        print("written", flush=True)
        sys.stdin.readline()
    """
)


def test_space_a_writer_allocated_after_the_reader_opened_is_read(tmp_path):
    """An open file keeps the end of file it read at open, and HDF5 refuses to open a dataset
    whose space lies past it (``invalid dataset size``): the reader tries again on a fresh open."""
    path = tmp_path / "late.h5"
    with subprocess.Popen(
        [sys.executable, "-c", LATE, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout.readline().strip() == "ready"
            f = h5files.ReadFile(path)
            assert f.read("late", lambda: f.dataset("late")[()]).tolist() == [0, 0, 0, 0]  # no space yet
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "written"
            f.mark_stale()
            assert f.read("late", lambda: f.dataset("late")[()]).tolist() == [0, 1, 2, 3]
            f.close()
            child.stdin.write("end\n")
            child.stdin.flush()
            assert child.wait(30) == 0
        finally:
            child.kill()


def test_scalar_names_logged_after_a_reader_opened_are_read(tmp_path):
    """A viewer opened before the first logged scalar reads the names once they come (the writer
    allocates the name table's space when it makes the file)."""
    path = tmp_path / "live.h5"
    with Writer(path, "--steps", "16") as writer, open_run(path) as run:
        assert run.scalar_names == [] and run._h5.dataset(layout.SCALAR_NAMES).id.get_offset() is not None
        writer.send("all")
        assert run.refresh()
        assert run.scalar_names == list(blocks(16)[2][0].scalar_names)
        assert run.waiting is None
        writer.end()


# --- following a run into its resumed segments --------------------------------------------------------


def test_a_reader_following_a_run_sees_its_resumed_segment_and_the_rows_it_replaces(tmp_path):
    """The first attempt dies at step 39 after a checkpoint at 24; the restart writes segment 1
    from step 24. A reader that opened the run as one file ends with the joined rows."""
    path = tmp_path / "run.h5"
    pre_mean = schema.SUMMARY_FIELDS.index("pre_mean")
    with Writer(path, "--steps", "40", "--end", "kill") as first, open_run(path) as run:
        first.send("all")
        first.end()
        assert run.refresh() and list(run.steps) == list(range(40)) and run.writer_state == "writer gone"
        with Writer(segment_path(path, 1), "--steps", "48", "--seed", "1", "--segment-start", "24") as second:
            assert run.refresh(), "the new segment (no rows yet) takes back the steps from its start"
            assert list(run.steps) == list(range(24)) and run.writer_state == "live"
            second.send()
            assert run.refresh() and list(run.steps) == list(range(32))
            second.send("all")
            second.end()
        assert run.refresh() and run.writer_state == "closed" and len(run.segments) == 2
        assert list(run.steps) == list(range(48))
        kept = [b.summary[..., pre_mean] for b in blocks(40)[2]][:3]  # rows 0..23 of the first attempt
        resumed = [b.summary[..., pre_mean] for b in blocks(48, seed=1, segment_start=24)[2]]
        np.testing.assert_array_equal(run.summary_all("pre_mean"), np.concatenate(kept + resumed).astype(np.float32))
        assert not run.refresh()
