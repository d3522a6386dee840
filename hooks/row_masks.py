"""What differs from row to row, as per-channel masks on the device, cached: how each layer
normalised and how many samples it gave (a row's key), the zone rule of its activation, and
which layers' zones are measured at an activation's input."""

from __future__ import annotations

from math import inf, nan

import torch

from . import buffers, row_stats, sampling
from .batchnorm import MODE_IDENTITY, MODE_RUNNING, MODE_SYNC


class RowMasks:
    def __init__(self, instrumentation, offsets, features, samples: int, pool: int, device):
        self.instrumentation = instrumentation
        self.offsets, self.features = offsets, features
        self.modules = instrumentation.modules
        self.samples, self.pool, self.device = samples, pool, device
        self._by_key: dict = {}
        self._by_activation: dict = {}
        self._zone: tuple | None = None

    def per_channel(self, values, dtype=None) -> torch.Tensor:
        return buffers.per_channel(values, self.features, self.device, dtype)

    def zone(self) -> row_stats.Zone:
        """The zone rule per channel, rebuilt when the activations are (re)detected."""
        version = self.instrumentation.version
        if self._zone is None or self._zone[0] != version:
            infos = {id(li.module): li for li in self.instrumentation.layers}
            layers = [infos[id(m)] for m in self.modules]
            dead = [li.zone_rule == "dead" for li in layers]
            t = [float(li.zone_threshold) for li in layers]
            # |v| >= t with t <= 0 holds for every v but NaN: v <= inf alone (the two tests stay disjoint)
            every = [not d and v <= 0 for v, d in zip(t, dead)]
            one_test = [d or e for d, e in zip(dead, every)]
            zone = row_stats.Zone(
                below=self.per_channel([inf if e else v if d else -v for v, d, e in zip(t, dead, every)]).unsqueeze(1),
                above=None
                if all(one_test)
                else self.per_channel([nan if o else v for v, o in zip(t, one_test)]).unsqueeze(1),
                at_activation=tuple(li.zone_input == "activation" for li in layers),
            )
            self._zone = (version, zone)
        return self._zone[1]

    def for_key(self, key) -> dict:
        """Per-channel masks for rows of this key: per layer (mode, samples, variance given) or None."""
        got = self._by_key.get(key)
        if got is not None:
            return got
        dev, S = self.device, self.samples
        mode = [k[0] if k else -1 for k in key]
        valid = [k[1] if k else 0 for k in key]
        s = self.per_channel(valid, torch.float32)
        pool, pad = sampling.pool_index(self.offsets, self.features, valid, S, self.pool, dev)
        present = [k is not None for k in key]
        sampled = torch.arange(S, device=dev).view(1, -1) < s.view(-1, 1)
        got = {
            "pool": pool,
            "pool_channel": pool.view(-1) // S,  # the channel of each pooled value
            "present": self.per_channel(present, torch.bool),
            "present_l": torch.tensor(present).to(dev),
            "running": self.per_channel([m == MODE_RUNNING for m in mode], torch.bool),
            "identity": self.per_channel([m == MODE_IDENTITY for m in mode], torch.bool),
            "sync": self.per_channel([m == MODE_SYNC for m in mode], torch.bool),
            "q_is_var": self.per_channel([bool(k and k[2]) for k in key], torch.bool),
            "s": s,
            "valid": sampled,
            "valid_f": sampled.float(),
            "invalid": ~sampled,
            "padding": self.padding(valid),
            "pool_counted": sampled.flatten()[pool] & ~pad,  # pooled entries that are samples
            "padded": any(v < S for v in valid),
            "any_identity": MODE_IDENTITY in mode,
            "any_running": MODE_RUNNING in mode,
            "any_sync": MODE_SYNC in mode,
            # constant masks that are all True / all False select one side: skip the torch.where
            "any_q_is_var": any(bool(k and k[2]) for k in key),
            "all_present": all(present),
        }
        self._by_key[key] = got
        return got

    def padding(self, valid) -> torch.Tensor:
        """(L,) sample slots per layer that hold no sample (``valid``: samples per channel, per layer)."""
        return torch.tensor([c * (self.samples - v) for c, v in zip(self.features, valid)], dtype=torch.float32).to(
            self.device
        )

    def activation(self, zone: row_stats.Zone, received, key):
        """(channels whose zone is taken on what their activation ``received`` (Ctot, 1), channels
        measured so that received nothing in the row (Ctot,)); ``received``: per layer, a bool."""
        cache_key = (zone.at_activation, received, tuple(k is not None for k in key))
        masks = self._by_activation.get(cache_key)
        if masks is None:
            at_act = zone.at_activation
            use = self.per_channel([a and h for a, h in zip(at_act, received)])
            missing = self.per_channel([a and not h and k is not None for a, h, k in zip(at_act, received, key)])
            masks = self._by_activation[cache_key] = (use.unsqueeze(1), missing)
        return masks
