"""The run list: every open run with its colour, a visibility tick and the reference mark, and
the commands that add and remove runs. A thin view of the ``Session`` (which holds the runs, and
whose ``ViewState`` holds visibility and the reference)."""

from __future__ import annotations

import os

from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.app import style
from bnviz.app.session import Session
from bnviz.store import RunFileError

FILE_FILTER = "bnviz recordings (*.h5 *.hdf5 *.bnviz);;All files (*)"
REFERENCE_MARK = "★"


def swatch_icon(index: int, size: int = 14) -> QtGui.QIcon:
    """The run's line as the plots draw it (colour, and the dots of runs after the 8th)."""
    pix = QtGui.QPixmap(size * 2, size)
    pix.fill(QtCore.Qt.GlobalColor.transparent)
    painter = QtGui.QPainter(pix)
    painter.setPen(style.pen(style.run_colour(index), 3, 0, style.run_cycle(index)))
    painter.drawLine(1, size // 2, size * 2 - 1, size // 2)
    painter.end()
    return QtGui.QIcon(pix)


class RunList(QtWidgets.QWidget):
    """Tick a run to show it, double-click (or "Reference") to make it the reference the timeline,
    layer tree and findings follow; Add… and Remove open and close runs."""

    failed = QtCore.Signal(str, str)  # (title, message): the window shows it
    added = QtCore.Signal(str)  # a path opened (the window's recent files)

    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Run", "File"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setToolTip(
            "The open runs in their plot colours. Tick to show a run; double-click to make it the "
            f"reference ({REFERENCE_MARK}) that the timeline, layer tree and findings follow."
        )
        self.tree.itemChanged.connect(self._ticked)
        self.tree.itemDoubleClicked.connect(lambda item, _c: self.session.set_reference(self._place(item)))
        self.tree.currentItemChanged.connect(lambda *_a: self._enable())
        buttons = QtWidgets.QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        self.add_button = self._button(buttons, "Add…", "Open another run beside these (Ctrl+Shift+O)", self.add_dialog)
        self.remove_button = self._button(buttons, "Remove", "Close the selected run", self.remove_current)
        self.reference_button = self._button(
            buttons, "Reference", "Make the selected run the reference (or double-click it)", self._make_reference
        )
        buttons.addStretch(1)
        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addWidget(self.tree, 1)
        box.addLayout(buttons)
        session.runs_changed.connect(self.populate)
        session.state.changed.connect(self._state_changed)
        self.populate()

    @staticmethod
    def _button(row: QtWidgets.QHBoxLayout, text: str, tip: str, fn) -> QtWidgets.QToolButton:
        b = QtWidgets.QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.clicked.connect(lambda _=False: fn())
        row.addWidget(b)
        return b

    def _state_changed(self, names: set[str]) -> None:
        if names & {"hidden_runs", "reference_run"}:
            self.populate()

    def populate(self) -> None:
        """Show the runs. Rows are updated in place, never cleared: a tick or a double-click
        changes the state while the tree is still delivering that item's signal."""
        s = self.session
        with QtCore.QSignalBlocker(self.tree):
            while self.tree.topLevelItemCount() > len(s.slots):
                self.tree.takeTopLevelItem(self.tree.topLevelItemCount() - 1)
            while self.tree.topLevelItemCount() < len(s.slots):
                item = QtWidgets.QTreeWidgetItem()
                item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
                self.tree.addTopLevelItem(item)
            ref = s.primary
            for i, slot in enumerate(s.slots):
                row = self.tree.topLevelItem(i)
                assert row is not None  # made above
                self._show(row, i, slot, slot is ref)
        self.tree.resizeColumnToContents(0)
        rows = max(1, len(s.slots))
        self.tree.setFixedHeight(self.tree.header().height() + rows * self.tree.sizeHintForRow(0) + 6)
        self._enable()

    def _show(self, item: QtWidgets.QTreeWidgetItem, place: int, slot, is_ref: bool) -> None:
        shown = place not in self.session.state.hidden_runs
        item.setText(0, f"{slot.label or 'A'}{' ' + REFERENCE_MARK if is_ref else ''}")
        item.setText(1, os.path.basename(slot.path))
        item.setIcon(0, swatch_icon(slot.index))
        item.setCheckState(0, QtCore.Qt.CheckState.Checked if shown else QtCore.Qt.CheckState.Unchecked)
        item.setData(0, QtCore.Qt.ItemDataRole.UserRole, place)
        role = "the reference run" if is_ref else "double-click: make it the reference"
        item.setToolTip(1, style.tooltip(f"{slot.path}\n{role}; {'shown' if shown else 'hidden'}"))
        for c in (0, 1):
            font = item.font(c)
            font.setBold(is_ref)
            item.setFont(c, font)

    def _enable(self) -> None:
        picked = self.tree.currentItem() is not None
        self.remove_button.setEnabled(picked)
        self.reference_button.setEnabled(picked and len(self.session.slots) > 1)

    @staticmethod
    def _place(item: QtWidgets.QTreeWidgetItem) -> int:
        return int(item.data(0, QtCore.Qt.ItemDataRole.UserRole))

    def _ticked(self, item: QtWidgets.QTreeWidgetItem, column: int) -> None:
        if column == 0:
            self.session.set_visible(self._place(item), item.checkState(0) == QtCore.Qt.CheckState.Checked)

    def _make_reference(self) -> None:
        item = self.tree.currentItem()
        if item is not None:
            self.session.set_reference(self._place(item))

    def remove_current(self) -> None:
        item = self.tree.currentItem()
        if item is not None:
            self.session.remove(self._place(item))

    # --- adding runs ----------------------------------------------------------------------------
    def add_dialog(self) -> None:
        paths, _ = QtWidgets.QFileDialog.getOpenFileNames(self, "Add runs to compare", "", FILE_FILTER)
        self.add_paths(paths)

    def add_paths(self, paths: list[str]) -> bool:
        """Open each path beside the open runs (layers matched by name); a bad file says why and
        the others still open. True when all opened."""
        ok = True
        for p in paths:
            try:
                self.session.add(p)
            except (RunFileError, OSError, ValueError) as e:
                self.failed.emit("Cannot add the recording", str(e))
                ok = False
            else:
                self.added.emit(os.path.abspath(p))
        return ok
