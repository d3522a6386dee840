"""torch.compile (inductor): a training step recorded by `bnviz.record` vs the compiled plain step.

The same ResNet-20 as bench_instrument.py (21 BN layers, batch 64, 3x32x32), ``--model
resnet20-relu`` (its blocks end in a ReLU module after the residual add, torchvision style: nine
activations measured at their input, bnviz::zone_input) or ``--model mlp``, the fast step of issue 11
(a 3-BN MLP, width 256, batch 128; run it with ``--threads 1``). Every variant is compiled with the
same backend after one eager forward (where bnviz finds each layer's activation); the recorded ones
are a real `bnviz.record` (background writer, file on disk): "recorded" at the defaults, "ops only"
recording no step (``every`` beyond the run: the cost of bnviz's graph operators and of
``Recorder.step`` alone). Variants take turns step by step (rotating order) and each ratio pairs a
step with the plain step of the same turn. Prints median and quartiles of the ratios, the ratio of
medians, and the number of compiled graphs of each variant (equal: bnviz adds no graph break and no
recompile).

``--clock thread`` times each step by the training thread's CPU time instead of the wall clock
(needs ``--threads 1``, where every op runs on that thread): on a machine shared with other work
it leaves out the time other processes hold the cores, though not their effect on the caches. It
leaves out bnviz's background writer thread too (the file is written off the training thread).

    python benchmarks/bench_compiled.py [--model resnet20|resnet20-relu|mlp] [--turns 200] [--threads 2]
                                        [--clock wall|thread]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_instrument import ResNet20
from bench_record import Variant
from torch import nn
from torch._dynamo.utils import counters


def mlp() -> nn.Module:
    layers, width = [], 256
    for _ in range(3):
        layers += [nn.Linear(width, 256), nn.BatchNorm1d(256), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(256, 10))


MODELS = {
    "resnet20": (ResNet20, (64, 3, 32, 32)),
    "resnet20-relu": (lambda: ResNet20(module_relu=True), (64, 3, 32, 32)),
    "mlp": (mlp, (128, 256)),
}
VARIANTS = (("plain", None), ("recorded", {}), ("ops only", {"every": 10**9}))


class Compiled(Variant):
    """bench_record's variant (plain, or a real bnviz.record), stepping through torch.compile after
    one eager forward in eval mode (bnviz observes it; the running statistics stay as they were)."""

    def __init__(self, name, model, folder: Path, record_kw, backend, x):
        super().__init__(name, model, folder, record_kw)
        model.eval()
        with torch.no_grad():
            model(x)
        model.train()
        self.model = torch.compile(model, backend=backend)  # the recorder holds the module itself


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="resnet20")
    ap.add_argument("--backend", default="inductor")
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "thread"), default="wall")
    args = ap.parse_args()
    if args.clock == "thread" and args.threads != 1:
        ap.error("--clock thread needs --threads 1 (other threads' work would not be counted)")
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    make, shape = MODELS[args.model]
    base = make()
    data = [(torch.randn(*shape), torch.randint(0, 10, (shape[0],))) for _ in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        variants = []
        for name, record_kw in VARIANTS:
            counters.clear()
            v = Compiled(name, copy.deepcopy(base), Path(tmp), record_kw, args.backend, data[0][0])
            t = time.perf_counter()
            for i in range(3):  # warm-up: compilation, the file's creation at the first flush
                v.step(*data[i])
            print(f"{name}: compiled in {time.perf_counter() - t:.0f} s, {counters['stats']['unique_graphs']} graph(s)")
            variants.append(v)
        times: dict[str, list[float]] = {v.name: [] for v in variants}
        for r in range(args.turns):
            k = r % len(variants)
            for v in variants[k:] + variants[:k]:
                t = clock()
                v.step(*data[r % len(data)])
                times[v.name].append(clock() - t)
        for v in variants:
            if v.rec is not None:
                v.rec.close()
    plain = times["plain"]
    print(
        f"torch.compile(backend={args.backend!r}) training step, {args.model}, {args.threads} threads, "
        f"{args.clock} clock, "
        f"{args.turns} turns; compiled plain median {statistics.median(plain) * 1e3:.2f} ms/step"
    )
    for v in variants[1:]:
        ratios = sorted(t / p for t, p in zip(times[v.name], plain))
        q1, q3 = ratios[len(ratios) // 4], ratios[3 * len(ratios) // 4]
        print(
            f"  {v.name:9s} / plain: ratio median {statistics.median(ratios):.3f} (quartiles {q1:.3f}-{q3:.3f}), "
            f"ratio of medians {statistics.median(times[v.name]) / statistics.median(plain):.3f}, "
            f"{(statistics.median(times[v.name]) - statistics.median(plain)) * 1e3:.3f} ms/step more"
        )


if __name__ == "__main__":
    main()
