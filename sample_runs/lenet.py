"""LeNet with and without BatchNorm at a small and a large learning rate (the d2l exercise).

A LeNet-style CNN (sigmoid activations, average pooling, as in d2l's LeNet chapter) on the 8x8
digits. BN sits between each convolution / dense layer and its sigmoid; without BN a Probe sits
there instead. At lr=0.1 the plain network barely leaves its initial plateau while the BN one
learns; at lr=1.5 BN keeps every layer's input in range where the plain network's drifts.

Writes lenet_{bn,plain}_lr{0.1,1.5}.h5.
"""

import torch
from common import cli, load_digits, train_recorded
from torch import nn

from bnviz.hooks import Probe


def lenet(with_bn: bool) -> nn.Sequential:
    def norm(kind, n):
        return kind(n) if with_bn else Probe(n)

    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        norm(nn.BatchNorm2d, 6),
        nn.Sigmoid(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 3, padding=1),
        norm(nn.BatchNorm2d, 16),
        nn.Sigmoid(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 120),
        norm(nn.BatchNorm1d, 120),
        nn.Sigmoid(),
        nn.Linear(120, 84),
        norm(nn.BatchNorm1d, 84),
        nn.Sigmoid(),
        nn.Linear(84, 10),
    )


def main():
    args = cli(__doc__.splitlines()[0])
    data = load_digits(images=True)
    steps = 30 if args.quick else 800
    for with_bn in (True, False):
        for lr in (0.1, 1.5):
            name = f"lenet_{'bn' if with_bn else 'plain'}_lr{lr}"
            torch.manual_seed(2)
            train_recorded(
                lenet(with_bn),
                data,
                args.out / f"{name}.h5",
                steps=steps,
                batch=64,
                lr=lr,
                seed=2,
                run_name=name,
                eval_every=25,
                meta={"sample": "lenet", "with_bn": with_bn, "lr": lr},
                channel_every=10,
                hist_every=5,
            )


if __name__ == "__main__":
    main()
