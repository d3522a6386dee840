"""The fixed-size deterministic subsample the distribution statistics are estimated from.

A BN input of shape (N, C, *spatial) has M = N * prod(spatial) values per channel; position
p in 0..M-1 is sample n = p // HW at flat spatial index p % HW (HW = prod(spatial), 1 for 2-D
input). Every channel is sampled at the same s = min(S, M) positions, the centres of s equal
segments of 0..M-1:

    p_k = ((2k + 1) * M) // (2s)        k = 0 .. s-1

so for M <= S every position is taken once. Columns k >= s of the (C, S) sample are padding
and marked invalid. Pooled quantile subsets pick from a layer's C * s valid samples (channel-major
index c * s + k) the same way (``pool_index``).
"""

from __future__ import annotations

import torch


def sample_index(n: int, c: int, hw: int, s_max: int, device) -> tuple[torch.Tensor, int]:
    """Flat (row-major) indices (C, s_max) of the sample of an (n, c, *spatial) tensor, and s.

    Built with device arithmetic only (no host-to-device copy); padding repeats the first positions.
    """
    m = n * hw
    s = min(s_max, m)
    k = torch.arange(s_max, device=device) % s
    p = ((2 * k + 1) * m) // (2 * s)
    flat = (p // hw) * (c * hw) + p % hw
    return flat + torch.arange(c, device=device).view(-1, 1) * hw, s


def gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(C, S) sample of x at ``sample_index``; a copy, safe from in-place ops, any memory layout."""
    return torch.take(x, index)


def pool_index(offsets, features, valid, s_max: int, pool: int, device):
    """Indices (L, pool) into the flat (Ctot * s_max) samples of each layer's pooled subset, and a
    (L, pool) mask of padding entries. Layer l has valid[l] samples per channel (0: absent); its
    C * s valid values in channel-major order (index c * s + k) are pooled at the centres of
    min(pool, C * s) equal segments.
    """
    j = torch.arange(pool, device=device)
    idx, pad = [], []
    for off, c, s in zip(offsets, features, valid):
        count = c * s
        v = j if count <= pool else ((2 * j + 1) * count) // (2 * pool)
        s = max(s, 1)
        idx.append((off + v // s) * s_max + v % s)
        pad.append(j >= count)
    return torch.stack(idx).clamp_(max=offsets[len(features)] * s_max - 1), torch.stack(pad)
