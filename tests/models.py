"""Small models for the training-side tests (and other helpers' tests): each one a BN placement."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bnviz.hooks import Probe


def small_cnn() -> nn.Sequential:
    """A seeded Sequential CNN: BN+ReLU, BN+sigmoid, and a last BatchNorm1d with nothing after it
    (layer paths "1", "4", "9")."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.Sigmoid(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 4),
        nn.BatchNorm1d(4),
    )


class SmallCNN(nn.Module):
    """Conv-BN-ReLU (in-place) twice, then a BatchNorm1d feeding a linear head."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu2 = nn.ReLU(inplace=True)
        self.fc1 = nn.Linear(16, 32)
        self.bn3 = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, classes)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 2)
        x = self.relu2(self.bn2(self.conv2(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc2(self.bn3(self.fc1(x)))


class SigmoidMLP(nn.Module):
    """Linear-BN-Sigmoid blocks (the BN paper's MNIST network, small)."""

    def __init__(self, inputs: int = 20, hidden: int = 16, classes: int = 5, depth: int = 2):
        super().__init__()
        layers, width = [], inputs
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.Sigmoid()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        return self.head(self.body(x))


class ProbeMLP(nn.Module):
    """SigmoidMLP without BN: a Probe where each BN would be (the "without BN" run)."""

    def __init__(self, inputs: int = 20, hidden: int = 16, classes: int = 5):
        super().__init__()
        self.fc1, self.p1 = nn.Linear(inputs, hidden), Probe(hidden)
        self.fc2, self.p2 = nn.Linear(hidden, hidden), Probe(hidden)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        x = torch.sigmoid(self.p1(self.fc1(x)))
        x = torch.sigmoid(self.p2(self.fc2(x)))
        return self.head(x)


class BNAfterActivation(nn.Module):
    """Linear -> ReLU -> BN -> Linear -> tanh: BN placed after the activation."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 16)
        self.bn = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        return torch.tanh(self.fc2(self.bn(F.relu(self.fc1(x)))))


class FunctionalActivations(nn.Module):
    """Activations called as functions, through views and dropout, and a residual add."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn_relu = nn.BatchNorm2d(6)
        self.bn_gelu = nn.BatchNorm2d(6)
        self.bn_res = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 8)
        self.bn_tanh = nn.BatchNorm1d(8)
        self.bn_leaky = nn.BatchNorm1d(8)
        self.bn_relu6 = nn.BatchNorm1d(8)

    def forward(self, x):
        x = F.relu(self.bn_relu(self.conv(x)))
        x = F.gelu(F.dropout(self.bn_gelu(x), 0.1, self.training))
        x = torch.relu(self.bn_res(x) + x)  # the add consumes bn_res: "none"
        x = x.mean((2, 3))
        h = self.fc(x)
        a = self.bn_tanh(h).view(-1, 8).tanh()
        b = F.leaky_relu(self.bn_leaky(h), 0.2)
        c = F.relu6(self.bn_relu6(h))
        return a + b + c


class ReusedBN(nn.Module):
    """One BN module called twice per forward, inside a ModuleList / ModuleDict."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(10, 10), nn.Linear(10, 10)])
        self.norms = nn.ModuleDict({"shared": nn.BatchNorm1d(10), "last": nn.BatchNorm1d(10)})

    def forward(self, x):
        shared = self.norms["shared"]
        x = torch.sigmoid(shared(self.blocks[0](x)))
        x = torch.sigmoid(shared(self.blocks[1](x)))
        return self.norms["last"](x)


def cnn_batch(n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


class BatchNormAct2d(nn.BatchNorm2d):
    """timm's BatchNormAct2d, its forward as timm writes it: BN bookkeeping, F.batch_norm, drop, act."""

    def __init__(self, num_features, act_layer=nn.ReLU, drop: float = 0.0, momentum=0.1):
        super().__init__(num_features, momentum=momentum)
        self.drop = nn.Dropout(drop) if drop else nn.Identity()
        self.act = act_layer()

    def forward(self, x):
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        use = not self.training or self.track_running_stats
        x = F.batch_norm(
            x,
            self.running_mean if use else None,
            self.running_var if use else None,
            self.weight,
            self.bias,
            bn_training,
            factor,
            self.eps,
        )
        return self.act(self.drop(x))


class FrozenBatchNorm2d(nn.Module):
    """torchvision.ops.FrozenBatchNorm2d: fixed statistics and affine parameters, as buffers."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        scale = self.weight.reshape(1, -1, 1, 1) * (self.running_var.reshape(1, -1, 1, 1) + self.eps).rsqrt()
        bias = self.bias.reshape(1, -1, 1, 1) - self.running_mean.reshape(1, -1, 1, 1) * scale
        return x * scale + bias


class TimmStyleNet(nn.Module):
    """A frozen stem (detection-backbone style), then conv + BatchNormAct2d blocks with SiLU and dropout."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.stem_bn = FrozenBatchNorm2d(6)
        with torch.no_grad():
            self.stem_bn.weight.uniform_(0.5, 1.5)
            self.stem_bn.bias.uniform_(-0.2, 0.2)
            self.stem_bn.running_mean.uniform_(-0.1, 0.1)
            self.stem_bn.running_var.uniform_(0.5, 2.0)
        self.conv1 = nn.Conv2d(6, 8, 3, padding=1, bias=False)
        self.bn1 = BatchNormAct2d(8, act_layer=nn.SiLU, drop=0.1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = BatchNormAct2d(8, act_layer=nn.Identity)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.bn1(self.conv1(x))
        x = torch.tanh(self.bn2(self.conv2(x)))
        return self.head(x.mean(dim=(2, 3)))
