"""``instrument(model)``: swap every BN layer to the reporting class, in place; ``detach()`` swaps back."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm, _LazyNormBase

from . import batchnorm, foreign, measure
from .activations import ForwardObserver
from .probe import Probe
from .zone_rules import check_activation, zone_of

KERNELS = ("native", "reference")


@dataclass
class LayerInfo:
    """One row of the layer table (docs/architecture.md); ``module`` is not part of the table."""

    index: int
    path: str
    kind: str
    num_features: int
    eps: float
    momentum: float | None
    affine: bool
    track_running_stats: bool
    activation: str
    activation_source: str
    zone_rule: str
    zone_threshold: float
    probe_channels: list[int]
    # Calls of the layer in one forward of the model (a module reused in a forward: > 1; only the
    # first call of each step is recorded). 1 until the first forward has been observed.
    calls_per_forward: int = 1
    # A frozen BN (buffers only): recorded as a BN in eval mode.
    frozen: bool = False
    # 1.2: what lies between the layer and its activation ("add", "add, mul"...; "" for nothing
    # that changes values), the activation met there even when no zone is claimed for it, and
    # where the zone fractions are measured: "y" (the layer's output), "activation" (the
    # activation module's input), "none" (nowhere: no zone claim)
    activation_via: str = ""
    activation_seen: str = ""
    zone_input: str = "y"
    module: nn.Module = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "module"}
        d["probe_channels"] = list(d["probe_channels"])
        return d


def _spread(k: int, c: int) -> list[int]:
    """k channels evenly spread over c (the centres of k equal segments)."""
    return sorted({(2 * i + 1) * c // (2 * k) for i in range(min(k, c))})


class Instrumentation:
    """What ``instrument`` returns: the instrumented layers, and the way back."""

    def __init__(self, model: nn.Module, activations=None, probes=1, kernel: str = "native"):
        if kernel not in KERNELS:
            raise ValueError(f"kernel={kernel!r}: choose one of {', '.join(KERNELS)}")
        if torch._C._functorch.peek_interpreter_stack() is not None:
            raise RuntimeError(
                "instrument() was called inside a torch.func transform (vmap/grad/functional_call...). "
                "Instrument the model once, outside any transform."
            )
        self.model = model
        found = []
        for path, m in model.named_modules():
            if batchnorm.is_instrumented(m) or "_bnviz_index" in m.__dict__ or foreign.is_attached(m):
                raise RuntimeError(
                    f"{type(model).__name__} is already instrumented (layer {path!r}): call detach() on the "
                    "first Instrumentation (or leave its with-block) before instrumenting again."
                )
            if isinstance(m, _LazyNormBase) and m.has_uninitialized_params():
                raise ValueError(
                    f"layer {path!r} is a {type(m).__name__} that has not seen data yet: run one forward pass "
                    "so it becomes a plain BatchNorm, then instrument the model."
                )
            if isinstance(m, (_BatchNorm, Probe)) or foreign.is_frozen_bn(m):
                found.append((path, m))
        if not found:
            raise ValueError(
                f"{type(model).__name__} has no BatchNorm layer (torch's BatchNorm1d/2d/3d, SyncBatchNorm or "
                "a subclass, a frozen BN) or bnviz.hooks.Probe layer to record."
            )
        self._user = self._check_activations(activations, [p for p, _ in found])
        k, chosen = self._check_probes(probes, found)
        self._layers = []
        fused = set()  # BN subclasses: their forward may add an activation (recorded from outside)
        for i, (path, m) in enumerate(found):
            probe, frozen = isinstance(m, Probe), foreign.is_frozen_bn(m)
            bn = not (probe or frozen)
            features = int(m.num_features) if hasattr(m, "num_features") else m.weight.numel()
            act = self._user.get(path, "unknown")
            rule, thr = zone_of(act)
            self._layers.append(
                LayerInfo(
                    index=i,
                    path=path,
                    kind="Probe" if probe else type(m).__name__,
                    num_features=features,
                    eps=float(m.eps),
                    momentum=float(m.momentum) if bn and m.momentum is not None else None,
                    affine=frozen or (bn and bool(m.affine)),
                    track_running_stats=frozen or (bn and bool(m.track_running_stats)),
                    activation=act,
                    activation_source="user" if path in self._user else "none",
                    zone_rule=rule,
                    zone_threshold=thr,
                    probe_channels=chosen.get(path, _spread(k, features)),
                    frozen=frozen,
                    module=m,
                )
            )
            if probe:
                batchnorm.mark(m, i)
            elif type(m) in batchnorm.OWN:
                batchnorm.swap_in(m, i, kernel)
            else:
                foreign.attach(m, i, frozen)
                if bn:
                    fused.add(i)
        self._found = found
        self.kernel = kernel
        self.probes_per_layer = k
        self.version = 0  # bumped when the layer order or activations change (after the first forward)
        self.observed = False
        self._order = list(range(len(found)))
        self.unchecked: list[str] = []  # subclass layers whose forward was not seen to batch-normalise their input
        self._sink = None
        self._measured: dict[nn.Module, list[int]] = {}  # activation module -> layers it is measured for
        # registration indices no observed forward has seen yet (the engine asks on each forward)
        self.unobserved = set(range(len(found)))
        self._observer = ForwardObserver(
            model, {li.module: li.index for li in self._layers}, self._observed, self._measured_input, fused
        )
        self._attached = True

    @staticmethod
    def _check_activations(activations, paths):
        user = dict(activations or {})
        for path, name in user.items():
            if path not in paths:
                close = difflib.get_close_matches(path, paths, n=3)
                hint = f" Close: {', '.join(repr(c) for c in close)}." if close else ""
                raise ValueError(f"activations names layer {path!r}, which is not a BN/Probe layer of the model.{hint}")
            check_activation(name, path)
        return user

    @staticmethod
    def _check_probes(probes, found):
        if isinstance(probes, int):
            if probes < 1:
                raise ValueError(f"probes={probes}: give at least one probe channel per layer")
            return probes, {}
        chosen = {path: [int(c) for c in chs] for path, chs in dict(probes).items()}
        sizes = {len(v) for v in chosen.values()}
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError("probes: give every layer the same number (>= 1) of probe channels")
        features = {p: int(m.num_features) for p, m in found}
        for path, chs in chosen.items():
            if path not in features:
                close = difflib.get_close_matches(path, list(features), n=3)
                raise ValueError(f"probes names layer {path!r}, which is not a BN/Probe layer. Close: {close}")
            bad = [c for c in chs if not 0 <= c < features[path]]
            if bad:
                raise ValueError(f"probes[{path!r}]: channels {bad} outside 0..{features[path] - 1}")
        return sizes.pop(), chosen

    def _observed(self, order, found):
        """After each observed forward: the layer order and what each layer's output reached."""
        reg = list(range(len(self._layers)))  # the LayerInfo objects' registration order
        self._order = list(order) + [i for i in reg if i not in order]
        self.unobserved.difference_update(order)
        measured: dict[nn.Module, list[int]] = {}
        for i, li in zip(reg, self._layers):
            li.calls_per_forward = self._observer.calls.get(i, li.calls_per_forward)
            if li.path in self._user:
                continue
            f = found.get(i)
            if f is not None:
                li.activation, li.activation_source, (li.zone_rule, li.zone_threshold) = f.activation, f.source, f.rule
                li.activation_via, li.activation_seen, li.zone_input = ", ".join(f.via), f.seen, f.zone_input
                if f.module is not None:
                    measured.setdefault(f.module, []).append(i)
            else:
                li.activation = "none" if i in order else "unknown"
                li.activation_source, li.activation_via, li.activation_seen, li.zone_input = "none", "", "", "y"
                li.zone_rule, li.zone_threshold = zone_of(li.activation)
        obs = self._observer
        self.unchecked = [
            f"{li.path} ({li.kind})"
            for i, li in zip(reg, self._layers)
            if i in obs.fused and i in order and i not in obs.normalised
        ]
        self._measure(measured)
        self.observed = True
        self.version += 1

    def _measured_input(self, index: int, z) -> None:
        if self._sink is not None:
            self._sink.put_zone_input((index,), z)

    def _measure(self, measured):
        for m in self._measured:
            if m not in measured:
                measure.swap_out(m)
        for m, layers in measured.items():
            measure.swap_in(m, layers)
            measure.set_sink(m, self._sink)
        self._measured = measured

    def unseen_layer_runs(self, index: int) -> None:
        """Layer ``index`` of ``unobserved`` is about to run: observe the rest of this forward."""
        self._observer.unseen_layer_runs(index)

    def end_observation(self) -> None:
        """End an observed forward that did not end at the model's own forward (a layer called alone)."""
        self._observer.stop()

    def freeze(self) -> None:
        """The layer table is final (it has been written): no more detection."""
        self._observer.freeze()
        self.unobserved.clear()

    @property
    def layers(self) -> list[LayerInfo]:
        """Layers in forward order (registration order until the first forward pass has been seen)."""
        out = []
        for pos, i in enumerate(self._order):
            li = self._layers[i]
            li.index = pos
            out.append(li)
        return out

    @property
    def order(self) -> list[int]:
        """Registration index of each layer of ``layers`` (the engine's internal layer numbering)."""
        return list(self._order)

    @property
    def features(self) -> list[int]:
        """Channels of each module of ``modules`` (a frozen BN may have no ``num_features``)."""
        return [li.num_features for li in self._layers]

    @property
    def modules(self) -> list[nn.Module]:
        """Modules in registration order (index = internal layer number)."""
        return [m for _, m in self._found]

    def layer_table(self) -> list[dict]:
        return [li.as_dict() for li in self.layers]

    def set_sink(self, sink) -> None:
        """Attach ``sink`` (a StatsEngine) to every layer; None detaches. No-op after ``detach()``."""
        if not self._attached:
            return
        self._sink = sink
        for m in self.modules:
            (foreign.set_sink if foreign.is_attached(m) else batchnorm.set_sink)(m, sink)
        for m in self._measured:
            measure.set_sink(m, sink)

    def detach(self) -> None:
        """Swap every layer back to torch's class; the modules keep all their state. Idempotent."""
        if not self._attached:
            return
        self._observer.detach()
        self.unobserved.clear()
        self._measure({})
        for li in self._layers:
            m = li.module
            if isinstance(m, Probe):
                batchnorm.forget(m)
            elif batchnorm.is_instrumented(m):
                batchnorm.swap_out(m)
            elif foreign.is_attached(m):
                foreign.detach(m)
        self._attached = False

    @property
    def attached(self) -> bool:
        return self._attached

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.detach()


def instrument(model: nn.Module, activations=None, probes=1, kernel: str = "native") -> Instrumentation:
    """Instrument every BatchNorm layer and Probe of ``model`` in place.

    torch's BatchNorm1d/2d/3d and SyncBatchNorm are swapped to bnviz's reporting classes; a subclass
    of torch's BN (timm's BatchNormAct2d: BN with a fused activation) and a frozen BN
    (FrozenBatchNorm2d: buffers only, recorded as eval-mode BN) keep their own forward and are
    recorded from a forward pre-hook (``foreign.py``).

    activations: {layer path: activation name} overrides detection (names in ``activations.ACTIVATIONS``).
    probes: channels per layer whose y quantiles are recorded: an int k (k channels evenly spread) or
        {layer path: [channels]} (same count for every listed layer; others get that many spread).
    kernel: "native" (torch's kernel, bit-identical) or "reference" (``reference.py``, float-close).

    A LazyBatchNorm must have seen one batch first (it then is a plain BatchNorm and is swapped like
    one). Pickling or deep-copying the instrumented model gives torch's classes. Detach before
    fusing conv+BN or calling SyncBatchNorm.convert_sync_batchnorm (they replace exact classes).
    """
    return Instrumentation(model, activations=activations, probes=probes, kernel=kernel)
