"""Tiny batches: BN's batch statistics become noisy and running statistics stop matching them.

The digits MLP with BN+ReLU trained with batch size 2 and with batch size 64 for the same number
of steps at the same learning rate. With batch 2 the Train vs eval view shows batch mean/variance scattering far around
the running statistics; held-out accuracy (eval mode, running statistics) falls below training
accuracy, and `bnviz info` flags the batch size.

Writes tiny_batch_2.h5 and tiny_batch_64.h5.
"""

import torch
from common import cli, load_digits, train_recorded
from gamma_beta import mlp
from torch import nn


def main():
    args = cli(__doc__.splitlines()[0])
    data = load_digits()
    steps = 30 if args.quick else 1000
    for batch in (2, 64):
        name = f"tiny_batch_{batch}"
        torch.manual_seed(4)
        train_recorded(
            mlp(nn.ReLU),
            data,
            args.out / f"{name}.h5",
            steps=steps,
            batch=batch,
            lr=0.05,
            seed=4,
            run_name=name,
            eval_every=25,
            meta={"sample": "tiny_batches", "batch_size": batch},
            channel_every=10,
            hist_every=10,
        )


if __name__ == "__main__":
    main()
