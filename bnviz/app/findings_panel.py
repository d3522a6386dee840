"""The findings panel: ``bnviz.analysis.findings`` ranked; a click selects layer, step and view.

Findings read every layer, so they run in a separate process (``findings_job``), one per open
run (A and B in compare mode): the window stays responsive and the analysis's memory is not the
viewer's. Both runs' findings share the table, most severe first, each row tagged with its run.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.app import findings_job, style
from bnviz.app.findings_job import parse
from bnviz.app.session import Session
from bnviz.app.trouble import show_finding

COLUMNS = ("", "Run", "Layer", "Finding")
START_DELAY_MS = 300
LIVE_EVERY_MS = 30_000


class FindingsPanel(QtWidgets.QWidget):
    found = QtCore.Signal(object)  # list of Finding, for the layer tree's badges

    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.items: list = []
        self.item_runs: list[str] = []  # each item's run label ("A", "B"; "" with one run open)
        self.label = QtWidgets.QLabel("Findings")
        self.label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        # the message column takes the width left and wraps: full messages, no sideways scrolling
        header = self.table.horizontalHeader()
        for c in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(c, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setWordWrap(True)
        self.table.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setVerticalScrollMode(QtWidgets.QAbstractItemView.ScrollMode.ScrollPerPixel)
        header.sectionResized.connect(lambda *_a: self.table.resizeRowsToContents())
        self.table.cellClicked.connect(self._clicked)
        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.label)
        box.addWidget(self.table)
        self._procs: dict[str, QtCore.QProcess] = {}  # run label -> its running analysis
        self._results: dict[str, list | str] = {}  # run label -> findings, or why there are none
        self.info: dict | None = None  # bnviz info's description of the run, once analysed
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
        idle = not self._procs and not self._start_timer.isActive()
        if idle and (not self._started.isValid() or self._started.elapsed() > LIVE_EVERY_MS):
            self._start_timer.start()

    def start(self) -> None:
        slots = [s for s in (self.session.primary, self.session.compare) if s is not None]
        if not slots:
            return
        self.shutdown(0)
        self._started.start()
        self._results = {}
        self.label.setText("Findings: analysing…")
        for slot in slots:
            proc = QtCore.QProcess(self)
            program, *arguments = findings_job.command(slot.path)
            proc.setProgram(program)
            proc.setArguments(arguments)
            proc.finished.connect(lambda code, _status, p=proc, k=slot.label: self._finished(k, p, code))
            self._procs[slot.label] = proc
        for proc in list(self._procs.values()):
            proc.start()

    def wait(self, ms: int = 60000) -> bool:
        """Start a pending analysis now and block until it ended and is shown (tests, benchmarks)."""
        if self._start_timer.isActive():
            self._start_timer.stop()
            self.start()
        for key, proc in list(self._procs.items()):
            if proc.state() != QtCore.QProcess.ProcessState.NotRunning and not proc.waitForFinished(ms):
                return False
            if self._procs.get(key) is proc:  # finished() not delivered yet: take the result now
                self._finished(key, proc, proc.exitCode())
        return True

    def shutdown(self, ms: int = 3000) -> None:
        """Drop pending or running analyses (window close, another file opened)."""
        self._start_timer.stop()
        procs, self._procs = list(self._procs.values()), {}
        for proc in procs:
            proc.finished.disconnect()
            proc.kill()
            proc.waitForFinished(ms)
            proc.deleteLater()

    def _finished(self, key: str, proc: QtCore.QProcess, code: int) -> None:
        if self._procs.get(key) is not proc:
            return
        del self._procs[key]
        out = bytes(proc.readAllStandardOutput().data()).decode("utf-8", "replace")
        err = bytes(proc.readAllStandardError().data()).decode("utf-8", "replace").strip()
        proc.deleteLater()
        if code != 0:
            self._results[key] = f"could not be computed: {err.splitlines()[-1] if err else code}"
        else:
            try:
                info, self._results[key] = parse(out)
                if key in ("", "A"):
                    self.info = info
            except (ValueError, TypeError, KeyError) as e:
                self._results[key] = f"could not be read: {e}"
        if not self._procs:
            self._show_results()

    def _show_results(self) -> None:
        """Every run's findings in one table; the header counts them per run."""
        keys = sorted(self._results)
        rows = [(f, k) for k in keys if isinstance(v := self._results[k], list) for f in v]
        rows.sort(key=lambda fk: -fk[0].severity)  # stable: equal severities keep A before B
        errors = [f"{k + ' ' if k else ''}{v}" for k, v in self._results.items() if isinstance(v, str)]
        header = ""
        if keys != [""]:  # compare mode: "Findings: A none, B 2"
            header = "Findings: " + ", ".join(
                f"{k} {len(v) if v else 'none'}" if isinstance(v, list) else f"{k} failed"
                for k, v in ((k, self._results[k]) for k in keys)
            )
            if rows:
                header += " — most severe first (click to show)"
        if errors:
            header = (header + "; " if header else "Findings ") + "; ".join(errors)
        self.show_findings([f for f, _ in rows], header, [k for _, k in rows])

    def show_findings(self, result, error: str = "", runs: list[str] | None = None) -> None:
        self.items = list(result)
        self.item_runs = list(runs) if runs is not None else [""] * len(self.items)
        self.table.setColumnHidden(1, not any(self.item_runs))
        self.table.setRowCount(len(self.items))
        for r, (f, run) in enumerate(zip(self.items, self.item_runs)):
            steps = "" if f.first_step is None else f"steps {f.first_step}–{f.last_step}"
            tip = style.tooltip(
                f"{f.kind} (severity {f.severity:.2f}) in {f.layer}"
                + (f", {steps}" if steps else "")
                + f"\n{f.message}"
            )
            colour = style.severity_colour(f.severity)
            if run:
                tip = style.tooltip(
                    f"Run {run}: {f.kind} (severity {f.severity:.2f}) in {f.layer}"
                    + (f", {steps}" if steps else "")
                    + f"\n{f.message}"
                )
            for c, text in enumerate(("●", run, f.layer, f.message)):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(tip)
                if c == 0:
                    item.setForeground(QtGui.QBrush(QtGui.QColor(colour)))
                self.table.setItem(r, c, item)
        self.table.resizeRowsToContents()
        self.label.setText(
            error
            or (
                f"Findings: {len(self.items)}, most severe first (click to show)"
                if self.items
                else "Findings: none — this run looks healthy"
            )
        )
        # the layer tree shows the primary run: only its findings badge it
        self.found.emit([f for f, run in zip(self.items, self.item_runs) if run in ("", "A")])

    def _clicked(self, row: int, _col: int) -> None:
        show_finding(self.session, self.items[row])

    def step(self, direction: int) -> None:
        """N / Shift+N: show the next (1) or previous (-1) finding of the table."""
        if not self.items:
            return
        row = self.table.currentRow()
        row = (row + direction) % len(self.items) if row >= 0 else (0 if direction > 0 else len(self.items) - 1)
        self.table.selectRow(row)
        self._clicked(row, 0)
