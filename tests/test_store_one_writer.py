"""One writer per file, across processes: a second recorder on a path being written is refused,
with or without overwrite=True, and overwrite=True never truncates a file someone has open."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bnviz.store import RunFileInUse, RunWriter, open_run
from bnviz.store.h5files import aside_path, lock_path
from bnviz.store.synthetic import synthetic_blocks, write_synthetic_run

# Writes blocks of 8 rows while its stdin says "go"; exits at "stop".
WRITER = textwrap.dedent("""
    import sys
    from bnviz.store import RunWriter
    from bnviz.store.synthetic import synthetic_blocks
    table, meta, blocks = synthetic_blocks(layers=2, channels=4, steps=100_000, flush_rows=8)
    with RunWriter(sys.argv[1], layers=table, meta=meta, probes=4) as writer:
        for block in blocks:
            writer.append(block)
            print(writer.rows["summary"], flush=True)
            if sys.stdin.readline().strip() == "stop":
                break
""")


class Writer:
    def __init__(self, path):
        self.child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.rows = int(self.child.stdout.readline())

    def advance(self, blocks=1):
        for _ in range(blocks):
            self.child.stdin.write("go\n")
            self.child.stdin.flush()
            self.rows = int(self.child.stdout.readline())

    def stop(self):
        with self.child:
            self.child.stdin.write("stop\n")
            self.child.stdin.flush()
            assert self.child.wait(60) == 0


def second_writer(path, **kw):
    table, meta, blocks = synthetic_blocks(layers=3, channels=2, steps=50, flush_rows=50, seed=9)
    writer = RunWriter(path, layers=table, meta=meta, probes=4, **kw)
    writer.append(next(blocks))
    writer.close()


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_second_writer_on_a_live_file_is_refused(tmp_path, overwrite):
    path = tmp_path / "run.h5"
    first = Writer(path)
    try:
        first.advance(5)
        with pytest.raises(FileExistsError) as err:
            second_writer(path, overwrite=overwrite)
        if overwrite:  # not "the file exists": another recorder is writing it
            assert isinstance(err.value, RunFileInUse)
            assert f"pid {first.child.pid}" in str(err.value) and "overwrite=True does not" in str(err.value)
        first.advance(5)
    finally:
        first.stop()
    with open_run(path) as run:  # the first run is whole: every row its writer committed
        assert len(run.layers) == 2 and len(run.steps) == first.rows == 88
        np.testing.assert_array_equal(run.steps, np.arange(88))
        assert np.all(run.summary_all("n") > 0)  # no zero rows from a clobbering writer
    assert not lock_path(path).exists() and not aside_path(path).exists()
    second_writer(path, overwrite=True)  # once it closed, the path is free again
    with open_run(path) as run:
        assert len(run.layers) == 3 and len(run.steps) == 50


def test_overwrite_never_truncates_a_file_a_reader_has_open(tmp_path):
    path = tmp_path / "run.h5"
    write_synthetic_run(path, layers=2, channels=4, steps=64)
    with open_run(path) as old:
        before = old.summary_all("pre_mean").copy()
        code = (
            "import sys\nsys.path.insert(0, sys.argv[2])\nfrom test_store_one_writer import second_writer\n"
            "second_writer(sys.argv[1], overwrite=True)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(path), str(Path(__file__).parent)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        old.refresh()  # the reader keeps the run it opened, intact
        np.testing.assert_array_equal(old.summary_all("pre_mean"), before)
        assert len(old.layers) == 2
    with open_run(path) as new:  # and the path now holds the new run
        assert len(new.layers) == 3 and len(new.steps) == 50


def test_a_recorder_is_refused_before_training_starts(tmp_path):
    import torch

    import bnviz

    path = tmp_path / "run.h5"
    first = Writer(path)
    try:
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
        with pytest.raises(RunFileInUse, match="another bnviz recorder"):
            bnviz.record(model, path, overwrite=True)
        assert type(model[1]) is torch.nn.BatchNorm1d  # nothing left instrumented
    finally:
        first.stop()
