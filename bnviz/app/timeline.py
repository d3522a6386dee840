"""The step timeline: slider, play/pause, speed, loop, step buttons, follow latest, reference pin.

A listener of ``ViewState.step``; playing is a timer that advances the state, nothing more.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from bnviz.app.session import Session
from bnviz.app.state import SPEEDS
from bnviz.app.stepping import advance, row_at_or_before

TICK_MS = 40  # 25 frames per second


def big_jump(n_rows: int) -> int:
    """Rows per Shift+arrow: 5% of the run, at least 10."""
    return max(10, n_rows // 20)


class Timeline(QtWidgets.QWidget):
    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

        icons = QtWidgets.QStyle.StandardPixmap

        def button(icon, tip, fn):
            b = QtWidgets.QToolButton()
            b.setIcon(self.style().standardIcon(icon))
            b.setToolTip(tip)
            b.setAutoRaise(True)
            b.clicked.connect(fn)
            row.addWidget(b)
            return b

        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(4, 0, 4, 2)
        outer.setSpacing(0)
        row = QtWidgets.QHBoxLayout()
        button(icons.SP_MediaSkipBackward, "First step (Home)", lambda: self.go_row(0))
        button(
            icons.SP_MediaSeekBackward,
            "Jump back 5% (Shift+Left)",
            lambda: self.step_rows(-big_jump(len(self.session.steps))),
        )
        button(icons.SP_ArrowLeft, "Previous recorded step (Left)", lambda: self.step_rows(-1))
        self.play_button = button(icons.SP_MediaPlay, "Play / pause (Space)", self.toggle_play)
        button(icons.SP_ArrowRight, "Next recorded step (Right)", lambda: self.step_rows(1))
        button(
            icons.SP_MediaSeekForward,
            "Jump forward 5% (Shift+Right)",
            lambda: self.step_rows(big_jump(len(self.session.steps))),
        )
        button(icons.SP_MediaSkipForward, "Last step (End)", lambda: self.go_row(-1))
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setToolTip("Step cursor: the step every view shows")
        self.slider.valueChanged.connect(self._slider_moved)
        outer.addWidget(self.slider)
        outer.addLayout(row)
        self.step_label = QtWidgets.QLabel("step –")
        self.step_label.setMinimumWidth(110)
        self.step_label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        row.addWidget(self.step_label)
        row.addWidget(QtWidgets.QLabel("Speed"))
        self.speed = QtWidgets.QComboBox()
        for s in SPEEDS:
            self.speed.addItem(f"{s} rows/frame", s)
        self.speed.setToolTip("Recorded rows per frame while playing (25 frames/s)")
        self.speed.currentIndexChanged.connect(lambda _i: self.session.state.update(speed=self.speed.currentData()))
        row.addWidget(self.speed)
        self.loop = QtWidgets.QCheckBox("Loop")
        self.loop.setToolTip("Start over at the end while playing")
        self.loop.toggled.connect(lambda on: self.session.state.update(loop=on))
        row.addWidget(self.loop)
        self.follow = QtWidgets.QCheckBox("Follow latest")
        self.follow.setToolTip("Keep the cursor on the newest step of a live recording (F)")
        self.follow.toggled.connect(lambda on: self.session.state.update(follow_latest=on))
        row.addWidget(self.follow)
        self.pin = QtWidgets.QToolButton()
        self.pin.setText("Pin reference")
        self.pin.setToolTip(
            "Pin the cursor step as the reference the distribution view overlays (R); Shift+R clears it"
        )
        self.pin.clicked.connect(self.pin_reference)
        row.addWidget(self.pin)
        row.addStretch(1)
        session.state.changed.connect(self._state_changed)
        session.runs_changed.connect(self.sync)
        session.data_changed.connect(self.sync)
        self.sync()

    # --- actions (also bound to keys by the main window) ---------------------------------------
    def toggle_play(self) -> None:
        if self.timer.isActive():
            self.stop()
        elif len(self.session.steps):
            self.session.state.update(follow_latest=False)
            self.timer.start()
            self.play_button.setIcon(self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MediaPause))

    def stop(self) -> None:
        self.timer.stop()
        self.play_button.setIcon(self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MediaPlay))

    def step_rows(self, n: int) -> None:
        step, _ = advance(self.session.steps, self.session.cursor_step(), n, loop=False)
        if step is not None:
            self.session.state.update(step=step, follow_latest=False)

    def go_row(self, i: int) -> None:
        steps = self.session.steps
        if len(steps):
            self.session.state.update(step=int(steps[i]), follow_latest=i == -1 and self.session.state.follow_latest)

    def pin_reference(self) -> None:
        self.session.state.update(reference_step=self.session.cursor_step())

    def _tick(self) -> None:
        step, playing = advance(
            self.session.steps, self.session.cursor_step(), self.session.state.speed, self.session.state.loop
        )
        if step is not None:
            self.session.state.update(step=step)
        if not playing:
            self.stop()

    # --- listening ----------------------------------------------------------------------------
    def _slider_moved(self, i: int) -> None:
        steps = self.session.steps
        if 0 <= i < len(steps):
            self.session.state.update(step=int(steps[i]))

    def _state_changed(self, names) -> None:
        if names & {"step", "speed", "loop", "follow_latest", "reference_step"}:
            self.sync()

    def sync(self) -> None:
        steps = self.session.steps
        state = self.session.state
        step = self.session.cursor_step()
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, len(steps) - 1))
        self.slider.setPageStep(big_jump(len(steps)))
        if step is not None:
            self.slider.setValue(row_at_or_before(steps, step) or 0)
        self.slider.blockSignals(False)
        self.step_label.setText(
            f"step {step if step is not None else '–'}" + (f" / {int(steps[-1])}" if len(steps) else "")
        )
        with QtCore.QSignalBlocker(self.speed):
            self.speed.setCurrentIndex(max(0, self.speed.findData(state.speed)))
        for box, on in ((self.loop, state.loop), (self.follow, state.follow_latest)):
            with QtCore.QSignalBlocker(box):
                box.setChecked(on)
        ref = state.reference_step
        self.pin.setText("Pin reference" if ref is None else f"Reference: {ref}")
        self.setEnabled(len(steps) > 0)
