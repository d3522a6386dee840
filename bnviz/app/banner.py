"""The banner above the views: one message per reason, each set and cleared by its reason
(never by matching its text), shown worst first."""

from __future__ import annotations

import enum

from PySide6 import QtCore, QtWidgets


class Reason(enum.IntEnum):
    """Why the banner shows something; lower values are shown first."""

    UNREADABLE = 0  # the file broke while open
    WRITE_FAILED = 1  # the writer stopped on an error (disk full)
    WRITER_GONE = 2  # the training process died without closing the file
    RANKS = 3  # ranks of a distributed job that cannot be shown
    DRAW = 4  # a view could not be drawn
    LAYER = 5  # a layer asked for that the run does not have
    OLD_SAMPLER = 6  # recorded by the old grid sampler: its estimates may be biased
    WAITING = 7  # the file does not exist yet, or has no steps yet
    DONE = 8  # confirmation of something the user did (an export)


class Banner(QtWidgets.QLabel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.setWordWrap(True)
        self.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setStyleSheet("background:#FDF1C7; color:#000; padding:6px; border:1px solid #E69F00;")
        self.messages: dict[Reason, str] = {}
        self.hide()

    def show_message(self, reason: Reason, text: str) -> None:
        self.messages[reason] = text
        self._show()

    def show_for(self, reason: Reason, text: str, ms: int) -> None:
        """A message that goes away by itself after ``ms`` milliseconds (a confirmation)."""
        self.show_message(reason, text)
        timer = QtCore.QTimer(self)
        timer.setSingleShot(True)

        def expire() -> None:
            if self.messages.get(reason) == text:
                self.clear(reason)
            timer.deleteLater()

        timer.timeout.connect(expire)
        timer.start(ms)

    def clear(self, *reasons: Reason) -> None:
        """Drop the messages of ``reasons`` (none given: every message)."""
        for r in reasons or tuple(self.messages):
            self.messages.pop(r, None)
        self._show()

    def _show(self) -> None:
        self.setText("\n".join(self.messages[r] for r in sorted(self.messages)))
        self.setVisible(bool(self.messages))
