"""The main window: assembles the listeners of one ``Session`` and owns files, menus, settings."""

from __future__ import annotations

import os

from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.analysis.runinfo import format_text
from bnviz.app import render, style
from bnviz.app.findings_panel import FindingsPanel
from bnviz.app.layer_tree import LayerTree
from bnviz.app.options import OptionsBar
from bnviz.app.session import Session
from bnviz.app.shortcuts import cheatsheet_text, shortcuts
from bnviz.app.state import VIEW_TITLES, VIEWS, Layout
from bnviz.app.stepping import row_at_or_before
from bnviz.app.strip import OverviewStrip
from bnviz.app.timeline import Timeline
from bnviz.app.views import VIEW_CLASSES
from bnviz.store import RunFileError
from bnviz.store.schema import PHASE_NAMES

MAX_RECENT = 8
LIVE_POLL_MS = 1000
FILE_FILTER = "bnviz recordings (*.h5 *.hdf5 *.bnviz);;All files (*)"


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, settings: QtCore.QSettings | None = None) -> None:
        super().__init__()
        style.configure()
        self.settings = settings or QtCore.QSettings("bnviz", "bnviz")
        self.session = Session()
        self.last_error = ""
        self.setWindowTitle("bnviz")
        self.setAcceptDrops(True)

        self.views = {k: VIEW_CLASSES[k](self.session) for k in VIEWS}
        self.tabs = QtWidgets.QTabWidget()
        for k in VIEWS:
            self.tabs.addTab(self.views[k], VIEW_TITLES[k])
            self.views[k].user_range.connect(self._user_range)
            self.views[k].glw.scene().contextMenu = self._export_actions()
        self.tabs.currentChanged.connect(lambda i: self.session.state.update(view=VIEWS[i]))

        self.banner = QtWidgets.QLabel()
        self.banner.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#FDF1C7; color:#000; padding:6px; border:1px solid #E69F00;")
        self.banner.hide()
        self.options = OptionsBar(self.session)
        self.readout = self.options.readout
        self.strip = OverviewStrip(self.session)
        self.timeline = Timeline(self.session)
        centre = QtWidgets.QWidget()
        box = QtWidgets.QVBoxLayout(centre)
        box.setContentsMargins(2, 2, 2, 2)
        for w, stretch in ((self.banner, 0), (self.options, 0), (self.tabs, 1), (self.strip, 0), (self.timeline, 0)):
            box.addWidget(w, stretch)

        self.tree = LayerTree(self.session)
        self.findings = FindingsPanel(self.session)
        self.findings.found.connect(self.tree.set_findings)
        self.left = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.left.addWidget(self.tree)
        self.left.addWidget(self.findings)
        self.left.setSizes([500, 250])
        self.split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.split.addWidget(self.left)
        self.split.addWidget(centre)
        self.split.setStretchFactor(1, 1)
        self.split.setSizes([380, 1120])
        self.setCentralWidget(self.split)

        self.status = {k: QtWidgets.QLabel() for k in ("file", "step", "phase", "ranks", "writer")}
        for k, lab in self.status.items():
            lab.setTextFormat(QtCore.Qt.TextFormat.PlainText)
            if k == "file":
                lab.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
            self.statusBar().addPermanentWidget(lab, 1 if k == "file" else 0)

        self.live_timer = QtCore.QTimer(self)
        self.live_timer.setInterval(LIVE_POLL_MS)
        self.live_timer.timeout.connect(self.poll_live)

        self._build_menus()
        self.session.state.changed.connect(self._state_changed)
        self.session.runs_changed.connect(self._runs_changed)
        self.session.data_changed.connect(self._data_changed)
        self._restore_settings()
        if not self.settings.value("geometry"):
            self.resize(1500, 950)
        self._update_status()

    # --- menus and keys ------------------------------------------------------------------------
    def _build_menus(self) -> None:
        bar = self.menuBar()
        self.menus = {name: bar.addMenu(name) for name in ("&File", "&View", "&Go", "&Help")}
        self.recent_menu = QtWidgets.QMenu("Open &Recent", self)
        # shadows QWidget.actions(), which nothing here calls: the window's actions by name
        self.actions: dict[str, QtGui.QAction] = {}  # type: ignore[assignment]
        for sc in shortcuts(self):
            if sc.menu == "&File" and sc.name == "reload":
                self.menus["&File"].addMenu(self.recent_menu)
            act = QtGui.QAction(sc.text, self)
            if sc.keys:
                act.setShortcuts([QtGui.QKeySequence(k) for k in sc.keys])
                act.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            if sc.checkable:
                act.setCheckable(True)
                act.toggled.connect(sc.fn)
            else:
                act.triggered.connect(lambda _=False, fn=sc.fn: fn())
            self.addAction(act)
            if sc.menu:
                self.menus[sc.menu].addAction(act)
            self.actions[sc.name] = act
        self.actions["link_zoom"].blockSignals(True)
        self.actions["link_zoom"].setChecked(self.session.state.link_zoom)
        self.actions["link_zoom"].blockSignals(False)
        self._fill_recent()

    def _export_actions(self) -> list[QtGui.QAction]:
        acts = []
        for ext in render.FORMATS:
            a = QtGui.QAction(f"Export view as {ext[1:].upper()}…", self)
            a.triggered.connect(lambda _=False, e=ext: self.export_dialog(e))
            acts.append(a)
        return acts

    def show_cheatsheet(self) -> None:
        box = QtWidgets.QMessageBox(self)
        box.setWindowTitle("bnviz shortcuts")
        box.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        box.setText(cheatsheet_text(shortcuts(self)))
        box.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        box.open()
        self.cheatsheet = box

    def show_run_info(self) -> None:
        """``bnviz info`` for the open run (from the findings analysis), as plain text."""
        info = self.findings.info
        if self.session.primary is None:
            text = "No recording open."
        elif info is None:
            text = f"{self.session.primary.path}\n\nStill analysing the run; try again in a moment."
        else:
            text = format_text(info, show_all=True)
        box = QtWidgets.QMessageBox(self)
        box.setWindowTitle("Run information")
        box.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        box.setText(text)
        box.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        box.open()
        self.info_box = box

    # --- files ---------------------------------------------------------------------------------
    def open_files(self, path: str, compare: str | None = None, keep_state: bool = False) -> bool:
        """Open a recording (and one to compare); a bad file shows a message, never raises."""
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            self.session.open(path, compare, keep_state)
        except (RunFileError, OSError, ValueError) as e:
            self.show_error("Cannot open the recording", str(e))
            return False
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        for p in filter(None, (compare, path)):
            self._add_recent(os.path.abspath(p))
        return True

    def open_dialog(self, compare: bool = False) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open a recording to compare" if compare else "Open a bnviz recording", "", FILE_FILTER
        )
        if not path:
            return
        if compare and self.session.primary:
            self.open_files(self.session.primary.path, path)
        else:
            self.open_files(path)

    def close_compare(self) -> None:
        if self.session.compare:
            self.open_files(self.session.slots[0].path)

    def reload(self) -> None:
        try:
            self.session.reload()
        except (RunFileError, OSError, ValueError) as e:
            self.show_error("Cannot reload", str(e))

    def save_layout(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save layout", "", "bnviz layout (*.json)")
        if path:
            slots = self.session.slots
            layout = Layout(
                [slots[0].path] if slots else [], slots[1].path if len(slots) > 1 else None, self.session.state
            )
            with open(path, "w", encoding="utf-8") as f:
                f.write(layout.to_json())

    def load_layout(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load layout", "", "bnviz layout (*.json)")
        if not path:
            return
        try:
            with open(path, encoding="utf-8") as f:
                layout = Layout.from_json(f.read())
        except (OSError, ValueError) as e:
            self.show_error("Cannot load the layout", f"{path}: {e}")
            return
        self.session.state.assign(layout.state)
        if layout.paths:
            self.open_files(layout.paths[0], layout.compare, keep_state=True)

    def export_dialog(self, ext: str) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, f"Export view as {ext[1:].upper()}", f"{self.session.state.view}{ext}", f"*{ext}"
        )
        if path:
            if not path.lower().endswith(ext):
                path += ext
            self.export(path)

    def export(self, path: str) -> bool:
        try:
            render.export_view(self.current_view(), path)
        except (OSError, ValueError) as e:
            self.show_error("Export failed", str(e))
            return False
        self.statusBar().showMessage(f"Wrote {path}", 5000)
        return True

    def show_error(self, title: str, text: str) -> None:
        """A window-modal message that does not block the event loop (tests intercept it)."""
        self.last_error = text
        box = QtWidgets.QMessageBox(
            QtWidgets.QMessageBox.Icon.Warning, title, text, QtWidgets.QMessageBox.StandardButton.Ok, self
        )
        box.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.error_box = box

    def show_banner(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.setVisible(bool(text))

    # --- drag and drop -------------------------------------------------------------------------
    def dragEnterEvent(self, ev: QtGui.QDragEnterEvent) -> None:
        if any(u.isLocalFile() for u in ev.mimeData().urls()):
            ev.acceptProposedAction()

    def dropEvent(self, ev: QtGui.QDropEvent) -> None:
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_files(paths[0], paths[1] if len(paths) > 1 else None)
            ev.acceptProposedAction()

    # --- listening -----------------------------------------------------------------------------
    def current_view(self):
        return self.views[self.session.state.view]

    def _guard(self, fn, *args) -> None:
        """Run a redraw; a file that broke under us becomes a banner, not a crash."""
        try:
            fn(*args)
        except (RunFileError, OSError, KeyError, ValueError, IndexError) as e:
            self.show_banner(f"Could not draw this view: {e}")

    def _runs_changed(self) -> None:
        self.show_banner("")
        for v in self.views.values():
            v.needs_rebuild = True
        self._show_ranks()
        old = next((s.run.estimator_notice for s in self.session.slots if s.run.estimator_notice), None)
        if old and not self.banner.isVisible():
            self.show_banner(old)
        self._guard(self._show_current)
        slot = self.session.primary
        self.setWindowTitle(f"bnviz — {os.path.basename(slot.path)}" if slot else "bnviz")
        live = any(s.live for s in self.session.slots)
        if live:
            self.live_timer.start()
        else:
            self.live_timer.stop()
        if slot is not None and len(self.session.steps) == 0:
            self.show_banner(
                f"{slot.path} has no recorded steps yet"
                + (": waiting for the training run to write some." if live else ".")
            )
        self._update_status()

    def _show_ranks(self) -> None:
        """A distributed job: the Ranks tab, its ranks in the status bar, missing ones in the banner."""
        slot = self.session.primary
        ranks = slot.ranks if slot else []
        problems = getattr(slot.run, "rank_problems", {}) if slot else {}
        multi = len(ranks) > 1
        if not multi and self.session.state.view == "ranks":
            self.session.state.update(view="drift")  # first: hiding the current tab picks a neighbour
        self.tabs.setTabVisible(VIEWS.index("ranks"), multi)
        self.actions["view_ranks"].setEnabled(multi)
        world = len(ranks) + len(problems)
        self.status["ranks"].setText(
            f"ranks: {len(ranks)} of {world}" if problems else f"ranks: {world}" if multi else ""
        )
        if problems:
            self.show_banner(
                f"This distributed job ran {world} ranks; {len(problems)} cannot be shown. "
                + " ".join(f"Rank {r}: {why}." for r, why in sorted(problems.items()))
            )

    def _data_changed(self) -> None:
        for v in self.views.values():
            v.needs_rebuild = True
        self._guard(self._show_current)
        if len(self.session.steps) and self.banner.text().endswith("write some."):
            self.show_banner("")
        self._update_status()

    def _show_current(self) -> None:
        v = self.current_view()
        if self.tabs.currentWidget() is not v:
            self.tabs.blockSignals(True)
            self.tabs.setCurrentWidget(v)
            self.tabs.blockSignals(False)
        if v.needs_rebuild:
            v.rebuild()
        else:
            v.apply_range()
            v.update_step()
        self._readout()

    def _readout(self) -> None:
        step = self.session.cursor_step()
        text = self.current_view().readout()
        text = f"step {step}: {text}" if step is not None and text else text
        self.readout.setText(text)
        self.readout.setToolTip(style.tooltip(text.replace("   ", "\n")) if text else "Values at the cursor step")

    def _state_changed(self, names: set[str]) -> None:
        cur = self.current_view()
        for v in self.views.values():
            if names & v.depends:
                v.needs_rebuild = True
        if self.session.opening:
            return
        if "view" in names or cur.needs_rebuild:
            self._guard(self._show_current)
        else:
            if "step_range" in names:
                cur.apply_range()
            if names & {"step", "reference_step"}:
                self._guard(cur.update_step)
                self._readout()
        if "link_zoom" in names:
            self.actions["link_zoom"].setChecked(self.session.state.link_zoom)
        self._update_status()

    def _user_range(self, x0: float, x1: float) -> None:
        if self.session.state.link_zoom and self.sender() is self.current_view():
            self.session.state.update(step_range=(int(x0), int(round(x1))))

    def poll_live(self) -> None:
        try:
            self.session.refresh()
        except (RunFileError, OSError) as e:
            self.live_timer.stop()
            self.show_banner(
                f"The recording can no longer be read (deleted or truncated while open?): {e}. "
                "The views show what was read before; File > Reload tries again."
            )
        try:
            live = any(s.live for s in self.session.slots)
        except (RunFileError, OSError):
            live = False
        if not live:
            self.live_timer.stop()
        self._update_status()

    def _update_status(self) -> None:
        slot = self.session.primary
        s = self.status
        if slot is None:
            s["file"].setText("No recording open: File > Open (Ctrl+O) or drop a file here")
            for k in ("step", "phase", "ranks", "writer"):
                s[k].setText("")
            return
        s["file"].setText(slot.path + (f"  ⟷  {self.session.compare.path}" if self.session.compare else ""))
        step = self.session.cursor_step()
        steps = self.session.steps
        s["step"].setText(f"step {step} of {int(steps[-1])}" if step is not None else "no steps")
        phase = (
            PHASE_NAMES.get(int(self.session.phases[row_at_or_before(steps, step)]), "?") if step is not None else ""
        )
        try:
            writer = slot.run.writer_state
            failed = slot.run.recording_failed
        except (RunFileError, OSError) as e:
            writer, failed = "unreadable", False
            self.show_banner(f"The recording can no longer be read (deleted or truncated while open?): {e}")
        if failed:
            self.show_banner(
                "Recording stopped on a write error (disk full?); the file holds every step written before it."
            )
        elif writer == "writer gone" and not self.banner.isVisible():
            self.show_banner(
                "The training process stopped without closing this file (killed or crashed?); "
                "the views show every step it finished writing."
            )
        s["phase"].setText(f"phase: {phase}" if phase else "")
        s["writer"].setText(f"writer: {writer}")

    # --- settings ------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        for key, fn in (("geometry", self.restoreGeometry), ("window_state", self.restoreState)):
            v = self.settings.value(key)
            if isinstance(v, QtCore.QByteArray):
                fn(v)
        for key, split in (("split", self.split), ("left_split", self.left)):
            v = self.settings.value(key)
            if isinstance(v, QtCore.QByteArray):
                split.restoreState(v)

    def _save_settings(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.setValue("split", self.split.saveState())
        self.settings.setValue("left_split", self.left.saveState())
        self.settings.sync()

    def recent_files(self) -> list[str]:
        v = self.settings.value("recent", [])
        return [v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple)) else []

    def _add_recent(self, path: str) -> None:
        files = [path] + [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", files[:MAX_RECENT])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for p in files:
            a = self.recent_menu.addAction(p.replace("&", "&&"))  # "&" would mark a shortcut key
            a.triggered.connect(lambda _=False, p=p: self.open_files(p))
        self.recent_menu.setEnabled(bool(files))

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:
        self.timeline.stop()
        self.live_timer.stop()
        self.findings.shutdown()
        self._save_settings()
        self.session.close()
        super().closeEvent(ev)
