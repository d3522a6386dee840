"""The BN paper's Figure 1 (Ioffe & Szegedy 2015) on handwritten digits.

An MLP with three hidden layers of 100 sigmoid units, trained with and without BatchNorm before
each sigmoid. Without BN a ``bnviz.hooks.Probe`` sits where BN would, so both recordings hold
the sigmoid input of every hidden layer at the same place. The paper's claim, visible in the
Drift view of the last hidden layer: without BN the 15/50/85th percentiles of the sigmoid
input wander over training; with BN they stay put. Held-out accuracy is recorded as well.

Writes bn_paper_with_bn.h5 and bn_paper_without_bn.h5 (about 30 s on 2 cores).
"""

import torch
from common import cli, load_digits, train_recorded
from torch import nn

from bnviz.hooks import Probe


def mlp(with_bn: bool) -> nn.Sequential:
    layers, width = [], 64
    for _ in range(3):
        layers += [nn.Linear(width, 100), nn.BatchNorm1d(100) if with_bn else Probe(100), nn.Sigmoid()]
        width = 100
    model = nn.Sequential(*layers, nn.Linear(100, 10))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            # "small random Gaussian values", as in the paper
            nn.init.normal_(m.weight, std=0.3)
            nn.init.zeros_(m.bias)
    return model


def main():
    args = cli(__doc__.splitlines()[0])
    data = load_digits()
    steps = 40 if args.quick else 2000
    for with_bn in (True, False):
        name = "bn_paper_with_bn" if with_bn else "bn_paper_without_bn"
        torch.manual_seed(1)
        train_recorded(
            mlp(with_bn),
            data,
            args.out / f"{name}.h5",
            steps=steps,
            batch=60,
            lr=2.0,
            seed=1,
            run_name=name,
            eval_every=50,
            meta={"sample": "bn_paper", "with_bn": with_bn, "dataset": "sklearn digits"},
            probes=1,
            channel_every=20,
            hist_every=10,
        )


if __name__ == "__main__":
    main()
