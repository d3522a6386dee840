"""The fixed per-step cost of recording, where steps are short: a real `bnviz.record` vs plain, interleaved.

1. The fast step of issue 11: a 3-BN MLP (width 256, batch 128, 1 thread, about 1.5-2.5 ms per
   plain step on a CPU), `bnviz.record` at its defaults (file on disk, writer thread).
2. The cost in microseconds per step as a function of layers L and channels per layer C (MLPs of
   L Linear-BN-ReLU blocks of width C, batch 128): median of (recorded step - plain step of the
   same turn), so a user can predict what recording adds to a step of their own.
3. The torch operations recording adds per step of the fast step (counted at torch's dispatcher,
   blocks of rows included): free of the machine's noise, and on a GPU each one that is not a
   view is a kernel launch.
4. What one small torch call costs on the CPU where recording makes it: right after a large
   kernel (the step's own), which has evicted the caches, against back to back.

Each recorded step also logs its loss (`rec.log`). Variants take turns by chunks of steps
(``interleave.py``: a chunk's mean counts the steps where a block of rows is computed, which a
per-step median would leave out); ratios pair a chunk with the plain chunk of the same turn.
Prints median and quartiles.

    python benchmarks/bench_fast_step.py [--chunk 128] [--turns 16] [--grid-turns 8] [--clock wall|thread]
"""

from __future__ import annotations

import argparse
import collections
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_record import Variant  # a training step, with bnviz.record and rec.log(loss=...) or without
from interleave import describe, differences_us, interleaved_chunks, ratios
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

CLOCKS = (
    "wall: what training waits for; thread: the training thread's CPU time, which leaves out the "
    "time other processes hold the cores (robust to a loaded machine) and bnviz's writer thread"
)


# no kernel of their own (on a GPU no launch)
_VIEWS = {f"aten.{v}" for v in ("view", "select", "slice", "detach", "unsqueeze", "as_strided", "t", "transpose")}


def mlp(layers: int, width: int) -> nn.Module:
    blocks = []
    for _ in range(layers):
        blocks += [nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()]
    return nn.Sequential(*blocks, nn.Linear(width, 10))


def paired(layers: int, width: int, chunk: int, turns: int, folder: Path, clock=time.perf_counter):
    """{"plain": ..., "recorded": ...} mean seconds per step of interleaved chunks."""
    torch.manual_seed(0)
    base = mlp(layers, width)
    plain = Variant("plain", copy.deepcopy(base), folder)
    recorded = Variant(f"mlp {layers}x{width} {turns}", copy.deepcopy(base), folder, {})
    x, y = torch.randn(128, width), torch.randint(0, 10, (128,))
    for _ in range(70):  # warm-up, first-forward observation, one flush
        plain.step(x, y)
        recorded.step(x, y)
    assert recorded.rec is not None
    steps = {"plain": lambda: plain.step(x, y), "recorded": lambda: recorded.step(x, y)}
    times = interleaved_chunks(steps, chunk, turns, clock)
    recorded.rec.close()
    return times


class _CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def ops_added(layers: int, width: int, steps: int, folder: Path) -> collections.Counter:
    """Operations per step that recording at the defaults adds to a plain step, by name."""
    torch.manual_seed(0)
    base = mlp(layers, width)
    x, y = torch.randn(128, width), torch.randint(0, 10, (128,))
    per_step = {}
    for name, kw in (("plain", None), ("recorded", {})):
        v = Variant(f"ops {name}", copy.deepcopy(base), folder, kw)
        for _ in range(70):
            v.step(x, y)
        with _CountOps() as mode:
            for _ in range(steps):
                v.step(x, y)
        if v.rec is not None:
            v.rec.close()
        per_step[name] = mode.counts
    added = collections.Counter(per_step["recorded"])
    added.subtract(per_step["plain"])
    return added


def cold_call_us(repeats: int = 2000) -> dict[str, float]:
    """Median microseconds of a copy of 12 tensors of 256 floats into a preallocated buffer (a
    row's staging copy) after nothing, after a 128 x 256 x 256 matmul, after a pass over 16 MB."""
    parts = [torch.randn(256) for _ in range(12)]
    out = torch.empty(12 * 256)
    a, b, big = torch.randn(128, 256), torch.randn(256, 256), torch.randn(4 << 20)
    before = {"back to back": lambda: None, "after a matmul": lambda: a @ b, "after 16 MB": lambda: big.add_(1)}
    medians = {}
    for name, work in before.items():
        times = []
        for _ in range(repeats):
            work()
            t = time.perf_counter()
            torch.cat(parts, out=out)
            times.append(time.perf_counter() - t)
        medians[name] = statistics.median(times) * 1e6
    return medians


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunk", type=int, default=128, help="steps per chunk (spans several block computes and a flush)")
    ap.add_argument("--turns", type=int, default=16)
    ap.add_argument("--grid-turns", type=int, default=8)
    ap.add_argument("--clock", choices=("wall", "thread"), default="wall", help=CLOCKS)
    args = ap.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        times = paired(3, 256, args.chunk, args.turns, folder, clock)
        print(
            f"fast step: 3-BN MLP, width 256, batch 128, 1 thread, {args.clock} clock, "
            f"{args.turns} turns of {args.chunk} steps"
        )
        print(
            f"  plain {statistics.median(times['plain']) * 1e3:.2f} ms/step; "
            f"recorded / plain {describe(ratios(times, 'plain')['recorded'])}"
        )
        steps = 2 * args.chunk
        added = ops_added(3, 256, steps, folder)
        views = sum(n for op, n in added.items() if op in _VIEWS)
        print(
            f"  torch operations added per step: {added.total() / steps:.1f} "
            f"({(added.total() - views) / steps:.1f} not views; over {steps} steps)"
        )
        cold = ", ".join(f"{name} {us:.1f}" for name, us in cold_call_us().items())
        print(f"  one small copy (12 x 256 floats), median us: {cold}")
        print(
            f"\nadded per step (recorded - plain chunk of the same turn, us/step), {args.grid_turns} turns, batch 128:"
        )
        print(f"  {'L':>3} {'C':>5} {'plain ms':>9} {'added us':>9}  quartiles")
        for layers, width in ((3, 64), (12, 64), (48, 64), (3, 256), (12, 256), (48, 256), (3, 1024), (12, 1024)):
            times = paired(layers, width, args.chunk, args.grid_turns, folder, clock)
            m, q1, q3 = differences_us(times, "plain")["recorded"]
            plain_ms = statistics.median(times["plain"]) * 1e3
            print(f"  {layers:>3} {width:>5} {plain_ms:>9.2f} {m:>9.0f}  {q1:.0f} to {q3:.0f}")


if __name__ == "__main__":
    main()
