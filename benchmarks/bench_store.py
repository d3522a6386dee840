"""Store benchmark: writer throughput, file bytes per step, reading one layer's history.

    python benchmarks/bench_store.py [--steps 100000] [--rounds 5] [--dir /tmp]

1. RunWriter.append throughput in recorded steps/s for 50 layers x 512 channels, blocks of 64
   rows, with every tier on every step and with the default schedule (docs/format.md);
   variants interleaved round by round, median and spread reported.
2. File bytes per recorded step, measured against the formula of docs/format.md, for that
   model and for ResNet-50 (53 BN layers, 26,560 channels) at the default schedule.
3. Time to read one layer's whole summary series (and a decimated one, and one channel field)
   from a --steps-step file, cold (file just opened) and warm.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

from bnviz.store import RunWriter, open_run, schema
from bnviz.store.synthetic import synthetic_blocks, write_synthetic_run

RESNET50_WIDTHS = (
    [64]
    + [64, 64, 256] * 3
    + [256]
    + [128, 128, 512] * 4
    + [512]
    + [256, 256, 1024] * 6
    + [1024]
    + [512, 512, 2048] * 3
    + [2048]
)


def default_every(layers: int, channels: int) -> tuple[int, int]:
    """The default schedule of docs/format.md: channel tier ~4 KiB, histograms ~1 KiB a step."""
    channel_every = math.ceil(channels * len(schema.CHANNEL_FIELDS) * 4 / 4096)
    hist_every = math.ceil(layers * len(schema.TENSORS) * (schema.HIST_BINS + 5) * 4 / 1024)
    return channel_every, hist_every


def formula_bytes(layers, channels, probes, channel_every, hist_every, scalars=True) -> float:
    """Bytes per recorded step (docs/format.md)."""
    summary = 17 + layers * (
        4 * len(schema.SUMMARY_FIELDS) + 4 * 3 * len(schema.QUANTILES) + 4 * probes * len(schema.QUANTILES)
    )
    channel = (9 + 4 * len(schema.CHANNEL_FIELDS) * channels) / channel_every
    hist = (9 + layers * 3 * (4 * (schema.HIST_BINS + 3) + 8)) / hist_every
    return summary + channel + hist + (8 + 8 * schema.MAX_SCALARS) * scalars


def shifted(block, offset):
    """The same block as rows ``offset`` steps later (writers refuse decreasing steps)."""
    return dataclasses.replace(
        block,
        summary_step=block.summary_step + offset,
        channel_step=block.channel_step + offset,
        hist_step=block.hist_step + offset,
        scalar_step=block.scalar_step + offset,
    )


def write_speed(path, layers, channels, probes, channel_every, hist_every, n_blocks, rows=64):
    table, meta, blocks = synthetic_blocks(
        layers=layers,
        channels=channels,
        steps=rows * 4,
        flush_rows=rows,
        probes=probes,
        channel_every=channel_every,
        hist_every=hist_every,
    )
    pool = list(blocks)
    # keep the schedule's phase: shift by a multiple of every interval
    period = rows * 4 * math.lcm(channel_every, hist_every)
    writer = RunWriter(path, layers=table, meta=meta, probes=probes, overwrite=True)
    t0 = time.perf_counter()
    for i in range(n_blocks):
        writer.append(shifted(pool[i % 4], (i // 4) * period))
    writer.close()
    dt = time.perf_counter() - t0
    steps = n_blocks * rows
    return steps / dt, os.path.getsize(path) / steps


def bench_writer(tmp: Path, rounds: int) -> None:
    L, C = 50, 512
    ce, he = default_every(L, C * L)
    variants = {"every tier every step": (1, 1), f"default (channel_every={ce}, hist_every={he})": (ce, he)}
    speeds = {name: [] for name in variants}
    sizes = {}
    for _ in range(rounds):
        for name, (c_every, h_every) in variants.items():
            speed, size = write_speed(tmp / "w.h5", L, C, 1, c_every, h_every, n_blocks=8 if c_every == 1 else 60)
            speeds[name].append(speed)
            sizes[name] = size
    print(f"\n1. writer throughput, {L} layers x {C} channels, 1 probe, blocks of 64 rows")
    base = statistics.median(speeds[next(iter(variants))])
    for name, s in speeds.items():
        print(
            f"   {name:45s} median {statistics.median(s):9.0f} steps/s  "
            f"(min {min(s):.0f}, max {max(s):.0f}; x{statistics.median(s) / base:.1f} of the first)"
        )
    print("\n2. file bytes per recorded step (measured on those files, vs formula)")
    for name, (c_every, h_every) in variants.items():
        print(f"   {name:45s} {sizes[name]:10.0f} B   formula {formula_bytes(L, C * L, 1, c_every, h_every):10.0f} B")


def bench_resnet50_size(tmp: Path, steps: int = 3000) -> None:
    """Marginal bytes per step (two lengths, so the chunk floor cancels) and the 100k projection."""
    L, C = len(RESNET50_WIDTHS), sum(RESNET50_WIDTHS)
    ce, he = default_every(L, C)
    sizes = []
    for n in (steps, 2 * steps):
        path = tmp / f"r50-{n}.h5"
        write_synthetic_run(
            path,
            layers=L,
            channels=RESNET50_WIDTHS,
            steps=n,
            flush_rows=512,
            probes=1,
            channel_every=ce,
            hist_every=he,
            overwrite=True,
        )
        sizes.append(os.path.getsize(path))
    marginal = (sizes[1] - sizes[0]) / steps
    projected = sizes[1] + marginal * (100_000 - 2 * steps)
    print(
        f"   ResNet-50 ({L} layers, {C} channels, default channel_every={ce}, hist_every={he}): "
        f"{marginal:.0f} B/step marginal (formula {formula_bytes(L, C, 1, ce, he):.0f} B), "
        f"file at {2 * steps} steps {sizes[1] / 1e6:.0f} MB -> 100k steps {projected / 1e9:.2f} GB"
    )


def bench_read(tmp: Path, steps: int) -> None:
    L, C = 50, 512
    ce, he = default_every(L, C * L)
    path = tmp / "read.h5"
    t0 = time.perf_counter()
    write_synthetic_run(
        path,
        layers=L,
        channels=C,
        steps=steps,
        flush_rows=4096,
        probes=1,
        channel_every=ce,
        hist_every=he,
        overwrite=True,
    )
    print(
        f"\n3. reading from a {steps}-step file, {L} layers x {C} channels "
        f"({os.path.getsize(path) / 1e9:.2f} GB, written in {time.perf_counter() - t0:.0f} s)"
    )
    timings = {
        "summary(layer, field) full series": [],
        "decimated(layer, field, 2000)": [],
        "quantiles(layer, 'post') full series": [],
        "channels(layer, field) all channel rows": [],
        "open_run": [],
    }
    for rnd in range(5):
        layer = (7 * rnd + 3) % L  # a different layer each round: cold chunks
        t = time.perf_counter()
        run = open_run(path)
        timings["open_run"].append(time.perf_counter() - t)
        for name, fn in [
            ("summary(layer, field) full series", lambda: run.summary(layer, "pre_mean")),  # noqa: B023
            ("decimated(layer, field, 2000)", lambda: run.decimated(layer, "post_var", 2000)),  # noqa: B023
            ("quantiles(layer, 'post') full series", lambda: run.quantiles(layer, "post")),  # noqa: B023
            ("channels(layer, field) all channel rows", lambda: run.channels(layer, "gamma")),  # noqa: B023
        ]:
            t = time.perf_counter()
            out = fn()
            timings[name].append(time.perf_counter() - t)
            assert len(out[0] if isinstance(out, tuple) else out) > 0
        run.close()
    for name, ts in timings.items():
        print(
            f"   {name:42s} median {1e3 * statistics.median(ts):7.1f} ms (min {1e3 * min(ts):.1f}, "
            f"max {1e3 * max(ts):.1f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to write the test files (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        bench_writer(tmp, args.rounds)
        bench_resnet50_size(tmp)
        bench_read(tmp, args.steps)


if __name__ == "__main__":
    main()
