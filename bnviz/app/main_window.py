"""The main window: assembles the listeners of one ``Session`` (the run list, layer tree, findings,
views, strip and timeline) and owns the menus, the status bar and the settings; its files are
``RunFiles``'."""

from __future__ import annotations

import os

from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.analysis.runinfo import format_text
from bnviz.app import render, style
from bnviz.app.banner import Banner, Reason
from bnviz.app.dialogs import text_dialog
from bnviz.app.findings_panel import FindingsPanel
from bnviz.app.layer_tree import LayerTree
from bnviz.app.options import OptionsBar
from bnviz.app.run_files import RunFiles
from bnviz.app.run_list import RunList
from bnviz.app.session import Session
from bnviz.app.shortcuts import cheatsheet_text, shortcuts
from bnviz.app.state import VIEW_TIPS, VIEW_TITLES, VIEWS
from bnviz.app.stepping import row_at_or_before
from bnviz.app.strip import OverviewStrip
from bnviz.app.timeline import Timeline
from bnviz.app.trouble import show_finding
from bnviz.app.views import VIEW_CLASSES
from bnviz.store import RunFileError
from bnviz.store.ranks import rank_zero_alone, world_size_of
from bnviz.store.schema import PHASE_NAMES

LIVE_POLL_MS = 1000
DONE_MS = 8000  # how long a confirmation (export written) stays in the banner


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, settings: QtCore.QSettings | None = None) -> None:
        super().__init__()
        style.configure(dark=style.system_is_dark())
        self.settings = settings or QtCore.QSettings("bnviz", "bnviz")
        self.session = Session()
        self.last_error = ""
        self.setWindowTitle("bnviz")
        self.setAcceptDrops(True)

        self.views = {k: VIEW_CLASSES[k](self.session) for k in VIEWS}
        self.tabs = QtWidgets.QTabWidget()
        for k in VIEWS:
            self.tabs.addTab(self.views[k], VIEW_TITLES[k])
            self.tabs.setTabToolTip(self.tabs.count() - 1, f"{VIEW_TIPS[k]} ({VIEWS.index(k) + 1})")
            self.views[k].user_range.connect(self._user_range)
            self.views[k].glw.scene().contextMenu = self._export_actions()
        self.tabs.currentChanged.connect(lambda i: self.session.state.update(view=VIEWS[i]))

        self.banner = Banner()
        self.files = RunFiles(self.session, self.settings, self.banner, self)
        self.files.failed.connect(self.show_error)
        self.files.waiting.connect(self._waiting)
        # the window's file commands are RunFiles' (bnviz.app.run_viewer, layouts, tests)
        self.open_files, self.reload = self.files.open, self.files.reload
        self.save_layout, self.load_layout = self.files.save_layout, self.files.load_layout
        self.writer_text = ""  # the status bar's "writer: ..." as of the last health check
        self.options = OptionsBar(self.session)
        self.readout = self.options.readout
        self.tabs.setCornerWidget(self.options, QtCore.Qt.Corner.TopRightCorner)
        self.strip = OverviewStrip(self.session)
        self.timeline = Timeline(self.session)
        centre = QtWidgets.QWidget()
        box = QtWidgets.QVBoxLayout(centre)
        box.setContentsMargins(2, 2, 2, 2)
        for w, stretch in ((self.banner, 0), (self.readout, 0), (self.tabs, 1), (self.strip, 0), (self.timeline, 0)):
            box.addWidget(w, stretch)

        self.tree = LayerTree(self.session)
        self.findings = FindingsPanel(self.session)
        self.findings.found.connect(self._open_at_trouble)
        self.runs = RunList(self.session)
        self.runs.failed.connect(self.show_error)
        self.runs.added.connect(self.files.add_recent)
        self._trouble_from: tuple | None = None  # (layer, view, following, step) a fresh open showed
        self.left = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        layers = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(layers)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.tree.filter_box)
        lay.addWidget(self.tree, 1)
        self.left.addWidget(self.runs)
        self.left.addWidget(layers)
        self.left.addWidget(self.findings)
        self.left.setSizes([90, 440, 250])
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
        # shadows QWidget.actions(), which nothing here calls: the window's actions by name
        self.actions: dict[str, QtGui.QAction] = {}  # type: ignore[assignment]
        for sc in shortcuts(self):
            if sc.menu == "&File" and sc.name == "reload":
                self.menus["&File"].addMenu(self.files.recent_menu)
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

    def _export_actions(self) -> list[QtGui.QAction]:
        acts = []
        for ext in render.FORMATS:
            a = QtGui.QAction(f"Export view as {ext[1:].upper()}…", self)
            a.triggered.connect(lambda _=False, e=ext: self.export_dialog(e))
            acts.append(a)
        return acts

    def go_to_step_dialog(self) -> None:
        """Ctrl+G: type a step; the cursor goes to the recorded step at or before it."""
        steps = self.session.steps
        if not len(steps):
            return
        box = QtWidgets.QInputDialog(self)
        box.setWindowTitle("Go to step")
        box.setLabelText(f"Step ({int(steps[0])} to {int(steps[-1])}):")
        box.setInputMode(QtWidgets.QInputDialog.InputMode.IntInput)
        box.setIntRange(int(steps[0]), int(steps[-1]))
        box.setIntValue(self.session.cursor_step() or int(steps[-1]))
        box.intValueSelected.connect(self.session.go_to)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.step_box = box

    def copy_view(self) -> None:
        """Ctrl+Shift+C: the current view as a picture on the clipboard (as its PNG export)."""
        QtWidgets.QApplication.clipboard().setImage(render.view_image(self.current_view()))
        self.banner.show_for(Reason.DONE, "Copied the view to the clipboard", DONE_MS)

    def show_cheatsheet(self) -> None:
        self.cheatsheet = text_dialog(self, "bnviz shortcuts", cheatsheet_text(shortcuts(self)))

    def show_run_info(self) -> None:
        """``bnviz info`` for the open run (from the findings analysis), as plain text."""
        info = self.findings.info
        if self.session.primary is None:
            text = "No recording open."
        elif info is None:
            text = f"{self.session.primary.path}\n\nStill analysing the run; try again in a moment."
        else:
            text = format_text(info, show_all=True)
        self.info_box = text_dialog(self, "Run information", text)

    # --- files ---------------------------------------------------------------------------------
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
        # the status bar's permanent labels leave no room for a message: say it in the banner
        self.banner.show_for(Reason.DONE, f"Wrote {path}", DONE_MS)
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

    def select_layer(self, name: str) -> bool:
        """Select the layer called ``name`` (``bnviz view --layer``); a name the run does not have
        keeps the current layer and says so in the banner."""
        names = [li.path for li in self.session.layers()]
        if name in names:
            self.banner.clear(Reason.LAYER)
            self.session.state.update(layer=name)
            return True
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        self.banner.show_message(
            Reason.LAYER,
            f"{'These runs have' if self.session.comparing else 'This run has'} no layer named {name!r}; "
            f"showing {self.session.state.layer}. Its layers: {shown}.",
        )
        return False

    # --- drag and drop -------------------------------------------------------------------------
    def dragEnterEvent(self, ev: QtGui.QDragEnterEvent) -> None:
        if any(u.isLocalFile() for u in ev.mimeData().urls()):
            ev.acceptProposedAction()

    def dropEvent(self, ev: QtGui.QDropEvent) -> None:
        """Dropped files replace the open runs (several: compared); dropped on the run list,
        they are added to them."""
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            if self.runs.rect().contains(self.runs.mapFrom(self, ev.position().toPoint())):
                self.runs.add_paths(paths)
            else:
                self.open_files(*paths)
            ev.acceptProposedAction()

    # --- listening -----------------------------------------------------------------------------
    def _waiting(self, path: str) -> None:
        if path:
            self.setWindowTitle(f"bnviz — waiting for {os.path.basename(path)}")
        self._update_status()

    def current_view(self):
        return self.views[self.session.state.view]

    def _guard(self, fn, *args) -> None:
        """Run a redraw; a file that broke under us becomes a banner, not a crash."""
        try:
            fn(*args)
        except (RunFileError, OSError, KeyError, ValueError, IndexError) as e:
            self.banner.show_message(Reason.DRAW, f"Could not draw this view: {e}")
        else:
            self.banner.clear(Reason.DRAW)

    def _runs_changed(self) -> None:
        keep = () if self.session.primary else (Reason.WAITING,)  # still waiting for the file
        self.banner.clear(*(r for r in Reason if r not in keep))
        for v in self.views.values():
            v.needs_rebuild = True
        self._show_ranks()
        old = next((s.run.estimator_notice for s in self.session.slots if s.run.estimator_notice), None)
        if old:
            self.banner.show_message(Reason.OLD_SAMPLER, old)
        self._guard(self._show_current)
        slot = self.session.primary
        if slot is not None:
            more = len(self.session.slots) - 1
            self.setWindowTitle(f"bnviz — {os.path.basename(slot.path)}" + (f" + {more} more" if more else ""))
            if len(self.session.steps) == 0:
                self.banner.show_message(
                    Reason.WAITING,
                    f"{slot.path} has no recorded steps yet"
                    + (": waiting for the training run to write some." if self.session.live else "."),
                )
        elif self.files.waiter is None:
            self.setWindowTitle("bnviz")
        st = self.session.state
        self._trouble_from = (st.layer, st.view, st.follow_latest, st.step) if self.session.fresh else None
        self._check_writer()
        if self.session.watching:
            self.live_timer.start()
        else:
            self.live_timer.stop()
        self._update_status()

    def _open_at_trouble(self, findings) -> None:
        """The first findings of a freshly opened run: show the most severe one's layer and view
        (a live run keeps following; its step is not forced), unless the user moved on already."""
        start, self._trouble_from = self._trouble_from, None
        st = self.session.state
        # moved on: another layer or view, following stopped, or (not following) the cursor moved
        if start is None or (st.layer, st.view, st.follow_latest) != start[:3]:
            return
        if findings and (st.follow_latest or st.step == start[3]):
            show_finding(self.session, max(findings, key=lambda f: f.severity), with_step=not st.follow_latest)

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
        if problems:
            text = f"ranks: {len(ranks)} of {world}"
        elif multi:
            text = f"ranks: {world}"
        elif slot is not None and rank_zero_alone(slot.run):
            text = f"rank 0 of {world_size_of(slot.run)}"
        else:
            text = ""
        self.status["ranks"].setText(text)
        if problems:
            self.banner.show_message(
                Reason.RANKS,
                f"This distributed job ran {world} ranks; {len(problems)} "
                "cannot be shown. " + " ".join(f"Rank {r}: {why}." for r, why in sorted(problems.items())),
            )

    def _data_changed(self) -> None:
        for v in self.views.values():
            v.needs_rebuild = True
        self._guard(self._show_current)
        if len(self.session.steps):
            self.banner.clear(Reason.WAITING)
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
        """A mouse zoom in the current view: the shared range (linked zoom), and no more following."""
        if self.sender() is not self.current_view():
            return
        if self.session.state.link_zoom:
            self.session.zoom((int(x0), int(round(x1))))
        else:
            self.session.follow(False)

    def poll_live(self) -> None:
        """The live timer: new rows, and the health of the file and its writer."""
        try:
            self.session.refresh()
        except (RunFileError, OSError) as e:
            self.session.live = self.session.watching = False
            self.banner.show_message(
                Reason.UNREADABLE,
                "The recording can no longer be read (deleted or "
                f"truncated while open?): {e}. The views show what was read before; "
                "File > Reload tries again.",
            )
        self._check_writer()
        if not self.session.watching:
            self.live_timer.stop()
        self._update_status()

    def _check_writer(self) -> None:
        """Read the writer's state (on open and on the live timer, never on a cursor move)."""
        slot = self.session.primary
        if slot is None:
            self.writer_text = ""
            return
        try:
            writer, failed = slot.run.writer_state, slot.run.recording_failed
        except (RunFileError, OSError) as e:
            writer, failed = "unreadable", False
            self.session.live = self.session.watching = False
            self.banner.show_message(
                Reason.UNREADABLE, f"The recording can no longer be read (deleted or truncated while open?): {e}"
            )
        waiting = self.session.waiting
        self.writer_text = f"writer: {writer}" + (", waiting for it to finish a write" if waiting else "")
        if writer == "live":
            self.banner.clear(Reason.WRITER_GONE)  # a resumed run has a writer again
        if failed:
            self.banner.show_message(
                Reason.WRITE_FAILED,
                "Recording stopped on a write error (disk full?); the file holds every step written before it.",
            )
        elif writer == "writer gone":
            self.banner.show_message(
                Reason.WRITER_GONE,
                "The training process stopped without closing this "
                "file (killed or crashed?); the views show every step it finished writing.",
            )

    def _update_status(self) -> None:
        slot = self.session.primary
        s = self.status
        if slot is None:
            s["file"].setText(
                f"Waiting for {self.files.waiter.path}"
                if self.files.waiter is not None
                else "No recording open: File > Open (Ctrl+O) or drop a file here"
            )
            for k in ("step", "phase", "ranks", "writer"):
                s[k].setText("")
            return
        s["file"].setText("  ⟷  ".join(sl.path for sl in self.session.slots))
        step = self.session.cursor_step()
        steps = self.session.steps
        s["step"].setText(f"step {step} of {int(steps[-1])}" if step is not None else "no steps")
        phase = (
            PHASE_NAMES.get(int(self.session.phases[row_at_or_before(steps, step)]), "?") if step is not None else ""
        )
        s["phase"].setText(f"phase: {phase}" if phase else "")
        s["writer"].setText(self.writer_text)

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

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:
        self.timeline.stop()
        self.live_timer.stop()
        self.files.stop_waiting()
        self.findings.shutdown()
        self._save_settings()
        self.session.close()
        super().closeEvent(ev)
