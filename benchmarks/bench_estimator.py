"""How far the sampled statistics are from the full-tensor truth (tests/truth.py), per shape.

Prints, for a padded conv net at power-of-two shapes and an MLP, the mean |error| of the per-channel
zone fractions over the binomial standard error of s samples (an unbiased estimate gives about 0.8),
the worst per-channel error, and the mean |rank error| of the pooled quantiles over its standard
error. ``python benchmarks/bench_estimator.py``
"""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_estimator_truth as t  # noqa: E402
import truth  # noqa: E402

CF = t.CF


def main():
    print(
        f"{'shape':>16} {'layer':>5} {'zone':>9} {'true':>6} {'rec':>6} {'|err|/se':>8} {'max err':>7} {'q rank/se':>9}"
    )
    cases = [
        (f"{n}x3x{s}x{s}", t.conv_net(), truth.image_batch(n, 3, s, torch.Generator().manual_seed(n + s)))
        for n, s in t.CONV_SHAPES
    ]
    cases.append(("128x20 (MLP)", t.mlp(), torch.randn(128, 20, generator=torch.Generator().manual_seed(128)) + 0.5))
    for name, model, x in cases:
        block, table, seen = t.record_one(model, x)
        for li in table:
            d = seen.bn[li["path"]]
            ys = truth.per_channel(d["y"])
            f = truth.zone_fraction(ys, li["zone_rule"], li["zone_threshold"])
            got = block.channels[li["index"]][0, CF["sat_y"]]
            se = truth.binomial_se(f, min(t.S, ys.shape[1]), ys.shape[1])
            q = block.quantiles[0, li["index"], t.TENSOR["post"]]
            qerr = truth.rank_error(ys, q, t.schema.QUANTILES)[t.INTERIOR]
            qse = truth.rank_se(t.schema.QUANTILES, min(t.P, t.S * len(f)))[t.INTERIOR]
            print(
                f"{name:>16} {li['path']:>5} {li['activation']:>9} {f.mean():6.3f} {got.mean():6.3f} "
                f"{truth.mean_abs_ratio(got - f, se):8.2f} {np.max(np.abs(got - f)):7.3f} "
                f"{truth.mean_abs_ratio(qerr, qse):9.2f}"
            )


if __name__ == "__main__":
    main()
