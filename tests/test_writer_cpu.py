"""AsyncWriter.cpu_seconds: the writer thread's own CPU time, what benchmarks charge to the writer side."""

import time

from bnviz.store import AsyncWriter, RunWriter, open_run
from bnviz.store.synthetic import synthetic_blocks


def spin(seconds: float) -> None:
    """Use ``seconds`` of this thread's CPU time."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass


class BusyPending:
    """A pending block whose wait() (on the writer thread) first uses 0.2 s of CPU."""

    def __init__(self, block):
        self.block = block

    def wait(self):
        spin(0.2)
        return self.block


def test_cpu_seconds_count_the_writer_thread_not_the_caller(tmp_path):
    table, meta, blocks = synthetic_blocks(layers=2, channels=3, steps=10_000, flush_rows=16)
    aw = AsyncWriter(RunWriter(tmp_path / "run.h5", layers=table, meta=meta, probes=4), max_pending=2)
    assert aw.submit(next(blocks), timeout=5) and aw.wait_idle(10)
    after_plain = aw.cpu_seconds
    assert 0 < after_plain < 0.2  # one small block: HDF5 writes and two flushes
    spin(0.5)  # the caller's own CPU time is not the writer's
    assert aw.submit(BusyPending(next(blocks)), timeout=5) and aw.wait_idle(10)
    used = aw.cpu_seconds - after_plain
    assert 0.2 <= used < 0.4
    assert aw.close(timeout=10) and aw.error is None
    with open_run(tmp_path / "run.h5") as run:
        assert len(run.steps) == 32
