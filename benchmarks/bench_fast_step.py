"""The fixed per-step cost of recording, where steps are short: a real `bnviz.record` vs plain, interleaved.

1. The fast step of issue 11: a 3-BN MLP (width 256, batch 128, 1 thread, about 1.5-2.5 ms per
   plain step on a CPU), `bnviz.record` at its defaults (file on disk, writer thread).
2. The cost in microseconds per step as a function of layers L and channels per layer C (MLPs of
   L Linear-BN-ReLU blocks of width C, batch 128): median of (recorded step - plain step of the
   same turn), so a user can predict what recording adds to a step of their own.

Each recorded step also logs its loss (`rec.log`). Variants take turns step by step (each turn
in rotating order); ratios pair a step with the plain step of the same turn. Prints median and quartiles.

    python benchmarks/bench_fast_step.py [--turns 600] [--grid-turns 200]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_record import Variant  # a training step, with bnviz.record and rec.log(loss=...) or without
from torch import nn


def mlp(layers: int, width: int) -> nn.Module:
    blocks = []
    for _ in range(layers):
        blocks += [nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()]
    return nn.Sequential(*blocks, nn.Linear(width, 10))


def paired(layers: int, width: int, turns: int, folder: Path):
    """(plain step times, recorded step times), interleaved turn by turn."""
    torch.manual_seed(0)
    base = mlp(layers, width)
    plain = Variant("plain", copy.deepcopy(base), folder)
    recorded = Variant(f"mlp {layers}x{width} {turns}", copy.deepcopy(base), folder, {})
    x, y = torch.randn(128, width), torch.randint(0, 10, (128,))
    for _ in range(70):  # warm-up, first-forward observation, one flush
        plain.step(x, y)
        recorded.step(x, y)
    times: tuple[list[float], list[float]] = ([], [])
    for turn in range(turns):
        order = (0, 1) if turn % 2 else (1, 0)
        for k in order:
            v = (plain, recorded)[k]
            t = time.perf_counter()
            v.step(x, y)
            times[k].append(time.perf_counter() - t)
    assert recorded.rec is not None
    recorded.rec.close()
    return times


def quartiles(values):
    v = sorted(values)
    return statistics.median(v), v[len(v) // 4], v[3 * len(v) // 4]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=600)
    ap.add_argument("--grid-turns", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain, rec = paired(3, 256, args.turns + 1, folder)
        m, q1, q3 = quartiles([r / p for p, r in zip(plain, rec)])
        print(f"fast step: 3-BN MLP, width 256, batch 128, 1 thread, {args.turns} turns")
        print(f"  plain median {statistics.median(plain) * 1e3:.2f} ms; recorded/plain ratio median {m:.3f}")
        print(
            f"  (quartiles {q1:.3f}-{q3:.3f}); ratio of medians {statistics.median(rec) / statistics.median(plain):.3f}"
        )
        print(f"\nadded per step (median of recorded - plain, us, quartiles), {args.grid_turns} turns, batch 128:")
        print(f"  {'L':>3} {'C':>5} {'plain ms':>9} {'added us':>9}  quartiles")
        for layers, width in ((3, 64), (12, 64), (48, 64), (3, 256), (12, 256), (48, 256), (3, 1024), (12, 1024)):
            plain, rec = paired(layers, width, args.grid_turns, folder)
            m, q1, q3 = quartiles([(r - p) * 1e6 for p, r in zip(plain, rec)])
            print(f"  {layers:>3} {width:>5} {statistics.median(plain) * 1e3:>9.2f} {m:>9.0f}  {q1:.0f} to {q3:.0f}")


if __name__ == "__main__":
    main()
