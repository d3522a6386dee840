"""The window's files: opening recordings in place of the open runs (or waiting for one a training
run has not created yet), reload, saved layouts and the recent-files menu. The runs themselves
are the ``Session``'s; a bad file becomes a message (``failed``), never an exception."""

from __future__ import annotations

import os

from PySide6 import QtCore, QtWidgets

from bnviz.app.banner import Banner, Reason
from bnviz.app.run_list import FILE_FILTER
from bnviz.app.session import Session
from bnviz.app.state import Layout, ViewState
from bnviz.app.waiter import FileWaiter
from bnviz.store import RunFileError

MAX_RECENT = 8
LAYOUT_FILTER = "bnviz layout (*.json)"


class RunFiles(QtCore.QObject):
    failed = QtCore.Signal(str, str)  # (title, message): the window shows it
    waiting = QtCore.Signal(str)  # waiting for this path to be created ("": no longer waiting)

    def __init__(self, session: Session, settings: QtCore.QSettings, banner: Banner, parent: QtWidgets.QWidget):
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self.banner = banner
        self.window = parent  # dialogs' parent
        self.waiter: FileWaiter | None = None
        self.recent_menu = QtWidgets.QMenu("Open &Recent", parent)
        self._fill_recent()

    def open(self, *paths: str | None, keep_state: bool = False, wait: bool = False, state: ViewState | None = None):
        """Open recordings in place of those open (None entries skipped; several are compared,
        layers matched by name); True when they opened. With ``wait`` (``bnviz view``), a first
        path that does not exist yet is waited for (a banner says so) and opened when the
        training run has created it. ``state``: a layout's view state."""
        names = [p for p in paths if p]
        self.stop_waiting()
        if wait and names and not os.path.exists(names[0]):
            self._wait_for(names, keep_state, state)
            return True
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            self.session.open(*names, keep_state=keep_state, state=state)
        except (RunFileError, OSError, ValueError) as e:
            self.failed.emit("Cannot open the recording", str(e))
            return False
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        for p in reversed(names):
            self.add_recent(os.path.abspath(p))
        return True

    def _wait_for(self, paths: list[str], keep_state: bool, state: ViewState | None) -> None:
        path = paths[0]
        if self.session.primary is not None:
            self.session.close()
            self.session.runs_changed.emit()
        self.banner.show_message(
            Reason.WAITING,
            f"Waiting for {path}: it does not exist yet; it opens as soon as the training run creates it.",
        )

        def try_open() -> str | None:
            try:
                self.session.open(*paths, keep_state=keep_state, state=state)
            except (RunFileError, OSError, ValueError) as e:
                self.banner.show_message(Reason.WAITING, f"Waiting for {path} to become readable: {e}")
                return str(e)
            self.add_recent(os.path.abspath(path))
            return None

        self.waiter = FileWaiter(path, try_open, lambda e: self.failed.emit("Cannot open the recording", e), self)
        self.waiting.emit(path)

    def stop_waiting(self) -> None:
        if self.waiter is not None:
            self.waiter.stop()
            self.waiter.deleteLater()
            self.waiter = None
            self.banner.clear(Reason.WAITING)
            self.waiting.emit("")

    def open_dialog(self) -> None:
        """Open recordings in place of those open (several files: compared)."""
        paths, _ = QtWidgets.QFileDialog.getOpenFileNames(self.window, "Open bnviz recordings", "", FILE_FILTER)
        if paths:
            self.open(*paths)

    def reload(self) -> None:
        try:
            self.session.reload()
        except (RunFileError, OSError, ValueError) as e:
            self.failed.emit("Cannot reload", str(e))

    # --- layouts: the runs, their visibility and reference, and the view state --------------------
    def save_layout(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self.window, "Save layout", "", LAYOUT_FILTER)
        if path:
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.session.layout().to_json())

    def load_layout(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self.window, "Load layout", "", LAYOUT_FILTER)
        if not path:
            return
        try:
            with open(path, encoding="utf-8") as f:
                layout = Layout.from_json(f.read())
        except (OSError, ValueError) as e:
            self.failed.emit("Cannot load the layout", f"{path}: {e}")
            return
        if layout.paths:
            self.open(*layout.paths, state=layout.state)
        else:
            self.session.state.assign(layout.state)

    # --- recent files ----------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        v = self.settings.value("recent", [])
        return [v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple)) else []

    def add_recent(self, path: str) -> None:
        files = [path] + [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", files[:MAX_RECENT])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for p in files:
            a = self.recent_menu.addAction(p.replace("&", "&&"))  # "&" would mark a shortcut key
            a.triggered.connect(lambda _=False, p=p: self.open(p))
        self.recent_menu.setEnabled(bool(files))
