"""End to end: a training step with `bnviz.record` writing an HDF5 file vs plain, interleaved.

The same ResNet-20 as bench_instrument.py (21 BN layers, batch 64, 3x32x32, 2 threads). Each
recorded variant is a real `bnviz.record` (engine, flushes every 64 steps, background writer
thread, file on disk); variants take turns by chunks of steps (``interleave.py``) and each ratio
pairs a chunk with the plain chunk of the same turn. Prints median, quartiles, the file size per step
and the writer thread's CPU time per step (Block building, HDF5 writes, flushes).

    python benchmarks/bench_record.py [--turns 6] [--chunk 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_instrument import ResNet20
from interleave import describe, interleaved_chunks, ratios

import bnviz


class Variant:
    def __init__(self, name, model, folder: Path, record_kw=None):
        self.name, self.model = name, model
        self.opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        self.path = folder / f"{name.replace(' ', '_')}.h5"
        self.rec = None if record_kw is None else bnviz.record(model, self.path, **record_kw)

    def step(self, x, y):
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.rec is not None:
            self.rec.log(loss=loss)
            self.rec.step()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--chunk", type=int, default=64, help="steps per chunk (spans a flush and three block computes)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = ResNet20()
    data = [(torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))) for _ in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        variants = [
            Variant("plain", copy.deepcopy(base), folder),
            Variant("record defaults", copy.deepcopy(base), folder, {}),
            Variant("record everything every step", copy.deepcopy(base), folder, {"channel_every": 1, "hist_every": 1}),
        ]
        for v in variants:  # warm-up: first-forward observation, file creation at the first flush
            for i in range(2):
                v.step(*data[i])
        count = [0]

        def stepper(v):
            def step():
                count[0] += 1
                v.step(*data[count[0] % len(data)])

            return step

        times = interleaved_chunks({v.name: stepper(v) for v in variants}, args.chunk, args.turns)
        for v in variants[1:]:
            v.rec._output.wait_idle()
        writer_cpu = {v.name: v.rec._output.writer.cpu_seconds for v in variants[1:]}  # before close ends the thread
        for v in variants[1:]:
            v.rec.close()
        plain = times["plain"]
        steps = args.turns * args.chunk + 2
        print(
            f"training step with bnviz.record, ResNet-20 (21 BN), batch 64, {args.threads} threads, "
            f"{args.turns} turns of {args.chunk} steps; plain {statistics.median(plain) * 1e3:.1f} ms/step"
        )
        for v in variants[1:]:
            size = os.path.getsize(v.path) / steps
            cpu = writer_cpu[v.name] / steps
            print(
                f"  {v.name:30s} / plain: {describe(ratios(times, 'plain')[v.name])}; "
                f"file {size / 1024:.1f} KB/step (unpacked, includes the chunk floor); writer thread CPU "
                f"{cpu * 1e3:.2f} ms/step ({cpu / statistics.median(plain):.2%} of the plain step)"
            )


if __name__ == "__main__":
    main()
