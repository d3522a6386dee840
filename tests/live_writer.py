"""A training process's writer, for tests that read a file while another process writes it
(HDF5: a process must not open one file as writer and reader). Run it as a script:

    python live_writer.py PATH --steps 40 [--seed 0] [--segment-start 24] [--end kill|close]

It writes synthetic blocks of ROWS rows (3 layers, 6 channels, scalars) with steps 0..steps-1,
skipping those before --segment-start, which makes it resumed segment 1 of a recording (the
root attributes a resumed ``bnviz.record`` writes). It prints "ready" once the file exists, then
for each line on stdin appends what the line says: "go" one block, "all" every block left, with
``--pause`` seconds between blocks; it answers each line with "ok <rows written>" once the rows are
committed, and ends as --end says when stdin closes: closing the file, or dying without closing it.

``blocks`` gives the same blocks in the test's process: what a reader must end up showing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bnviz.store import RunWriter
from bnviz.store.synthetic import synthetic_blocks

ROWS = 8


def blocks(steps: int, seed: int = 0, segment_start: int = 0):
    """(layer table, meta, the blocks the writer writes)."""
    table, meta, all_blocks = synthetic_blocks(layers=3, channels=6, steps=steps, flush_rows=ROWS, seed=seed)
    return table, meta, [b for b in all_blocks if b.summary_step[0] >= segment_start]


class Writer:
    """This script running in a child process: ``send`` a line, ``end`` it (from the test)."""

    def __init__(self, path, *args: str):
        self.child = subprocess.Popen(
            [sys.executable, __file__, os.fspath(path), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.child.stdout.readline().strip() == "ready", self.child.stderr.read()

    def send(self, line: str = "go") -> int:
        """Append what ``line`` says; the summary rows committed once it is done."""
        self.child.stdin.write(line + "\n")
        self.child.stdin.flush()
        answer = self.child.stdout.readline().split()
        assert answer and answer[0] == "ok", self.child.stderr.read()
        return int(answer[1])

    def end(self) -> None:
        self.child.stdin.close()
        assert self.child.wait(30) == 0, self.child.stderr.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.child.kill()
        self.child.wait()
        for f in (self.child.stdin, self.child.stdout, self.child.stderr):
            f.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--segment-start", type=int, default=0)
    p.add_argument("--pause", type=float, default=0.0)
    p.add_argument("--end", choices=("close", "kill"), default="close")
    a = p.parse_args()
    table, meta, todo = blocks(a.steps, a.seed, a.segment_start)
    if a.segment_start:
        meta = {**meta, "segment": 1, "segment_start": a.segment_start}
    writer = RunWriter(a.path, layers=table, meta=meta, probes=4)
    print("ready", flush=True)
    for line in sys.stdin:
        for _ in range(len(todo) if line.strip() == "all" else 1):
            if todo:
                writer.append(todo.pop(0))
                time.sleep(a.pause)
        print(f"ok {writer.rows['summary']}", flush=True)
    if a.end == "kill":
        os._exit(0)  # the training process dies without closing the file
    writer.close()


if __name__ == "__main__":
    main()
