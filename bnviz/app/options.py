"""The options every view shares (which rows, linked zoom, how a compared run is drawn), beside
the view tabs, and the cursor readout above them. A listener of the ``ViewState`` like the rest."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from bnviz.app.session import Session

PHASE_TEXT = {"train": "training rows", "eval": "eval rows", "all": "all rows"}
COMPARE_TEXT = {"overlay": "overlay (a colour per run)", "side": "side by side"}


class OptionsBar(QtWidgets.QWidget):
    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.readout = QtWidgets.QLabel()
        self.readout.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.readout.setToolTip("Values at the cursor step")
        # long readouts wrap onto a second line, never widen the window nor get cut
        self.readout.setWordWrap(True)
        self.readout.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed)
        # two lines always: a cursor move changing the text's length must not move the plots
        self.readout.setFixedHeight(2 * self.readout.fontMetrics().lineSpacing() + 2)
        self.phase = self._combo(PHASE_TEXT, "phase", "Which recorded rows the time plots show (P)")
        self.compare = self._combo(
            COMPARE_TEXT,
            "compare_mode",
            "How the visible runs are drawn: overlaid in their colours or side by side (C)",
        )
        self.smooth = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.smooth.setRange(0, 99)
        self.smooth.setFixedWidth(90)
        self.smooth.setToolTip(
            "Smoothing of the time curves: TensorBoard's exponential moving average "
            "(its weight); the raw curve stays, faint. 0: off"
        )
        self.smooth.valueChanged.connect(lambda v: self.session.state.update(smoothing=v / 100))
        self.smooth_value = QtWidgets.QLabel()
        self.smooth_value.setMinimumWidth(self.smooth_value.fontMetrics().horizontalAdvance("0.00") + 4)
        self.link = QtWidgets.QCheckBox("Linked zoom")
        self.link.setToolTip("Zooming one time plot zooms them all, in every view (Z)")
        self.link.toggled.connect(lambda on: self.session.state.update(link_zoom=on))
        self.labels: dict[QtWidgets.QWidget, QtWidgets.QLabel] = {}  # control -> its label
        # the window puts these controls beside the view tabs and the readout, two lines of the
        # whole width, above them: never cut
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(2, 0, 2, 0)
        for label, w in (
            ("Smooth", self.smooth),
            ("", self.smooth_value),
            ("Show", self.phase),
            ("Compare", self.compare),
            ("", self.link),
        ):
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
        with QtCore.QSignalBlocker(self.smooth):
            self.smooth.setValue(round(st.smoothing * 100))
        self.smooth_value.setText(f"{st.smoothing:.2f}" if st.smoothing else "off")
        comparing = len(self.session.visible_slots()) > 1
        self.compare.setVisible(comparing)
        self.labels[self.compare].setVisible(comparing)
