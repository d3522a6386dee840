"""The row above the views: the cursor readout and the options every view shares (which rows,
linked zoom, how a compared run is drawn). A listener of the ``ViewState`` like the rest."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from bnviz.app.session import Session

PHASE_TEXT = {"train": "training rows", "eval": "eval rows", "all": "all rows"}
COMPARE_TEXT = {"overlay": "overlay (B dashed)", "side": "side by side"}


class OptionsBar(QtWidgets.QWidget):
    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.readout = QtWidgets.QLabel()
        self.readout.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.readout.setToolTip("Values at the cursor step")
        # long readouts are cut, never widen the window
        self.readout.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.phase = self._combo(PHASE_TEXT, "phase", "Which recorded rows the time plots show (P)")
        self.compare = self._combo(COMPARE_TEXT, "compare_mode", "How the second run is drawn (C)")
        self.link = QtWidgets.QCheckBox("Linked zoom")
        self.link.setToolTip("Zooming one time plot zooms them all, in every view (Z)")
        self.link.toggled.connect(lambda on: self.session.state.update(link_zoom=on))
        self.labels: dict[QtWidgets.QWidget, QtWidgets.QLabel] = {}  # control -> its label
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(2, 0, 2, 0)
        row.addWidget(self.readout, 1)
        for label, w in (("Show", self.phase), ("Compare", self.compare), ("", self.link)):
            if label:
                lab = QtWidgets.QLabel(label)
                lab.setBuddy(w)
                row.addWidget(lab)
                self.labels[w] = lab
            row.addWidget(w)
        session.state.changed.connect(lambda names: self.sync())
        session.runs_changed.connect(self.sync)
        self.sync()

    def _combo(self, items: dict, field: str, tip: str) -> QtWidgets.QComboBox:
        box = QtWidgets.QComboBox()
        for value, text in items.items():
            box.addItem(text, value)
        box.setToolTip(tip)
        box.currentIndexChanged.connect(lambda _i: self.session.state.update(**{field: box.currentData()}))
        return box

    def sync(self) -> None:
        st = self.session.state
        for box, value in ((self.phase, st.phase), (self.compare, st.compare_mode)):
            with QtCore.QSignalBlocker(box):
                box.setCurrentIndex(max(0, box.findData(value)))
        with QtCore.QSignalBlocker(self.link):
            self.link.setChecked(st.link_zoom)
        comparing = self.session.compare is not None
        self.compare.setVisible(comparing)
        self.labels[self.compare].setVisible(comparing)
