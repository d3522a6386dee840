"""What γ/β do, where BN sits, and two classic failures, on the digits MLP.

- gamma_frozen.h5 / gamma_learned.h5: tanh MLP with BN; γ=1, β=0 frozen vs learned. The γ/β
  view shows saturation of y (with γ/β) against x̂ (without): learned γ/β move the layer into
  the nonlinear part of tanh that frozen ones never reach.
- bn_before_relu.h5 / bn_after_relu.h5: the same ReLU MLP with BN before vs after the
  activation (seed 001/002's placement question).
- tanh_large_init_plain.h5 / tanh_large_init_bn.h5: weights drawn with std 1.5 push tanh into
  saturation; BN pulls its input back.
- relu_dying.h5: a ReLU MLP trained at a too-large learning rate: BN's β runs negative and whole
  channels go dead (the Channels view's dead fraction, and `bnviz info`'s findings).
"""

import torch
from common import cli, load_digits, train_recorded
from torch import nn

from bnviz.hooks import Probe


def mlp(act, *, bn="before", init_std=None, width=64) -> nn.Sequential:
    layers, n_in = [], 64
    for _ in range(3):
        layers.append(nn.Linear(n_in, width))
        if bn == "before":
            layers += [nn.BatchNorm1d(width), act()]
        elif bn == "after":
            layers += [act(), nn.BatchNorm1d(width)]
        else:
            layers += [Probe(width), act()]
        n_in = width
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    if init_std is not None:
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=init_std)
    return model


def freeze_affine(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.weight.requires_grad_(False)
            m.bias.requires_grad_(False)
    return model


def main():
    args = cli(__doc__.splitlines()[0])
    data = load_digits()
    steps = 30 if args.quick else 1200
    runs = {
        "gamma_frozen": (lambda: freeze_affine(mlp(nn.Tanh)), 0.3),
        "gamma_learned": (lambda: mlp(nn.Tanh), 0.3),
        "bn_before_relu": (lambda: mlp(nn.ReLU, bn="before"), 0.1),
        "bn_after_relu": (lambda: mlp(nn.ReLU, bn="after"), 0.1),
        "tanh_large_init_plain": (lambda: mlp(nn.Tanh, bn=None, init_std=1.5), 0.05),
        "tanh_large_init_bn": (lambda: mlp(nn.Tanh, init_std=1.5), 0.05),
        "relu_dying": (lambda: mlp(nn.ReLU), 3.0),
    }
    for name, (build, lr) in runs.items():
        torch.manual_seed(3)
        train_recorded(
            build(),
            data,
            args.out / f"{name}.h5",
            steps=steps,
            batch=32,
            lr=lr,
            seed=3,
            run_name=name,
            eval_every=50,
            meta={"sample": "gamma_beta", "lr": lr},
            channel_every=10,
            hist_every=10,
        )


if __name__ == "__main__":
    main()
