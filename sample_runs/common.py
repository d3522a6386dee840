"""Shared pieces of the sample runs: the data, a seeded training loop, the output folder.

Data: scikit-learn's handwritten digits (1,797 8x8 greyscale images shipped with the package,
nothing downloaded), split 1,437 train / 360 held out with a fixed seed, pixels scaled to [0, 1].
Every run is seeded and single-threaded so it regenerates the same numbers.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import bnviz
from bnviz.store.pack import pack_run

HERE = Path(__file__).resolve().parent


@dataclass
class Digits:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits(images: bool = False) -> Digits:
    from sklearn.datasets import load_digits as sk_digits

    data = sk_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.long)
    if images:
        x = x.view(-1, 1, 8, 8)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    test, train = order[:360], order[360:]
    return Digits(x[train], y[train], x[test], y[test])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    model.train(was_training)
    return acc


def train_recorded(
    model: nn.Module,
    data: Digits,
    path: Path,
    *,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    run_name: str,
    meta: dict,
    eval_every: int = 50,
    momentum: float = 0.0,
    **record_kw,
) -> None:
    """SGD on cross-entropy, recording every step; held-out accuracy every ``eval_every`` steps.

    The recording is packed (compressed) into ``path`` once the run has closed."""
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    n = len(data.x_train)
    raw = path.with_name(path.stem + ".recording.h5")
    with bnviz.record(model, raw, overwrite=True, run_name=run_name, meta=meta, **record_kw) as rec:
        perm, pos = torch.randperm(n, generator=g), 0
        for step in range(steps):
            if pos + batch > n:
                perm, pos = torch.randperm(n, generator=g), 0
            idx = perm[pos : pos + batch]
            pos += batch
            loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log(loss=loss, lr=lr)
            if step % eval_every == 0 or step == steps - 1:
                # the eval pass is recorded too (phase "eval"): running statistics at work
                rec.log(
                    test_accuracy=accuracy(model, data.x_test, data.y_test),
                    train_accuracy=accuracy(model, data.x_train[:360], data.y_train[:360]),
                )
            rec.step()
    pack_run(raw, path)
    raw.unlink()


def cli(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the recordings")
    parser.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    np.random.seed(0)
    return args
