"""The fixed-size deterministic subsample the distribution statistics are estimated from.

A BN input of shape (N, C, *spatial) has M = N * HW values per channel (HW = prod(spatial), 1 for
2-D input); position p in 0..M-1 is sample p // HW at flat spatial index p % HW. Channel c takes
s = min(S, M) positions, one in each of s strata of a rotated 0..M-1 (``stratified``):

    p_k = (r_c + lo_k + floor(u_ck * (lo_{k+1} - lo_k))) mod M,   lo_k = floor(k M / s),  k < s

with r_c = floor(u_c * M) and u_c, u_ck in [0, 1) from a 32-bit integer hash of (shape, c, k).
Each stratum is a run of about M / s consecutive positions (batch-major), so the samples spread
over the images and, within them, over the spatial positions; the hashed offsets break any
alignment with the image grid (no aliasing at power-of-two shapes), the rotation makes every
position equally likely over the channels, and every channel has its own positions (their errors
are independent, so layer aggregates average them out). For M <= S every position is taken once:
the statistics are exact. Columns k >= s of the (C, S) sample are padding and marked invalid.

Pooled quantile subsets take from a layer's C * s valid samples (channel-major index c * s + k)
min(P, C * s) of them with the same rule (``pool_index``): stratified over channels and samples.
Everything is device arithmetic, computed once per shape and cached by the caller.
"""

from __future__ import annotations

import torch

# Names this estimator in the file (format 1.2); files without it came from the grid sampler
# p_k = ((2k+1) M) // (2s), which aliased with the image at power-of-two shapes.
ESTIMATOR = "stratified-hash-1"
_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (int64 tensor of values in [0, 2^32)); products stay below 2^59."""
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _MASK
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _MASK
    return (x >> 16) ^ x


def _unit(h: torch.Tensor) -> torch.Tensor:
    return h.double() * 2.0**-32


def stratified(m: int, s: int, rows: int, salt: int, device) -> torch.Tensor:
    """(rows, s) int64 positions in 0..m-1 (s <= m): row r takes one position in each of s equal
    strata (sizes differ by at most one) of 0..m-1 rotated by a hashed r-dependent amount."""
    k = torch.arange(s, device=device, dtype=torch.int64)
    r = torch.arange(rows, device=device, dtype=torch.int64).view(-1, 1)
    lo = k * m // s
    size = (k + 1) * m // s - lo
    h_row = _mix((r + salt) & _MASK)
    rotate = (_unit(h_row) * m).long()
    h = _mix(h_row ^ _mix((k + _GOLDEN) & _MASK))
    offset = (_unit(h) * size).long()
    return (rotate + lo + offset) % m


def _salt(*sizes: int) -> int:
    salt = 0
    for v in sizes:
        salt = (salt * 1_000_003 + v) & _MASK
    return salt


def sample_index(n: int, c: int, hw: int, s_max: int, device) -> tuple[torch.Tensor, int]:
    """Flat (row-major) indices (C, s_max) of the sample of an (n, c, *spatial) tensor, and s.

    Built with device arithmetic only (no host-to-device copy); padding repeats the first positions.
    """
    m = n * hw
    s = min(s_max, m)
    p = stratified(m, s, c, _salt(n, c, hw), device)
    if s < s_max:
        p = p[:, torch.arange(s_max, device=device) % s]
    flat = (p // hw) * (c * hw) + p % hw
    return flat + torch.arange(c, device=device).view(-1, 1) * hw, s


def gather(x: torch.Tensor, index: torch.Tensor, out: torch.Tensor) -> None:
    """The sample of x at the flat ``sample_index`` (C * S,) into ``out`` (C * S,) float32: a copy,
    safe from in-place ops, any memory layout and dtype (index_select of a contiguous float32 x's
    flat view, 2x faster than ``take`` on 16k samples)."""
    if x.is_contiguous() and x.dtype == out.dtype:
        torch.index_select(x.view(-1), 0, index, out=out)
    else:
        out.copy_(torch.take(x, index))


def pool_index(offsets, features, valid, s_max: int, pool: int, device):
    """Indices (L, pool) into the flat (Ctot * s_max) samples of each layer's pooled subset, and a
    (L, pool) mask of padding entries. Layer l has valid[l] samples per channel (0: absent); of its
    C * s valid values in channel-major order (index c * s + k) it pools min(pool, C * s) with
    ``stratified`` (all of them when C * s <= pool).
    """
    j = torch.arange(pool, device=device)
    idx, pad = [], []
    for off, c, s in zip(offsets, features, valid):
        count = c * s
        if count:
            taken = min(pool, count)
            v = stratified(count, taken, 1, _salt(c, s), device)[0]
            v = v[j % taken]
        else:
            v = j
        s = max(s, 1)
        idx.append((off + v // s) * s_max + v % s)
        pad.append(j >= count)
    return torch.stack(idx).clamp_(max=offsets[len(features)] * s_max - 1), torch.stack(pad)
