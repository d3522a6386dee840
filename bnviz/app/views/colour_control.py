"""The colour-limit controls of a heatmap view: automatic or manual limits and a log scale, kept
in ``ViewState.colour_limits`` / ``colour_log`` under the heatmap's key (view and statistic), so
each statistic keeps its own limits in layouts and exports."""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.app.colour_scale import AUTO_PERCENTILES
from bnviz.app.session import Session
from bnviz.app.views.drawing import fmt

AUTO_TEXT = f"auto ({AUTO_PERCENTILES[0]:g}–{AUTO_PERCENTILES[1]:g}%)"


class ColourControl(QtWidgets.QToolButton):
    """A button on the view's bar naming the colour scale; its menu holds the controls (the bar
    must fit a 1024 px window beside the layer tree)."""

    def __init__(self, session: Session, key: Callable[[], str], shown: Callable[[], tuple[float, float] | None]):
        """``key()``: the heatmap's key in the state; ``shown()``: the limits the map shows now
        (what switching to manual starts from), or None."""
        super().__init__()
        self.session, self._key, self._shown = session, key, shown
        self.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setToolTip("The heatmap's colour limits and scale")
        panel = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(panel)
        row.setContentsMargins(6, 4, 6, 4)
        self.mode = QtWidgets.QComboBox()
        self.mode.addItem(AUTO_TEXT, "auto")
        self.mode.addItem("manual", "manual")
        self.mode.setToolTip("Colour limits: the 1st-99th percentiles of the data, or your own")
        self.lo, self.hi = QtWidgets.QLineEdit(), QtWidgets.QLineEdit()
        for edit, what in ((self.lo, "low"), (self.hi, "high")):
            edit.setValidator(QtGui.QDoubleValidator())
            edit.setFixedWidth(edit.fontMetrics().horizontalAdvance("-0.000e+00") + 10)
            edit.setToolTip(f"The value at the {what} end of the colour bar (Enter applies)")
            edit.editingFinished.connect(self._edited)
        self.log = QtWidgets.QCheckBox("log scale")
        self.log.setToolTip("Logarithmic colour scale (for positive statistics; values ≤ 0 take the lowest colour)")
        self.dash = QtWidgets.QLabel("–")
        for w in (QtWidgets.QLabel("Limits"), self.mode, self.lo, self.dash, self.hi, self.log):
            row.addWidget(w)
        menu = QtWidgets.QMenu(self)
        action = QtWidgets.QWidgetAction(menu)
        action.setDefaultWidget(panel)
        menu.addAction(action)
        self.setMenu(menu)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.log.toggled.connect(self._log_toggled)

    def sync(self, log_possible: bool) -> None:
        st = self.session.state
        manual = st.colour_limits.get(self._key())
        with QtCore.QSignalBlocker(self.mode):
            self.mode.setCurrentIndex(1 if manual else 0)
        for edit, v in zip((self.lo, self.hi), manual or (None, None)):
            edit.setText("" if v is None else fmt(v))
        for w in (self.lo, self.dash, self.hi):
            w.setVisible(manual is not None)
        with QtCore.QSignalBlocker(self.log):
            self.log.setChecked(self._key() in st.colour_log and log_possible)
        self.log.setEnabled(log_possible)
        limits = f"{fmt(manual[0])}–{fmt(manual[1])}" if manual else "auto"
        self.setText(f"Colours: {limits}{' log' if self.log.isChecked() else ''}")
        self.setMinimumWidth(self.fontMetrics().horizontalAdvance(self.text()) + 28)  # the text and the menu arrow

    def _set_limits(self, limits: tuple[float, float] | None) -> None:
        table = dict(self.session.state.colour_limits)
        if limits is None:
            table.pop(self._key(), None)
        else:
            table[self._key()] = limits
        self.session.state.update(colour_limits=table)

    def _mode_changed(self, _i: int) -> None:
        if self.mode.currentData() == "auto":
            self._set_limits(None)
        else:
            self._set_limits(self._shown() or (0.0, 1.0))

    def _edited(self) -> None:
        try:
            lo, hi = float(self.lo.text()), float(self.hi.text())
        except ValueError:
            return
        if lo < hi:
            self._set_limits((lo, hi))
        else:  # the fields show what is applied, not a range that cannot be
            self.sync(self.log.isEnabled())

    def _log_toggled(self, on: bool) -> None:
        keys = set(self.session.state.colour_log) - {self._key()}
        self.session.state.update(colour_log=tuple(sorted(keys | ({self._key()} if on else set()))))
