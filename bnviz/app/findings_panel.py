"""The findings panel: ``bnviz.analysis.findings`` ranked; a click selects layer, step and view.

Findings read every layer, so they run in a separate process (``findings_job``): the window
stays responsive and the analysis's memory is not the viewer's.
"""

from __future__ import annotations

import sys

from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.app import style
from bnviz.app.findings_job import parse
from bnviz.app.session import Session

# Which view shows a finding best.
VIEW_FOR_KIND = {"nonfinite": "drift", "dead": "gamma_beta", "saturated": "gamma_beta",
                 "gamma_beta_zone": "gamma_beta", "gamma_collapse": "gamma_beta",
                 "train_eval": "train_eval", "small_batch": "drift", "drift": "distribution",
                 "ranks_disagree": "ranks"}
COLUMNS = ("", "Layer", "Finding")
START_DELAY_MS = 300
LIVE_EVERY_MS = 30_000
SEVERITY_COLOURS = ((0.75, style.OKABE_ITO["vermillion"]), (0.55, style.OKABE_ITO["orange"]),
                    (0.0, style.OKABE_ITO["sky"]))


class FindingsPanel(QtWidgets.QWidget):
    found = QtCore.Signal(object)   # list of Finding, for the layer tree's badges

    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.items: list = []
        self.label = QtWidgets.QLabel("Findings")
        self.label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setWordWrap(False)
        self.table.cellClicked.connect(self._clicked)
        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.label)
        box.addWidget(self.table)
        self._proc: QtCore.QProcess | None = None
        self.info: dict | None = None   # bnviz info's description of the run, once analysed
        self._started = QtCore.QElapsedTimer()
        # start after the first plot is painted: the analysis must not slow the first picture
        self._start_timer = QtCore.QTimer(self)
        self._start_timer.setSingleShot(True)
        self._start_timer.setInterval(START_DELAY_MS)
        self._start_timer.timeout.connect(self.start)
        session.runs_changed.connect(self._opened)
        session.data_changed.connect(self._grown)

    def _opened(self) -> None:
        self.info = None
        self._start_timer.start()

    def _grown(self) -> None:
        """A live run grew: analyse again, at most every LIVE_EVERY_MS."""
        idle = self._proc is None and not self._start_timer.isActive()
        if idle and (not self._started.isValid() or self._started.elapsed() > LIVE_EVERY_MS):
            self._start_timer.start()

    def start(self) -> None:
        slot = self.session.primary
        if slot is None:
            return
        self.shutdown(0)
        self._started.start()
        self.label.setText("Findings: analysing…")
        proc = QtCore.QProcess(self)
        proc.setProgram(sys.executable)
        proc.setArguments(["-m", "bnviz.app.findings_job", slot.path])
        proc.finished.connect(lambda code, _status, p=proc: self._finished(p, code))
        self._proc = proc
        proc.start()

    def wait(self, ms: int = 60000) -> bool:
        """Start a pending analysis now and block until it ended and is shown (tests, benchmarks)."""
        if self._start_timer.isActive():
            self._start_timer.stop()
            self.start()
        proc = self._proc
        if proc is None:
            return True
        if proc.state() != QtCore.QProcess.ProcessState.NotRunning and not proc.waitForFinished(ms):
            return False
        if self._proc is proc:   # finished() not delivered yet: show the result now
            self._finished(proc, proc.exitCode())
        return True

    def shutdown(self, ms: int = 3000) -> None:
        """Drop a pending or running analysis (window close, another file opened)."""
        self._start_timer.stop()
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.finished.disconnect()
            proc.kill()
            proc.waitForFinished(ms)
            proc.deleteLater()

    def _finished(self, proc: QtCore.QProcess, code: int) -> None:
        if proc is not self._proc:
            return
        self._proc = None
        out = bytes(proc.readAllStandardOutput()).decode("utf-8", "replace")
        err = bytes(proc.readAllStandardError()).decode("utf-8", "replace").strip()
        proc.deleteLater()
        if code != 0:
            self.show_findings([], f"Findings could not be computed: {err.splitlines()[-1] if err else code}")
            return
        try:
            self.info, found = parse(out)
        except (ValueError, TypeError, KeyError) as e:
            self.show_findings([], f"Findings could not be read: {e}")
            return
        self.show_findings(found)

    def show_findings(self, result, error: str = "") -> None:
        self.items = list(result)
        self.table.setRowCount(len(self.items))
        for r, f in enumerate(self.items):
            steps = "" if f.first_step is None else f"steps {f.first_step}–{f.last_step}"
            tip = style.tooltip(f"{f.kind} (severity {f.severity:.2f}) in {f.layer}"
                                + (f", {steps}" if steps else "") + f"\n{f.message}")
            colour = next(c for limit, c in SEVERITY_COLOURS if f.severity >= limit)
            for c, text in enumerate(("●", f.layer, f.message)):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(tip)
                if c == 0:
                    item.setForeground(QtGui.QBrush(QtGui.QColor(colour)))
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.label.setText(error or (f"Findings: {len(self.items)}, most severe first (click to show)"
                                     if self.items else "Findings: none — this run looks healthy"))
        self.found.emit(self.items)

    def _clicked(self, row: int, _col: int) -> None:
        f = self.items[row]
        changes = {"layer": f.layer, "view": VIEW_FOR_KIND.get(f.kind, "drift")}
        if f.channels:
            changes["channel"] = f.channels[0]
        steps = self.session.steps
        if f.kind == "drift" and len(steps):
            changes["reference_step"] = int(steps[0])
            changes["step"] = f.last_step
        elif f.first_step is not None:
            changes["step"] = f.first_step
        if f.kind in ("dead", "saturated") and self.session.state.view != "channels":
            changes["channel_metric"] = "sat_y"
        self.session.state.update(**changes)
