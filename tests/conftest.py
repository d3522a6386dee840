import os

import pytest

# Tests never need a display; pytest-qt creates its QApplication offscreen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def window(qtbot, tmp_path):
    """A shown main window with its own settings file; its timers and findings process stop after."""
    from PySide6 import QtCore

    from bnviz.app.main_window import MainWindow

    w = MainWindow(QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.resize(1300, 900)
    w.show()
    yield w
    w.timeline.stop()
    w.live_timer.stop()
    w.findings.shutdown()
