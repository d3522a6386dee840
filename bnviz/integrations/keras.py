"""bnviz for Keras 3 on the torch backend: ``model.fit(..., callbacks=[BnvizCallback("run.h5")])``.

Keras' ``BatchNormalization`` is built from plain ops (``ops.moments``, ``ops.batch_normalization``),
not from torch's BN, and Keras layers are not torch submodules, so bnviz records each one through a
stand-in BN module (``KerasBatchNorm``) that holds the layer's own variables (gamma, beta,
moving_mean, moving_variance: the same torch tensors, never copies) and reports the layer's input
(moved to channels-first) before the layer's ``call`` runs; the Keras computation is untouched.
The following activation is read from the Keras graph (an ``Activation``, ``ReLU``, ``LeakyReLU``,
``ELU`` or ``Softmax`` layer fed by the BN). A training row's step is ``optimizer.iterations``
before that step; ``validation_data`` passes are eval rows at that count.
docs/integrations/keras.md.
"""

from __future__ import annotations

import os

if os.environ.get("KERAS_BACKEND", "tensorflow") != "torch":
    raise ImportError(
        "bnviz.integrations.keras records Keras 3 on the torch backend: set KERAS_BACKEND=torch before importing keras"
    )
try:
    import keras
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("bnviz.integrations.keras needs Keras 3: pip install keras") from err

import torch
from torch import nn

import bnviz
from bnviz.hooks.distributed import rank_info
from bnviz.store.ranks import records_on_rank

from ._common import check_options, record_kwargs

# Keras activation function names -> bnviz's (hooks/activations.py ACTIVATIONS)
_ACTIVATION_NAMES = {
    "relu": "relu",
    "relu6": "relu6",
    "leaky_relu": "leaky_relu",
    "elu": "elu",
    "gelu": "gelu",
    "silu": "silu",
    "swish": "silu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "hard_tanh": "hardtanh",
    "linear": "none",
}


class KerasBatchNorm(nn.BatchNorm1d):
    """Stands in for one Keras BatchNormalization layer: its parameters and buffers ARE the layer's
    variables; its forward does nothing (the Keras layer computes): bnviz records its input."""

    def __init__(self, layer):
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        gamma = layer.gamma if layer.scale else None
        beta = layer.beta if layer.center else None
        features = layer.moving_mean.shape[0]
        super().__init__(
            features, eps=layer.epsilon, momentum=1.0 - layer.momentum, affine=False, track_running_stats=False
        )
        self.affine, self.track_running_stats = layer.scale or layer.center, True
        self._parameters["weight"] = gamma.value if gamma is not None else None
        self._parameters["bias"] = beta.value if beta is not None else None
        self._buffers["running_mean"] = layer.moving_mean.value
        self._buffers["running_var"] = layer.moving_variance.value
        self.axis = axis

    def forward(self, input):
        return input


class KerasLayers(nn.Module):
    """The stand-ins of a Keras model's BN layers, named by the Keras layers' names."""


def batch_norm_layers(model) -> list:
    return [
        l
        for l in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(l, keras.layers.BatchNormalization)
    ]


def following_activation(layer) -> str | None:
    """The activation the Keras graph applies to the BN's output, or None when it does not say."""
    nodes = getattr(layer, "_outbound_nodes", [])
    if not nodes:
        return None
    nxt = nodes[0].operation
    if isinstance(nxt, keras.layers.ReLU):
        return (
            "relu6"
            if nxt.max_value == 6 and not nxt.negative_slope
            else ("leaky_relu" if nxt.negative_slope else "relu")
        )
    if isinstance(nxt, keras.layers.LeakyReLU):
        return "leaky_relu"
    if isinstance(nxt, keras.layers.ELU):
        return "elu"
    if isinstance(nxt, keras.layers.Activation):
        return _ACTIVATION_NAMES.get(getattr(nxt.activation, "__name__", ""), "unknown")
    return "none"


def _reporting_call(layer, stand_in):
    call = layer.call

    def reported(inputs, *args, training=None, **kwargs):
        if isinstance(inputs, torch.Tensor):
            stand_in.training = bool(training) and layer.trainable
            stand_in(torch.movedim(inputs, stand_in.axis, 1) if inputs.dim() > 1 else inputs)
        return call(inputs, *args, training=training, **kwargs)

    return reported


class BnvizCallback(keras.callbacks.Callback):
    """Record the BN statistics of the Keras model being fitted to ``path``.

    ranks: "zero" or "all" in a torch.distributed job (docs/distributed.md).
    record_kwargs: passed to ``bnviz.record`` (``activations`` by Keras layer name overrides the
        graph's); with ``resume=True`` a resumed fit goes on from ``optimizer.iterations``.
    """

    def __init__(self, path, *, ranks: str = "zero", **record_kwargs):
        super().__init__()
        check_options("Keras", ranks, record_kwargs)
        self.path, self.ranks, self.record_kwargs = path, ranks, record_kwargs
        self.recorder = None
        self._patched: list = []
        self._done = 0

    def on_train_begin(self, logs=None):
        info = rank_info()
        if self.recorder is not None or not records_on_rank(self.ranks, info["rank"] if info else 0):
            return
        layers = batch_norm_layers(self.model)
        if not layers:
            raise ValueError(f"Keras model {self.model.name!r} has no keras.layers.BatchNormalization to record")
        tree, activations = KerasLayers(), {}
        for layer in layers:
            name = layer.name.replace(".", "_")
            stand_in = KerasBatchNorm(layer)
            tree.add_module(name, stand_in)
            act = following_activation(layer)
            if act is not None:
                activations[name] = act
            object.__setattr__(layer, "call", _reporting_call(layer, stand_in))
            self._patched.append(layer)
        kwargs = record_kwargs(self.record_kwargs, int(self.model.optimizer.iterations), self.ranks)
        kwargs["activations"] = {**activations, **kwargs.get("activations", {})}
        kwargs["meta"] = {"keras_model": self.model.name, **kwargs.get("meta", {})}
        self._done = int(self.model.optimizer.iterations)
        try:
            self.recorder = bnviz.record(tree, self.path, **kwargs)
        except BaseException:
            self._restore()
            raise

    def on_train_batch_end(self, batch, logs=None):
        if self.recorder is None:
            return
        done = int(self.model.optimizer.iterations)
        if done > self._done:
            if logs and isinstance(logs.get("loss"), (int, float)):
                self.recorder.log(loss=logs["loss"])
            self.recorder.step(done - 1)
            self._done = done

    def on_train_end(self, logs=None):
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
        self._restore()

    def _restore(self):
        for layer in self._patched:
            object.__delattr__(layer, "call")
        self._patched = []
