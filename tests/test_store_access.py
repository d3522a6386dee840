"""How the store opens files: any number of opens of a live file, a caller's mistakes reported as
such, and what is not a recording (pipes, devices, unreadable files) named before HDF5 runs."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bnviz.store import EmptyRunFile, NotHDF5File, RunFileError, open_run
from bnviz.store.reader import Run
from bnviz.store.synthetic import write_synthetic_run

WRITER = textwrap.dedent("""
    import sys, time
    from bnviz.store import AsyncWriter, RunWriter
    from bnviz.store.synthetic import synthetic_blocks
    table, meta, blocks = synthetic_blocks(layers=3, channels=6, steps=100_000, flush_rows=8,
                                           channel_every=2, hist_every=2)
    writer = AsyncWriter(RunWriter(sys.argv[1], layers=table, meta=meta, probes=4), max_pending=4)
    for block in blocks:
        writer.submit(block, timeout=10)
        print(writer.writer.rows["summary"], flush=True)
        if sys.stdin.readline().strip() == "stop":
            break
        time.sleep(0.01)
    writer.close(timeout=30)
""")


def _everything(run):
    """Every committed row of every tier, read through the public API."""
    return (
        run.steps.copy(),
        [run.summary_layer(i) for i in range(3)],
        [run.channels(i, "gamma") for i in range(3)],
        run.hist(2, "post", -1).counts,
        run.quantiles(1, "post"),
    )


class LiveWriter:
    """A writer process that appends one block of 8 rows each time it is told to."""

    def __init__(self, path):
        self.child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def advance(self, blocks):
        for _ in range(blocks):
            self.child.stdout.readline()
            self.child.stdin.write("go\n")
            self.child.stdin.flush()
        time.sleep(0.3)  # let the last block be committed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        with self.child:
            self.child.stdin.write("stop\n")
            self.child.stdin.flush()
            assert self.child.wait(60) == 0


def test_a_live_file_opens_any_number_of_times_in_one_process(tmp_path):
    path = tmp_path / "live.h5"
    with LiveWriter(path) as writer:
        writer.advance(20)
        first = open_run(path)
        seen_first = len(first.steps)
        writer.advance(20)  # the file grows while `first` is open
        second = open_run(path)
        first.refresh()
        assert len(second.steps) >= len(first.steps) > seen_first > 0
        second.refresh() or first.refresh()
        n = min(len(first.steps), len(second.steps))
        a, b = _everything(first), _everything(second)
        np.testing.assert_array_equal(a[0][:n], b[0][:n])
        np.testing.assert_array_equal(a[1][0][:n], b[1][0][:n])
        third = open_run(path)  # a third open, and the first one closed under the others
        first.close()
        writer.advance(10)
        assert second.refresh() and third.refresh()
        assert len(second.steps) == len(third.steps) > n
        for run in (second, third):
            steps, summaries, gammas, counts, quantiles = _everything(run)
            assert np.all(np.diff(steps) >= 0)
            assert all(np.all(s[:, 0] > 0) for s in summaries)  # field "n": every row complete
            assert counts.sum() > 0 and len(quantiles) == len(steps)
        second.close()
        assert len(third.steps) > 0
        third.close()


def test_export_and_info_of_a_live_file_while_a_viewer_has_it_open(qapp, tmp_path, capsys):
    from bnviz.cli import main
    from bnviz.export import export

    path = tmp_path / "live.h5"
    with LiveWriter(path) as writer:
        writer.advance(10)
        with open_run(path) as viewer:  # a viewer holds it, and its export reopens it
            writer.advance(10)
            written = export(viewer, tmp_path / "out.csv", layer=viewer.layers[1].path)
            rows = written[0].read_text().splitlines()
            writer.advance(5)
            assert main(["export", str(path), "-o", str(tmp_path / "all.csv")]) == 0
            assert main(["info", str(path)]) == 0
            assert viewer.refresh()
        assert len(rows) > 80
        assert "being written" in capsys.readouterr().out


@pytest.fixture(scope="module")
def closed_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "run.h5"
    write_synthetic_run(path, layers=2, channels=4, steps=50)
    return path


def test_a_callers_mistake_is_reported_as_that_not_as_damage(closed_run):
    with open_run(closed_run) as run:
        with pytest.raises(TypeError, match="integer row indices"):
            run.summary(0, "pre_mean", np.array([1.5, 2.0]))
        with pytest.raises(TypeError, match="integer row indices"):
            run.summary(0, "pre_mean", "all")
        with pytest.raises(IndexError, match="50 committed rows"):
            run.summary(0, "pre_mean", 50)
        with pytest.raises(IndexError, match="50 committed rows"):
            run.channels(1, "gamma", [0, 99])
        with pytest.raises(KeyError, match="no layer 'nope'"):
            run.summary("nope", "pre_mean")
        with pytest.raises(KeyError, match="unknown summary field"):
            run.summary(0, "no_such_field")
        for mistake in (TypeError, IndexError, KeyError):
            assert not issubclass(mistake, RunFileError)
        # the same selections, right, still work after the mistakes
        assert run.summary(0, "pre_mean", np.array([1, 2])).shape == (2,)
        assert run.summary(0, "pre_mean", slice(None, None, -7)).shape == (8,)
        np.testing.assert_array_equal(run.summary(0, "n", slice(None, None, -1)), run.summary(0, "n")[::-1])


def test_a_run_declares_its_ranks_itself(closed_run):
    run = Run(closed_run)  # not through open_run: a one-process job of itself
    try:
        assert run.ranks == [run] and run.rank_problems == {}
    finally:
        run.close()


def test_pipes_devices_and_unreadable_files_are_named(tmp_path, closed_run):
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero", "/dev/null"):
        with pytest.raises(NotHDF5File, match="not a regular file"):
            open_run(path)
    (tmp_path / "empty.h5").touch()
    with pytest.raises(EmptyRunFile):
        open_run(tmp_path / "empty.h5")


def test_an_unreadable_file_is_a_run_file_error(closed_run):
    folder = Path(tempfile.mkdtemp(prefix="bnviz-perm-"))  # pytest's own folders are private
    folder.chmod(0o755)
    path = folder / "secret.h5"
    path.write_bytes(closed_run.read_bytes())
    path.chmod(0)
    hidden = folder / "private"
    hidden.mkdir(mode=0o700)
    shutil.copy(closed_run, hidden / "run.h5")
    # root reads anything: the child drops to user nobody once bnviz is imported
    code = textwrap.dedent("""
        import os, sys
        import bnviz.store.ranks
        from bnviz.store import open_run, RunFileError
        if os.geteuid() == 0:
            os.setuid(65534)
        for path in sys.argv[1:]:
            try:
                open_run(path)
            except RunFileError as e:
                print(type(e).__name__, e)
    """)
    try:
        out = subprocess.run(
            [sys.executable, "-c", code, str(path), str(hidden / "run.h5")], capture_output=True, text=True, timeout=60
        )
    finally:
        shutil.rmtree(folder)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines == [
        f"RunFileError {path}: permission denied: this user may not read the file",
        f"RunFileError {hidden / 'run.h5'}: permission denied: this user may not open the folder that holds the file",
    ]


def test_the_findings_job_ignores_modules_planted_in_the_working_directory(tmp_path, closed_run):
    from bnviz.app import findings_job

    planted = tmp_path / "cwd"
    planted.mkdir()
    marker = tmp_path / "planted-ran"
    (planted / "h5py.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(7)\n")
    naive = subprocess.run(
        [sys.executable, "-m", "bnviz.app.findings_job", str(closed_run)], cwd=planted, capture_output=True, timeout=120
    )
    assert naive.returncode == 7 and marker.exists()  # the plant works on a bare `python -m`
    marker.unlink()
    out = subprocess.run(findings_job.command(closed_run), cwd=planted, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert not marker.exists()
    info, found = findings_job.parse(out.stdout)
    assert info["steps"]["rows"] == 50
