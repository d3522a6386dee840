"""torch.compile (inductor): a training step recorded by `bnviz.record` vs the compiled plain step.

The same ResNet-20 as bench_instrument.py (21 BN layers, batch 64, 3x32x32), ``--model
resnet20-relu`` (its blocks end in a ReLU module after the residual add, torchvision style: nine
activations measured at their input, bnviz::zone_input) or ``--model mlp``, the fast step of issue 11
(a 3-BN MLP, width 256, batch 128; run it with ``--threads 1``). Every variant is compiled with the
same backend after one eager forward (where bnviz finds each layer's activation); the recorded ones
are a real `bnviz.record` (background writer, file on disk, ``rec.log(loss=...)`` each step):
"recorded" at the defaults, "ops only" recording no step (``every`` beyond the run: the cost of
bnviz's graph operators and of ``Recorder.step`` / ``rec.log`` alone), and "graph ops" the model
instrumented without a recorder (``bnviz.hooks.instrument``: the graph operators' own cost, each
returning at once).

Variants take turns by chunks of steps (``interleave.py``): a chunk's mean counts the steps where
a block of rows is computed (every ~20 steps) and a flush is handed to the writer (every 64),
which a per-step median leaves out; each ratio pairs a chunk with the plain chunk of the same turn.
Prints median and quartiles of the ratios and of the paired differences (us per step), the load
average before and after, and the number of graphs each variant compiles (plain 1, recorded 1: bnviz
adds no graph break; ops only and graph ops 0: they run the recorded variant's graphs, since the graph
never reads the recorder or its settings).

``--clock thread`` times each chunk by the training thread's CPU time instead of the wall clock
(needs ``--threads 1``, where every op runs on that thread): on a machine shared with other work
it leaves out the time other processes hold the cores, though not their effect on the caches. It
leaves out bnviz's background writer thread too (the file is written off the training thread).

    python benchmarks/bench_compiled.py [--model resnet20|resnet20-relu|mlp] [--chunk N] [--turns N]
                                        [--threads 2] [--clock wall|thread]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_instrument import ResNet20
from bench_record import Variant  # a training step, with bnviz.record and rec.log(loss=...) or without
from interleave import describe, differences_us, interleaved_chunks, ratios
from torch import nn
from torch._dynamo.utils import counters

from bnviz.hooks import instrument


def mlp() -> nn.Module:
    layers, width = [], 256
    for _ in range(3):
        layers += [nn.Linear(width, 256), nn.BatchNorm1d(256), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(256, 10))


# model, input shape, default (chunk, turns): a chunk spans several block computes and a flush
MODELS = {
    "resnet20": (ResNet20, (64, 3, 32, 32), (64, 8)),
    "resnet20-relu": (lambda: ResNet20(module_relu=True), (64, 3, 32, 32), (64, 8)),
    "mlp": (mlp, (128, 256), (128, 16)),
}
VARIANTS = (("plain", None), ("recorded", {}), ("ops only", {"every": 10**9}), ("graph ops", None))
WARM_UP = 70  # steps: compilation, the first block of rows, the file's creation at the first flush


class Compiled(Variant):
    """bench_record's variant (plain, or a real bnviz.record), stepping through torch.compile after
    one eager forward in eval mode (bnviz observes it; the running statistics stay as they were)."""

    def __init__(self, name, model, folder: Path, record_kw, backend, x):
        super().__init__(name, model, folder, record_kw)
        self.instrumentation = instrument(model) if name == "graph ops" else None
        model.eval()
        with torch.no_grad():
            model(x)
        model.train()
        self.model = torch.compile(model, backend=backend)  # the recorder holds the module itself


def load() -> str:
    return "load average " + ", ".join(f"{v:.1f}" for v in os.getloadavg())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="resnet20")
    ap.add_argument("--backend", default="inductor")
    ap.add_argument("--chunk", type=int, help="steps per chunk (default: 128 for mlp, 64 for the ResNets)")
    ap.add_argument("--turns", type=int, help="chunks per variant (default: 16 for mlp, 8 for the ResNets)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "thread"), default="wall")
    args = ap.parse_args()
    if args.clock == "thread" and args.threads != 1:
        ap.error("--clock thread needs --threads 1 (other threads' work would not be counted)")
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    make, shape, (chunk, turns) = MODELS[args.model]
    chunk, turns = args.chunk or chunk, args.turns or turns
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = make()
    x, y = torch.randn(*shape), torch.randint(0, 10, (shape[0],))
    print(load())
    with tempfile.TemporaryDirectory() as tmp:
        variants = []
        for name, record_kw in VARIANTS:
            counters.clear()
            v = Compiled(name, copy.deepcopy(base), Path(tmp), record_kw, args.backend, x)
            t = time.perf_counter()
            for _ in range(WARM_UP):
                v.step(x, y)
            graphs = counters["stats"]["unique_graphs"]
            print(f"{name}: compiled and warmed up in {time.perf_counter() - t:.0f} s, {graphs} new graph(s)")
            variants.append(v)
        times = interleaved_chunks({v.name: (lambda v=v: v.step(x, y)) for v in variants}, chunk, turns, clock)
        for v in variants:
            if v.rec is not None:
                v.rec.close()
            if v.instrumentation is not None:
                v.instrumentation.detach()
    print(
        f"torch.compile(backend={args.backend!r}) training step, {args.model}, {args.threads} thread(s), "
        f"{args.clock} clock, {turns} turns of {chunk} steps; "
        f"compiled plain median {statistics.median(times['plain']) * 1e3:.2f} ms/step; {load()}"
    )
    added = differences_us(times, "plain")
    for name, q in ratios(times, "plain").items():
        print(f"  {name:9s} / plain: {describe(q)}; added {describe(added[name], 0)} us/step")


if __name__ == "__main__":
    main()
