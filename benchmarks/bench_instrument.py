"""Cost of recording on CPU: training step with instrument + StatsEngine vs plain, interleaved.

ResNet-20-style CNN (21 BN layers), batch 64, 3x32x32, 2 threads. Variants take turns by chunks
of steps; each reports the median and quartiles of (variant chunk / plain chunk of the same turn)
and the mean time of ``end_step`` (where blocks of rows are computed) per step.
Also: own BN forward+backward vs torch's on one layer (recording path, interleaved).

    python benchmarks/bench_instrument.py [--turns 6] [--chunk 25] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from interleave import describe, interleaved_chunks, quartiles
from torch import nn

from bnviz.hooks import batchnorm, instrument
from bnviz.hooks.engine import StatsEngine


class Block(nn.Module):
    """relu(bn2(conv2(.)) + shortcut): functional (no zone claim after the add) or, as torchvision
    writes it, a ReLU module after ``out += identity`` (its input sampled: measure.py)."""

    def __init__(self, cin, cout, stride, module_relu=False):
        super().__init__()
        self.relu = nn.ReLU(inplace=True) if module_relu else None
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        if self.relu is None:
            return F.relu(out + (x if self.down is None else self.down(x)))
        out += x if self.down is None else self.down(x)
        return self.relu(out)


class ResNet20(nn.Module):
    def __init__(self, classes=10, module_relu=False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(Block(cin, cout, stride if i == 0 else 1, module_relu))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


class Variant:
    def __init__(self, name, model, engine_kw=None, baseline="plain"):
        self.name, self.model, self.baseline = name, model, baseline
        self.opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        self.engine = None
        if engine_kw is not None:
            self.engine = StatsEngine(instrument(model), capacity_rows=128, **engine_kw)
        self.step_no = 0
        self.end_step_times = []

    def step(self, x, y):
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.engine is not None:
            t = time.perf_counter()
            self.engine.end_step(self.step_no)
            self.end_step_times.append(time.perf_counter() - t)
            if self.engine.rows_pending >= 100:
                self.engine.take_block().wait()
        self.step_no += 1


def bench_training(turns, chunk):
    """Variants take turns by chunks of steps (``interleave.py``: a chunk's mean counts the steps where
    a block of rows is computed), so a burst of load on the shared machine hits all of them; each
    ratio pairs a variant's chunk with its baseline's chunk of the same turn."""
    torch.manual_seed(0)
    base = ResNet20()
    torchvision_style = ResNet20(module_relu=True)
    torchvision_style.load_state_dict(base.state_dict())
    data = [(torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))) for _ in range(4)]
    big = 10**9
    variants = [
        Variant("plain", copy.deepcopy(base)),
        Variant("all statistics", copy.deepcopy(base), {}),
        Variant("no histograms", copy.deepcopy(base), {"hist_every": big}),
        Variant("summary+quantiles only", copy.deepcopy(base), {"channel_every": big, "hist_every": big}),
        Variant("every=10", copy.deepcopy(base), {"every": 10}),
        Variant("plain, ReLU modules", copy.deepcopy(torchvision_style)),
        Variant("all, zones after adds", copy.deepcopy(torchvision_style), {}, baseline="plain, ReLU modules"),
    ]
    for v in variants:  # warm-up, first-forward observation
        for i in range(2):
            v.step(*data[i])
        v.end_step_times, v.step_no = [], 0

    def stepper(v):
        def step():
            v.step(*data[v.step_no % len(data)])

        return step

    times = interleaved_chunks({v.name: stepper(v) for v in variants}, chunk, turns)
    print(
        f"training step, ResNet-20 (21 BN), batch 64, {torch.get_num_threads()} threads, {turns} turns of {chunk} steps"
    )
    print(f"  plain: {statistics.median(times['plain']) * 1e3:.1f} ms/step")
    for v in variants[1:]:
        ratio = quartiles([t / p for t, p in zip(times[v.name], times[v.baseline])])
        end = f"; end_step mean {statistics.mean(v.end_step_times) * 1e3:.2f} ms" if v.end_step_times else ""
        print(f"  {v.name:24s} / {v.baseline}: {describe(ratio)}{end}")


def bench_bn(reps):
    """One layer, forward+backward, own class on the recording path (a sink that keeps nothing)
    vs torch's: the difference is the Python bookkeeping, the kernel is the same."""
    torch.manual_seed(0)
    ref = nn.BatchNorm2d(32)
    own = copy.deepcopy(ref)
    batchnorm.swap_in(own, 0, "native")

    class Always:
        def wants(self, i, training):
            return True

        def put(self, *a):
            pass

    batchnorm.set_sink(own, Always())
    x = torch.randn(64, 32, 16, 16, requires_grad=True)
    g = torch.randn_like(x)

    def once(m):
        t = time.perf_counter()
        m(x).backward(g)
        return time.perf_counter() - t

    ratios, base = [], []
    for i in range(reps):  # alternate which goes first
        a, b = (once(ref), once(own)) if i % 2 else reversed((once(own), once(ref)))
        ratios.append(b / a)
        base.append(a)
    q1, q3 = sorted(ratios)[reps // 4], sorted(ratios)[3 * reps // 4]
    print(
        f"own BN forward+backward vs torch (64x32x16x16, recording path, sink keeps nothing): ratio median "
        f"{statistics.median(ratios):.3f} (quartiles {q1:.3f}-{q3:.3f}); torch {statistics.median(base) * 1e6:.0f} us"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--chunk", type=int, default=25, help="steps per chunk (a block of rows is computed every ~21)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bench_bn(400)
    bench_training(a.turns, a.chunk)


if __name__ == "__main__":
    main()
