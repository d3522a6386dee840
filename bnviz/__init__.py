"""bnviz: visual debugger for BatchNorm activation distributions.

The public names load on first use, so ``import bnviz`` pulls in neither torch (only
``bnviz.record`` needs it) nor Qt (only ``bnviz.export`` of a picture needs it).
"""

from __future__ import annotations

import importlib

# The function shadows its submodule (bnviz.export); bnviz/export.py imports only the standard
# library at load time, so this costs nothing.
from bnviz.export import export  # noqa: E402

# public name -> (module, attribute)
_LAZY = {
    "record": ("bnviz.hooks.recorder", "record"),
    "open_run": ("bnviz.store", "open_run"),
    "findings": ("bnviz.analysis.findings", "findings"),
    "Thresholds": ("bnviz.analysis.findings", "Thresholds"),
    "show": ("bnviz.notebook", "show"),
    "findings_frame": ("bnviz.notebook", "findings_frame"),
}
__all__ = ["__version__", "export", *_LAZY]


def __getattr__(name: str):
    if name == "__version__":  # from the installed package's metadata: pyproject.toml is the one source
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("bnviz")
        except PackageNotFoundError:
            return "unknown"
    if name not in _LAZY:
        raise AttributeError(f"module 'bnviz' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = globals()[name] = getattr(importlib.import_module(module), attr)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
