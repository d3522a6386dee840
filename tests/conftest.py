import os

import pytest

# Tests never need a display; pytest-qt creates its QApplication offscreen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def shown_main_window(folder, show=True):
    """A (shown) main window with its own settings file in ``folder``; its timers and findings
    process stop after (a generator: the fixtures below yield from it)."""
    from PySide6 import QtCore

    from bnviz.app.main_window import MainWindow

    w = MainWindow(QtCore.QSettings(str(folder / "settings.ini"), QtCore.QSettings.Format.IniFormat))
    w.resize(1300, 900)
    if show:
        w.show()
    yield w
    w.timeline.stop()
    w.live_timer.stop()
    w.findings.shutdown()


@pytest.fixture
def window(qtbot, tmp_path):
    for w in shown_main_window(tmp_path):
        qtbot.addWidget(w)
        yield w
