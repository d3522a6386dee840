"""``torch.ao.quantization.fuse_modules`` on an instrumented model.

Its table of fusable module types is keyed by exact classes, so a reporting BN layer matched no
entry and an in-place fusion failed. ``register`` adds, for every entry with a torch BN class, the
same entry with bnviz's class; its fuser hands torch's fuser a plain copy of the layer (torch's
class, the same parameters and buffers). The fused module is torch's own, with nothing of bnviz.
(An out-of-place fusion deep-copies the model first, which already gives torch's classes.)
"""

from __future__ import annotations

import copy


def _with_plain_layers(fuser, own_classes):
    def fuse(is_qat, *modules):
        # copy.copy of a reporting layer is torch's class sharing its tensors (batchnorm.__reduce_ex__)
        return fuser(is_qat, *[copy.copy(m) if type(m) in own_classes else m for m in modules])

    return fuse


def register(own: dict) -> None:
    """Make torch's fuser table accept bnviz's classes. ``own`` maps torch's class to bnviz's."""
    try:
        from torch.ao.quantization import fuser_method_mappings

        table = fuser_method_mappings._DEFAULT_OP_LIST_TO_FUSER_METHOD
    except (ImportError, AttributeError):  # another torch: fusion of instrumented layers stays refused
        return
    own_classes = set(own.values())
    for key, fuser in list(table.items()):
        if any(t in own for t in key):
            table.setdefault(tuple(own.get(t, t) for t in key), _with_plain_layers(fuser, own_classes))
