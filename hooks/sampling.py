"""The fixed-size deterministic subsample the distribution statistics are estimated from.

A BN input of shape (N, C, *spatial) has M = N * prod(spatial) values per channel; position
p in 0..M-1 is sample n = p // HW at flat spatial index p % HW (HW = prod(spatial), 1 for 2-D
input). Every channel is sampled at the same s = min(S, M) positions, the centres of s equal
segments of 0..M-1:

    p_k = ((2k + 1) * M) // (2s)        k = 0 .. s-1

so for M <= S every position is taken once. Rows k >= s of the (S, C) sample are padding and
marked invalid. Pooled quantile subsets pick from a layer's C * s valid samples (channel-major
index c * s + k) the same way (``pool_positions``).
"""

from __future__ import annotations

import torch


def positions(m: int, s_max: int) -> list[int]:
    """Sample positions p_k for m values per channel and at most s_max samples (see module doc)."""
    s = min(s_max, m)
    return [((2 * k + 1) * m) // (2 * s) for k in range(s)]


def sample_index(n: int, hw: int, s_max: int, device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(batch index, spatial index) tensors of length s_max (padding repeats position 0), and s."""
    pos = positions(n * hw, s_max)
    s = len(pos)
    pos = pos + [pos[0]] * (s_max - s)
    p = torch.tensor(pos, dtype=torch.long)
    return (p // hw).to(device), (p % hw).to(device), s


def gather(x: torch.Tensor, n_idx: torch.Tensor, hw_idx: torch.Tensor) -> torch.Tensor:
    """(S, C) sample of x (N, C, *spatial) at the given positions; a copy, safe from in-place ops."""
    if x.dim() == 2:
        return x[n_idx]
    return x.flatten(2)[n_idx, :, hw_idx]


def pool_positions(count: int, p: int) -> list[int]:
    """Indices into 0..count-1 of a pooled subset of at most p values (centres of equal segments)."""
    if count <= p:
        return list(range(count))
    return [((2 * j + 1) * count) // (2 * p) for j in range(p)]
