"""What happens to open recordings when the process is asked to end.

- SIGTERM (what schedulers send before they kill a job): every open recorder hands its buffered
  rows to the file and waits until they are committed. Then the handler that was installed
  before bnviz runs (it may end the process, or let training finish first: recording goes on);
  with none, the recorders close their files and the process ends as SIGTERM's default would.
- SIGINT (Ctrl-C) during ``close()`` waits until the file is closed with its rows, then raises
  KeyboardInterrupt; a second Ctrl-C stops at once and the file is marked failed, never closed.
- Interpreter exit: recorders left open are closed.

A signal that arrives while a recorder is in the middle of a call is handled when that call
returns. Only the main thread can install handlers: recorders created elsewhere get the exit
behaviour only. Imports neither torch nor Qt.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import weakref

_recorders: weakref.WeakSet = weakref.WeakSet()
_previous = None  # the SIGTERM handler before ours, while ours is installed
_pending: list = []  # a SIGTERM that arrived while a recorder was busy
_exit_hooked = False


def register(recorder) -> None:
    """Track an open recorder; ``recorder`` has ``busy``, ``commit_buffered()`` and ``close()``."""
    global _exit_hooked
    _recorders.add(recorder)
    if not _exit_hooked:
        atexit.register(_close_all)
        _exit_hooked = True
    _install()


def unregister(recorder) -> None:
    _recorders.discard(recorder)
    if not len(_recorders):
        _uninstall()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _install() -> None:
    global _previous
    if _previous is not None or not _main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_IGN, None):  # ignored, or set outside Python: leave it alone
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    _previous = previous


def _uninstall() -> None:
    global _previous
    if _previous is None or not _main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:  # nobody replaced ours meanwhile
        signal.signal(signal.SIGTERM, _previous)
    _previous = None


def _on_sigterm(signum, frame) -> None:
    if any(r.busy for r in list(_recorders)):
        _pending.append((signum, frame))  # the busy recorder calls deliver_pending() when done
        return
    _terminate(signum, frame)


def deliver_pending() -> None:
    """Handle a SIGTERM that arrived while a recorder was busy (called once it is not)."""
    if _pending and not any(r.busy for r in list(_recorders)):
        signum, frame = _pending.pop()
        _pending.clear()
        _terminate(signum, frame)


def _terminate(signum, frame) -> None:
    previous = _previous
    for r in list(_recorders):
        r.commit_buffered()
    if callable(previous):
        previous(signum, frame)
        return
    _close_all()
    _uninstall()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)  # end as the default action would (status -15)


def _close_all() -> None:
    for r in list(_recorders):
        r.close()


@contextlib.contextmanager
def sigint_deferred():
    """Inside: a first Ctrl-C is held until the block ends, then raised as KeyboardInterrupt; a
    second one raises at once."""
    if not _main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    pressed = []

    def hold(signum, frame):
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt
