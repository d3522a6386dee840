"""Plain-text windows of the viewer (shortcuts, run information): scrollable, never taller than
the screen, and the main window gets the keyboard back when they close."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

SCREEN_SHARE = 0.85  # of the available screen height and width, at most


class TextDialog(QtWidgets.QDialog):
    view: QtWidgets.QPlainTextEdit

    def text(self) -> str:
        return self.view.toPlainText()


def text_dialog(parent: QtWidgets.QWidget, title: str, text: str) -> TextDialog:
    """A non-blocking dialog showing ``text`` in a fixed-width font, scrolled when long, OK
    always on screen. Closing it gives the keyboard focus back to ``parent``'s window."""
    box = TextDialog(parent)
    box.setWindowTitle(title)
    view = QtWidgets.QPlainTextEdit(text)
    view.setReadOnly(True)
    view.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
    font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
    view.setFont(font)
    box.view = view
    ok = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok)
    ok.accepted.connect(box.accept)
    lay = QtWidgets.QVBoxLayout(box)
    lay.addWidget(view, 1)
    lay.addWidget(ok)
    metrics = QtGui.QFontMetrics(font)
    lines = text.splitlines() or [""]
    want = QtCore.QSize(
        max(metrics.horizontalAdvance(line) for line in lines) + 60, metrics.lineSpacing() * len(lines) + 90
    )
    screen = (parent.screen() if parent is not None else QtGui.QGuiApplication.primaryScreen()).availableGeometry()
    box.resize(
        min(want.width(), int(screen.width() * SCREEN_SHARE)), min(want.height(), int(screen.height() * SCREEN_SHARE))
    )
    window = parent.window() if parent is not None else None
    if window is not None:

        def refocus(_result: int) -> None:
            window.activateWindow()
            window.setFocus()

        box.finished.connect(refocus)
    box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
