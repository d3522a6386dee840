"""The findings panel: ``bnviz.analysis.findings`` ranked; a click selects layer, step and view.

Findings read every layer, so they run on a worker thread with their own handle on the file
and the window stays responsive.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.analysis.findings import findings as compute_findings
from bnviz.app import style
from bnviz.app.session import Session
from bnviz.store import open_run

# Which view shows a finding best.
VIEW_FOR_KIND = {"nonfinite": "drift", "dead": "gamma_beta", "saturated": "gamma_beta",
                 "gamma_beta_zone": "gamma_beta", "gamma_collapse": "gamma_beta",
                 "train_eval": "train_eval", "small_batch": "drift", "drift": "distribution"}
COLUMNS = ("", "Layer", "Finding")
SEVERITY_COLOURS = ((0.75, style.OKABE_ITO["vermillion"]), (0.55, style.OKABE_ITO["orange"]),
                    (0.0, style.OKABE_ITO["sky"]))


class FindingsWorker(QtCore.QObject):
    done = QtCore.Signal(object, str)   # (list of Finding, error text)

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def run(self) -> None:
        try:
            run = open_run(self.path)
            try:
                result = compute_findings(run)
            finally:
                run.close()
            self.done.emit(result, "")
        except Exception as e:  # shown in the panel: a broken analysis must not take the viewer down
            self.done.emit([], f"Findings could not be computed: {e}")


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
        self._thread: QtCore.QThread | None = None
        self._worker: FindingsWorker | None = None
        session.runs_changed.connect(self.start)

    def start(self) -> None:
        slot = self.session.primary
        if slot is None or self._thread is not None:
            return
        self.label.setText("Findings: analysing…")
        self._thread = QtCore.QThread(self)
        self._worker = FindingsWorker(slot.path)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        # quit from the worker's thread itself, so wait() returns without the event loop
        self._worker.done.connect(self._thread.quit, QtCore.Qt.ConnectionType.DirectConnection)
        self._worker.done.connect(self._finished)
        self._thread.start()

    def wait(self, ms: int = 30000) -> bool:
        """Block until the analysis ended (tests and shutdown)."""
        if self._thread is None:
            return True
        return self._thread.wait(ms)

    def _finished(self, result, error: str) -> None:
        self._thread.quit()
        self._thread.wait()
        self._thread.deleteLater()
        self._worker.deleteLater()
        self._thread = self._worker = None
        self.show_findings(result, error)

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
