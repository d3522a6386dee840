"""The findings panel: ``bnviz.analysis.findings`` ranked; a click selects layer, step and view.

Findings read every layer, so they run in a separate process (``findings_job``), one per open
run, started when the run opens (adding a run analyses only that one): the window stays
responsive and the analysis's memory is not the viewer's. The results live in the ``Session``
(``Session.findings``); the table lists the visible runs' findings together, most severe first,
each row tagged with its run's letter and colour swatch.
"""

from __future__ import annotations

import os

from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.app import findings_job, style
from bnviz.app.findings_job import parse
from bnviz.app.run_list import swatch_icon
from bnviz.app.session import Session, Slot
from bnviz.app.trouble import show_finding

COLUMNS = ("", "Run", "Layer", "Finding")
START_DELAY_MS = 300
MAX_JOBS = 2  # analyses running at once
LIVE_EVERY_MS = 30_000


class FindingsPanel(QtWidgets.QWidget):
    found = QtCore.Signal(object)  # the visible runs' findings (list of Finding), once all are in

    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.items: list = []
        self.item_runs: list[str] = []  # each item's run letter ("" with one run open)
        self.label = QtWidgets.QLabel("Findings")
        self.label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.label.setWordWrap(True)
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
        self._procs: dict[int, tuple[Slot, QtCore.QProcess]] = {}  # Slot.index -> its running analysis
        self._started = QtCore.QElapsedTimer()
        # start after the first plot is painted: the analysis must not slow the first picture
        self._start_timer = QtCore.QTimer(self)
        self._start_timer.setSingleShot(True)
        self._start_timer.setInterval(START_DELAY_MS)
        self._start_timer.timeout.connect(self.start)
        session.runs_changed.connect(self._opened)
        session.data_changed.connect(self._grown)
        session.findings_changed.connect(self._show_results)
        session.state.changed.connect(self._state_changed)

    @property
    def info(self) -> dict | None:
        """``bnviz info``'s description of the reference run, once analysed."""
        slot = self.session.primary
        return self.session.infos.get(slot.index) if slot is not None else None

    def _state_changed(self, names: set[str]) -> None:
        if "hidden_runs" in names:
            self._show_results()

    def _opened(self) -> None:
        # runs removed: their findings went with them; runs added: analyse those
        self._show_results()
        self._start_timer.start()

    def _grown(self) -> None:
        """A live run grew: analyse every run again, at most every LIVE_EVERY_MS."""
        idle = not self._procs and not self._start_timer.isActive()
        if idle and (not self._started.isValid() or self._started.elapsed() > LIVE_EVERY_MS):
            self.session.findings.clear()
            self._start_timer.start()

    def start(self) -> None:
        """Analyse the open runs that have no findings yet and none running, MAX_JOBS at a time
        (each job holds hundreds of MB on a large run); each one that ends starts the next."""
        # a removed or reopened run's job analyses what is no longer open
        self.shutdown(0, [k for k, (s, _) in self._procs.items() if s not in self.session.slots])
        todo = [s for s in self.session.slots if s.index not in self.session.findings and s.index not in self._procs]
        todo = todo[: max(0, MAX_JOBS - len(self._procs))]
        if not todo:
            return
        self._started.start()
        for slot in todo:
            proc = QtCore.QProcess(self)
            program, *arguments = findings_job.command(slot.path)
            proc.setProgram(program)
            proc.setArguments(arguments)
            proc.finished.connect(lambda code, _status, p=proc, s=slot: self._finished(s, p, code))
            self._procs[slot.index] = (slot, proc)
        self._show_results()
        for slot in todo:
            self._procs[slot.index][1].start()

    def wait(self, ms: int = 60000) -> bool:
        """Start a pending analysis now and block until it ended and is shown (tests, benchmarks)."""
        if self._start_timer.isActive():
            self._start_timer.stop()
            self.start()
        while self._procs:  # each one that ends may start the next run's
            slot, proc = next(iter(self._procs.values()))
            if proc.state() != QtCore.QProcess.ProcessState.NotRunning and not proc.waitForFinished(ms):
                return False
            if self._procs.get(slot.index, (None, None))[1] is proc:  # finished() not delivered yet
                self._finished(slot, proc, proc.exitCode())
        return True

    def shutdown(self, ms: int = 3000, runs: list[int] | None = None) -> None:
        """Drop pending or running analyses (window close, another file opened); ``runs``
        (``Slot.index``): only those runs'."""
        if runs is None:
            self._start_timer.stop()
        for key in [k for k in self._procs if runs is None or k in runs]:
            _, proc = self._procs.pop(key)
            proc.finished.disconnect()
            proc.kill()
            proc.waitForFinished(ms)
            proc.deleteLater()

    def _finished(self, slot: Slot, proc: QtCore.QProcess, code: int) -> None:
        if self._procs.get(slot.index, (None, None))[1] is not proc:
            return
        del self._procs[slot.index]
        out = bytes(proc.readAllStandardOutput().data()).decode("utf-8", "replace")
        err = bytes(proc.readAllStandardError().data()).decode("utf-8", "replace").strip()
        proc.deleteLater()
        if code != 0:
            self.session.set_findings(slot, f"could not be computed: {err.splitlines()[-1] if err else code}")
        else:
            try:
                info, found = parse(out)
            except (ValueError, TypeError, KeyError) as e:
                self.session.set_findings(slot, f"could not be read: {e}")
            else:
                self.session.set_findings(slot, found, info)
        self.start()  # the next run waiting for its analysis

    def _show_results(self) -> None:
        """The visible runs' findings in one table; with several runs the header counts them per run."""
        slots = self.session.visible_slots()
        results = self.session.findings
        rows = self.session.visible_findings()
        pending = [s for s in slots if s.index not in results]
        errors = [f"{s.label + ' ' if s.label else ''}{v}" for s in slots if isinstance(v := results.get(s.index), str)]
        header = ""
        if self.session.comparing:  # "Findings: A none, B 2, C analysing…"
            header = "Findings: " + ", ".join(_count(s.label, results.get(s.index)) for s in slots)
            if len(slots) < len(self.session.slots):
                header += f" ({len(self.session.slots) - len(slots)} hidden run(s) left out)"
            if rows:
                header += " — most severe first (click to show)"
        elif pending:
            header = "Findings: analysing…"
        if errors:
            header = (header + "; " if header else "Findings ") + "; ".join(errors)
        self.show_findings([f for _, f in rows], header, [s.label for s, _ in rows])
        if not pending:
            self.found.emit(self.items)

    def show_findings(self, result, header: str = "", runs: list[str] | None = None) -> None:
        self.items = list(result)
        self.item_runs = list(runs) if runs is not None else [""] * len(self.items)
        by_label = {s.label: s for s in self.session.slots}
        self.table.setColumnHidden(1, not any(self.item_runs))
        self.table.setRowCount(len(self.items))
        for r, (f, run) in enumerate(zip(self.items, self.item_runs)):
            steps = "" if f.first_step is None else f"steps {f.first_step}–{f.last_step}"
            slot = by_label.get(run)
            where = f"Run {run} ({os.path.basename(slot.path)}): " if run and slot else ""
            tip = style.tooltip(
                f"{where}{f.kind} (severity {f.severity:.2f}) in {f.layer}"
                + (f", {steps}" if steps else "")
                + f"\n{f.message}"
            )
            for c, text in enumerate(("●", run, f.layer, f.message)):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(tip)
                if c == 0:
                    item.setForeground(QtGui.QBrush(QtGui.QColor(style.severity_colour(f.severity))))
                if c == 1 and slot is not None:  # the run's line as in the plots (yellow text is unreadable)
                    item.setIcon(swatch_icon(slot.index))
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(r, c, item)
        self.table.resizeRowsToContents()
        self.label.setText(
            header
            or (
                f"Findings: {len(self.items)}, most severe first (click to show)"
                if self.items
                else "Findings: none — this run looks healthy"
            )
        )

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


def _count(label: str, result) -> str:
    """One run's part of the header: "B 2", "A none", "C analysing…", "D failed"."""
    if result is None:
        return f"{label} analysing…"
    if isinstance(result, str):
        return f"{label} failed"
    return f"{label} {len(result) if result else 'none'}"
