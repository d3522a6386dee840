"""The step timeline: slider, play/pause, speed, loop, step buttons, live follow, reference pin.

A listener of ``ViewState.step``; every command is the ``Session``'s (Qt-free, shared with the
keys), and playing is a timer that calls ``Session.play_tick``, nothing more.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from bnviz.app import style
from bnviz.app.session import Session
from bnviz.app.state import SPEEDS
from bnviz.app.stepping import big_jump, row_at_or_before

TICK_MS = 40  # 25 frames per second
FOLLOW_TEXT = {True: "● Following live", False: "Follow live (F)"}


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
        s = session
        button(icons.SP_MediaSkipBackward, "First step (Home)", lambda: s.go_row(0))
        button(icons.SP_MediaSeekBackward, "Jump back 5% (Shift+Left)", lambda: s.jump(-1))
        button(icons.SP_ArrowLeft, "Previous recorded step (Left)", lambda: s.step_rows(-1))
        self.play_button = button(icons.SP_MediaPlay, "Play / pause (Space)", self.toggle_play)
        button(icons.SP_ArrowRight, "Next recorded step (Right)", lambda: s.step_rows(1))
        button(icons.SP_MediaSeekForward, "Jump forward 5% (Shift+Right)", lambda: s.jump(1))
        button(icons.SP_MediaSkipForward, "Last step (End; follows a live run)", lambda: s.go_row(-1))
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setToolTip("Step cursor: the step every view shows")
        self.slider.valueChanged.connect(self._slider_moved)
        outer.addWidget(self.slider)
        outer.addLayout(row)
        self.step_label = QtWidgets.QLabel("step –")
        self.step_label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        row.addWidget(self.step_label)
        row.addSpacing(12)
        speed_label = QtWidgets.QLabel("Speed")
        row.addWidget(speed_label)
        self.speed = QtWidgets.QComboBox()
        for v in SPEEDS:
            self.speed.addItem(f"{v} rows/frame", v)
        self.speed.setToolTip("Recorded rows per frame while playing (25 frames/s)")
        self.speed.currentIndexChanged.connect(lambda _i: s.state.update(speed=self.speed.currentData()))
        speed_label.setBuddy(self.speed)
        row.addWidget(self.speed)
        self.loop = QtWidgets.QCheckBox("Loop")
        self.loop.setToolTip("Start over at the end while playing")
        self.loop.toggled.connect(lambda on: s.state.update(loop=on))
        row.addWidget(self.loop)
        self.follow = QtWidgets.QToolButton()
        self.follow.setCheckable(True)
        self.follow.setToolTip(
            "Keep the cursor on the newest step and the whole, growing run in view (F). "
            "Moving the cursor or zooming stops following; this button or F resumes it."
        )
        self.follow.toggled.connect(s.follow)
        row.addWidget(self.follow)
        self.pin = QtWidgets.QToolButton()
        self.pin.setText("Pin reference")
        self.pin.setToolTip(
            "Pin the cursor step as the reference the distribution view overlays (R); Shift+R clears it"
        )
        self.pin.clicked.connect(s.pin_reference)
        row.addWidget(self.pin)
        row.addStretch(1)
        s.state.changed.connect(self._state_changed)
        s.runs_changed.connect(self.sync)
        s.data_changed.connect(self.sync)
        self.sync()

    # --- playing --------------------------------------------------------------------------------
    def toggle_play(self) -> None:
        if self.timer.isActive():
            self.stop()
        elif len(self.session.steps):
            self.session.follow(False)
            self.timer.start()
            self.play_button.setIcon(self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MediaPause))

    def stop(self) -> None:
        self.timer.stop()
        self.play_button.setIcon(self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MediaPlay))

    def _tick(self) -> None:
        if not self.session.play_tick():
            self.stop()

    # --- listening ----------------------------------------------------------------------------
    def _slider_moved(self, i: int) -> None:
        steps = self.session.steps
        if 0 <= i < len(steps):
            self.session.go_to(int(steps[i]))

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
        last = int(steps[-1]) if len(steps) else None
        self.step_label.setText(
            f"step {step if step is not None else '–'}" + (f" / {last}" if last is not None else "")
        )
        # room for the widest step this run can show, so the label never runs into "Speed"
        widest = f"step {last} / {last}" if last is not None else "step –"
        self.step_label.setMinimumWidth(self.step_label.fontMetrics().horizontalAdvance(widest) + 8)
        with QtCore.QSignalBlocker(self.speed):
            self.speed.setCurrentIndex(max(0, self.speed.findData(state.speed)))
        with QtCore.QSignalBlocker(self.loop):
            self.loop.setChecked(state.loop)
        self._show_follow()
        ref = state.reference_step
        self.pin.setText("Pin reference" if ref is None else f"Reference: {ref}")
        self.setEnabled(len(steps) > 0)

    def _show_follow(self) -> None:
        """The follow button says what it does; a live run that is not followed makes it stand out."""
        on = self.session.state.follow_latest
        live = self.session.live
        with QtCore.QSignalBlocker(self.follow):
            self.follow.setChecked(on)
        self.follow.setText(FOLLOW_TEXT[on])
        self.follow.setVisible(live or on)
        colour = style.OKABE_ITO["green"] if on else style.OKABE_ITO["orange"]
        self.follow.setStyleSheet(
            f"QToolButton {{ font-weight: bold; border: 1px solid {colour}; border-radius: 3px; padding: 1px 6px; }}"
        )
