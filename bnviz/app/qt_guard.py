"""Work around a PySide6 refcount bug that crashes the viewer on Python < 3.12.

PySide6 6.12 (measured here on CPython 3.11.7) returns ``None`` from every C++ ``void`` method,
and ``True``/``False`` from ``bool`` methods, without taking a reference, so each call
(QPainter.drawLine, QLabel.setText, QWidget.isVisible, ...) drops that singleton's reference
count by one. A few thousand paints later CPython aborts with "none_dealloc: deallocating None"
(or "bool_dealloc"). Python 3.12+ makes these immortal, which hides the bug. Where the leak is
detected, we give the singletons reference counts no session can exhaust. Imported by every Qt
module of the app (via ``style``), before anything is drawn.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6 import QtCore

_HEADROOM = 1 << 50


def leaks_per_call() -> dict:
    """References lost per call to None (a void method) and False (a bool method); 0 when healthy."""
    obj = QtCore.QObject()
    out = {}
    for singleton, call in ((None, lambda: obj.setObjectName("probe")), (False, obj.signalsBlocked)):
        before = sys.getrefcount(singleton)
        for _ in range(64):
            call()
        out[singleton] = (before - sys.getrefcount(singleton)) / 64
    return out


def apply() -> bool:
    """Raise the singletons' reference counts if this binding leaks them; True when it did."""
    if sys.version_info >= (3, 12) or max(leaks_per_call().values()) < 0.5:
        return False
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += _HEADROOM
    return True


APPLIED = apply()
