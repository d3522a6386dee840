"""Waiting for a recording that does not exist yet (TensorBoard waits for its log directory):
poll until the file is there and opens, then open it."""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6 import QtCore

POLL_MS = 500
# a file the writer has only just created may not open yet (no root attributes, locked): how
# many failed tries after it appeared before the error is the user's
YOUNG_TRIES = 40


class FileWaiter(QtCore.QObject):
    """Calls ``try_open()`` each poll once ``path`` exists; it returns None on success or the
    error text. ``on_give_up(text)`` gets the last error once a file that appeared keeps failing."""

    def __init__(
        self, path: str, try_open: Callable[[], str | None], on_give_up: Callable[[str], None], parent=None
    ) -> None:
        super().__init__(parent)
        self.path = path
        self._try_open, self._give_up = try_open, on_give_up
        self.failures = 0
        self.last_error = ""
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.timer.start()

    def poll(self) -> None:
        if not os.path.exists(self.path):
            return
        error = self._try_open()
        if error is None:
            self.stop()
            return
        self.failures += 1
        self.last_error = error
        if self.failures >= YOUNG_TRIES:
            self.stop()
            self._give_up(error)

    def stop(self) -> None:
        self.timer.stop()
