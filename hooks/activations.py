"""Which activation receives each BN layer's output, and through what.

Detection (chosen over torch.fx, which fails on data-dependent Python in ``forward``): while a
forward pass is observed, a ``TorchFunctionMode`` watches every torch function call and follows
the data from each BN output along a trail:

- shape-only ops (view, reshape, reshape_as, flatten, permute, contiguous, clone, to...) keep
  the values: an activation reached through them receives y itself;
- element-wise arithmetic whose result has the shape of y (a residual add, in place or not, a
  scaling, a drop-path mask, dropout) changes the values: the activation receives y "via" them;
- anything else (a conv, a linear layer, cat, pooling) ends the trail.

The first recognised activation on a trail is the layer's (``Found``). Module activations
(nn.ReLU...) are seen through the functional call they make; inside a BN subclass whose own
forward adds an activation (timm's BatchNormAct2d), y is followed from its batch_norm call and
the activation reported with source "fused". Where the zone is measured
(``zone_input``): "y" when the activation receives y (the sampled y); "activation" when it
receives y via something and is a module with y's shape: the engine samples that module's input
(``measure.py``); "none" when it is a functional call reached via something (its input cannot be
seen after the observed pass): then no activation is named and no zone claimed. A tensor reached
from several layers (bn2(...) + downsample_bn(...)) feeds its activation for each of them. In-place
ops return the same tensor object, so they update the trail they are on (``out += identity``)
instead of passing it through. By construction: BN placed after an activation gets the activation
after it; a layer that did not run in any observed pass stays "unknown".

Observed passes: the model's first forward, and later the first forward in which a layer that had
not run yet runs (layer drop), until the layer table is frozen (written to a file). While layers
wait, one forward pre-hook sits on the model; it pickles and copies as ``{}.get`` (a no-op of the
standard library), and every other hook exists only during a forward: a model saved or copied at
any time carries nothing of bnviz, and a forward that raises leaves no mode on torch's stack.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode

from .activation_calls import (
    ACTIVATION_FUNCTIONS,
    ACTIVATION_MODULES,
    BN_KERNELS,
    ELEMENTWISE,
    SHAPE_ONLY,
    classify,
    first_tensor,
)
from .zone_rules import NO_ZONE


@dataclass
class Found:
    activation: str
    source: str  # "module" | "functional" | "none"
    via: tuple[str, ...] = ()
    zone_input: str = "y"  # "y" | "activation" | "none"
    seen: str = ""  # the activation met, also when no zone is claimed for it
    rule: tuple[str, float] = NO_ZONE
    module: torch.nn.Module | None = None  # the activation module to measure at (zone_input "activation")


class _FollowMode(TorchFunctionMode):
    """Follows BN outputs to the first activation applied to them."""

    def __init__(self, observer):
        super().__init__()
        self.observer = observer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        try:
            self.observer.before(func, args, kwargs)  # an in-place activation changes its input
        except Exception:  # observation must never break the user's forward
            pass
        out = func(*args, **kwargs)
        try:
            self.observer.see(func, args, kwargs, out)
        except Exception:  # observation must never break the user's forward
            pass
        return out


class _StartHook:
    """The observer's forward pre-hook on the model. Pickled or copied it becomes ``{}.get`` (which
    hands the forward its arguments unchanged): nothing of bnviz travels with a saved model."""

    def __init__(self, observer):
        self.observer = observer

    def __call__(self, module, args):
        self.observer.forward_starts()

    def __reduce__(self):
        return getattr, ({}, "get")

    def __deepcopy__(self, memo):
        return {}.get


class ForwardObserver:
    """Watches forward passes of ``root``; ``done(order, found)`` after each observed pass.

    ``layers`` maps module -> layer index; ``measured(index, tensor)`` gets the input of an
    activation found via something (zone_input "activation") in the pass that finds it; ``calls``
    holds how often each layer ran in the pass that first saw it (a reused module: > 1). ``done``
    gets the layer indices in order of first call (over all observed passes) and {layer index:
    Found} for the layers observed so far.
    """

    def __init__(self, root, layers: dict, done, measured, fused=()):
        self.root, self.layers, self.done, self.measured = root, layers, done, measured
        # Layers whose own forward may apply an activation (BN subclasses): inside them, the output
        # of the batch_norm call on the layer's input is followed; ``normalised`` gets those seen.
        self.fused, self.normalised = set(fused), set[int]()
        self.inside: list[tuple[int, object]] = []
        self.order: list[int] = []
        self.calls: dict[int, int] = {}
        self.found: dict[int, Found] = {}
        self.first, self.frozen = True, False
        self.mode: _FollowMode | None = None
        self.tracked: dict[int, tuple[torch.Tensor, dict[int, tuple[str, ...]]]] = {}
        self.shapes: dict[int, torch.Size] = {}
        self.active: list = []  # activation modules being called (innermost last)
        self.this_pass: set[int] = set()
        self.late: int | None = None  # a layer whose first run started this pass: its kernel output is its y
        self.temp: list = []
        self.before_pass: tuple[list[int], dict[int, Found], dict[int, int]] = ([], {}, {})
        self.end = None  # the forward hook that ends this forward's pass (registered as it starts)
        self.stale: list = []  # hooks to remove at the next forward (see _forward_ends)
        self.handle = root.register_forward_pre_hook(_StartHook(self))

    def forward_starts(self):
        """The model's forward begins: observe it whole if no pass has completed; else be ready to
        end a pass an unseen layer starts. A capture (jit trace, torch.compile) is not observed."""
        for h in self.stale:  # hooks of a forward that raised (torch was iterating over them)
            h.remove()
        self.stale = []
        if self.end is not None or self.frozen or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return
        self.end = self.root.register_forward_hook(self._forward_ends, always_call=True)
        if self.first:
            self.start()

    def _forward_ends(self, module, args, output):
        failed = sys.exc_info()[0] is not None  # always_call: also when the forward raised
        handle, self.end = self.end, None
        if failed:  # torch is iterating over the hooks: removing one now would break its loop
            self.stale.append(handle)
        else:
            handle.remove()
        self.stop(failed=failed)

    def start(self, late: int | None = None):
        self.tracked, self.active, self.this_pass, self.late, self.inside = {}, [], set(), late, []
        self.before_pass = (list(self.order), dict(self.found), dict(self.calls))
        for m, idx in self.layers.items():
            if idx in self.fused:
                self.temp.append(m.register_forward_pre_hook(self._fused_enter(idx)))
            self.temp.append(m.register_forward_hook(self._layer_hook(idx)))
        for m in self.root.modules():
            if isinstance(m, ACTIVATION_MODULES):
                self.temp.append(m.register_forward_pre_hook(self._act_enter))
                self.temp.append(m.register_forward_hook(self._act_leave, always_call=True))
        self.mode = _FollowMode(self)
        self.mode.__enter__()

    def unseen_layer_runs(self, idx: int):
        """Layer ``idx``, which no observed pass has seen, is about to run (layer drop): observe the
        rest of this forward. Called by the engine from that layer's forward; nothing after ``freeze``."""
        if not self.frozen and self.mode is None and self.end is not None:
            self.start(late=idx)

    def stop(self, failed: bool = False):
        """End an observed pass (when the forward returns) and report it; a pass that raised is
        forgotten (the next forward is observed instead)."""
        if self.mode is None:
            return
        mode, self.mode = self.mode, None
        mode.__exit__(None, None, None)
        if failed:
            self.stale += self.temp
        else:
            for h in self.temp:
                h.remove()
        self.temp, self.tracked, self.active, self.late = [], {}, [], None
        if failed:
            self.order, self.found, self.calls = self.before_pass
            return
        self.first = False
        if len(self.order) == len(self.layers):
            self.handle.remove()
        self.done(self.order, self.found)

    def freeze(self):
        """No more observation: the layer table has been written."""
        self.frozen = True
        self.detach()

    def detach(self):
        self.stop()
        self.handle.remove()
        for h in [self.end, *self.stale]:
            if h is not None:
                h.remove()
        self.end, self.stale = None, []

    def _layer_hook(self, idx):
        def hook(module, args, output):
            if self.inside and self.inside[-1][0] == idx:
                self.inside.pop()
            self._track_output(idx, output)

        return hook

    def _fused_enter(self, idx):
        def hook(module, args):
            self.inside.append((idx, args[0] if args else None))

        return hook

    def _track_output(self, idx, output):
        if idx not in self.order:  # first seen in this pass: follow it (and its reuses in this pass)
            self.order.append(idx)
            self.this_pass.add(idx)
        if idx in self.this_pass:
            self.calls[idx] = self.calls.get(idx, 0) + 1
            self._follow(idx, output)

    def _follow(self, idx, y):
        if isinstance(y, torch.Tensor):
            self.tracked[id(y)] = (y, {idx: ()})
            self.shapes.setdefault(idx, y.shape)

    def _act_enter(self, module, args):
        self.active.append(module)

    def _act_leave(self, module, args, output):
        if self.active and self.active[-1] is module:
            self.active.pop()

    def _trail(self, t):
        entry = self.tracked.get(id(t)) if isinstance(t, torch.Tensor) else None
        return entry[1] if entry is not None and entry[0] is t else None

    def before(self, func, args, kwargs):
        act = classify(func, args, kwargs)
        if act is not None:
            x = first_tensor(args, kwargs)
            trail = self._trail(x)
            if trail:
                self._arrive(trail, act, x)
                self.tracked.pop(id(x), None)  # the activation's output is not on any trail

    def see(self, func, args, kwargs, out):
        if self.late is not None and func in BN_KERNELS:
            idx, self.late = self.late, None
            self._track_output(idx, out[0] if isinstance(out, tuple) else out)
            return
        if func in ACTIVATION_FUNCTIONS:
            return
        x = first_tensor(args, kwargs)
        if self.inside and func in BN_KERNELS:  # a BN subclass normalising its input: follow y from here
            idx, layer_input = self.inside[-1]
            if x is layer_input and isinstance(out, torch.Tensor):
                self.normalised.add(idx)
                self._follow(idx, out)
            return
        trail = self._trail(x)
        name = getattr(func, "__name__", "")
        op = ELEMENTWISE.get(func) or ELEMENTWISE.get(name)
        if op is not None:
            trails = [t for t in (self._trail(a) for a in args[:2]) if t]
            if trails and isinstance(out, torch.Tensor):
                merged: dict[int, tuple[str, ...]] = {}
                for t in trails:
                    for idx, via in t.items():
                        if out.shape == self.shapes.get(idx):
                            merged.setdefault(idx, via + (op,))
                if merged:
                    self.tracked[id(out)] = (out, merged)
                else:
                    self.tracked.pop(id(out), None)
        elif name in SHAPE_ONLY:
            if trail and isinstance(out, torch.Tensor) and out is not x:
                self.tracked[id(out)] = (out, trail)
        elif trail and out is x:  # any other in-place op: no longer a value we can follow
            self.tracked.pop(id(x), None)

    def _arrive(self, trail, act, x):
        name, rule = act
        module = self.active[-1] if self.active else None
        source = "module" if module is not None else "functional"
        for idx, via in trail.items():
            if idx in self.found:
                continue
            if self.inside and self.inside[-1][0] == idx:  # inside the layer's own forward
                source = "fused"
            if not via:
                self.found[idx] = Found(name, source, (), "y", name, rule)
            elif module is not None and x.shape == self.shapes.get(idx):
                self.found[idx] = Found(name, source, via, "activation", name, rule, module)
                self.measured(idx, x)  # this pass's sample; later passes: measure.py
            else:
                self.found[idx] = Found("none", "none", via, "none", f"{name} ({source})")
