"""torch.compile (inductor): a training step recorded by `bnviz.record` vs the compiled plain step.

The same ResNet-20 as bench_instrument.py (21 BN layers, batch 64, 3x32x32) or, with
``--model mlp``, the fast step of issue 11 (a 3-BN MLP, width 256, batch 128). Both variants are
compiled with the same backend; the recorded one is a real `bnviz.record` (defaults, background
writer, file on disk). Variants take turns step by step and each ratio pairs a step with the plain
step of the same turn. Prints median and quartiles of the ratios, the ratio of medians, and the
number of compiled graphs of each variant (equal: bnviz adds no graph break and no recompile).

    python benchmarks/bench_compiled.py [--model resnet20|mlp] [--turns 100] [--threads 2]
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


MODELS = {"resnet20": (ResNet20, (64, 3, 32, 32)), "mlp": (mlp, (128, 256))}


class Compiled(Variant):
    """bench_record's variant (plain, or a real bnviz.record), stepping through torch.compile."""

    def __init__(self, name, model, folder: Path, record_kw, backend):
        super().__init__(name, model, folder, record_kw)
        self.model = torch.compile(model, backend=backend)  # the recorder holds the module itself


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="resnet20")
    ap.add_argument("--backend", default="inductor")
    ap.add_argument("--turns", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    make, shape = MODELS[args.model]
    base = make()
    data = [(torch.randn(*shape), torch.randint(0, 10, (shape[0],))) for _ in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        variants = []
        for name, record_kw in (("plain", None), ("recorded", {})):
            counters.clear()
            v = Compiled(name, copy.deepcopy(base), Path(tmp), record_kw, args.backend)
            t = time.perf_counter()
            for i in range(3):  # warm-up: compilation, the file's creation at the first flush
                v.step(*data[i])
            print(f"{name}: compiled in {time.perf_counter() - t:.0f} s, {counters['stats']['unique_graphs']} graph(s)")
            variants.append(v)
        times = {v.name: [] for v in variants}
        for r in range(args.turns):
            order = variants if r % 2 == 0 else variants[::-1]
            for v in order:
                t = time.perf_counter()
                v.step(*data[r % len(data)])
                times[v.name].append(time.perf_counter() - t)
        variants[1].rec.close()
    plain, recorded = times["plain"], times["recorded"]
    ratios = sorted(t / p for t, p in zip(recorded, plain))
    q1, q3 = ratios[len(ratios) // 4], ratios[3 * len(ratios) // 4]
    print(
        f"torch.compile(backend={args.backend!r}) training step, {args.model}, {args.threads} threads, "
        f"{args.turns} turns; compiled plain median {statistics.median(plain) * 1e3:.2f} ms/step"
    )
    print(
        f"  recorded / plain: ratio median {statistics.median(ratios):.3f} (quartiles {q1:.3f}-{q3:.3f}), "
        f"ratio of medians {statistics.median(recorded) / statistics.median(plain):.3f}, "
        f"{(statistics.median(recorded) - statistics.median(plain)) * 1e3:.2f} ms/step more"
    )


if __name__ == "__main__":
    main()
