"""What differs from row to row, as per-channel masks on the device, cached: how each layer
normalised and how many samples it gave (a row's key), the zone rule of its activation, and
which layers' zones are measured at an activation's input."""

from __future__ import annotations

import torch

from . import row_stats, sampling
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
        return torch.cat([torch.full((c,), v, dtype=dtype, device=self.device) for v, c in zip(values, self.features)])

    def zone(self) -> row_stats.Zone:
        """The zone rule per channel, rebuilt when the activations are (re)detected."""
        version = self.instrumentation.version
        if self._zone is None or self._zone[0] != version:
            infos = {id(li.module): li for li in self.instrumentation.layers}
            layers = [infos[id(m)] for m in self.modules]
            zone = row_stats.Zone(
                use_abs=self.per_channel([li.zone_rule != "dead" for li in layers]).unsqueeze(1),
                threshold=self.per_channel([li.zone_threshold for li in layers]).unsqueeze(1),
                any_abs=any(li.zone_rule != "dead" for li in layers),
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
            "present": self.per_channel(present, torch.bool),
            "present_l": torch.tensor(present).to(dev),
            "running": self.per_channel([m == MODE_RUNNING for m in mode], torch.bool),
            "identity": self.per_channel([m == MODE_IDENTITY for m in mode], torch.bool),
            "sync": self.per_channel([m == MODE_SYNC for m in mode], torch.bool),
            "q_is_var": self.per_channel([bool(k and k[2]) for k in key], torch.bool),
            "s": s,
            "valid": sampled,
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
