"""Live follow: the window shows rows a training process (here a writer subprocess) appends."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from PySide6 import QtCore

from bnviz.app import render  # noqa: F401  (applies the PySide6 refcount guard first)
from bnviz.app.main_window import MainWindow

BLOCKS, ROWS = 30, 8
WRITER = textwrap.dedent(
    """
    import sys, time
    from bnviz.store import AsyncWriter, RunWriter
    from bnviz.store.synthetic import synthetic_blocks

    table, meta, blocks = synthetic_blocks(layers=3, channels=6, steps=%d, flush_rows=%d)
    writer = AsyncWriter(RunWriter(sys.argv[1], layers=table, meta=meta, probes=4), max_pending=4)
    print("ready", flush=True)
    sys.stdin.readline()          # the test opens the file first, then lets the rows come
    for block in blocks:
        assert writer.submit(block, timeout=10)
        time.sleep(0.05)
    writer.close(timeout=30)
"""
    % (BLOCKS * ROWS, ROWS)
)


def test_live_rows_update_the_views_and_follow_latest_tracks_them(qtbot, tmp_path):
    path = tmp_path / "live.h5"
    w = MainWindow(QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    w.live_timer.setInterval(50)
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
            assert w.open_files(str(path)), w.last_error
            assert w.live_timer.isActive()
            assert "writer: live" in w.status["writer"].text()
            w.session.state.update(follow_latest=True)
            child.stdin.write("go\n")
            child.stdin.flush()
            qtbot.waitUntil(lambda: len(w.session.steps) >= 5 * ROWS, timeout=20000)
            drawn = len(w.current_view().tables[""]["step"])
            assert drawn >= 5 * ROWS - ROWS, "the drift view was redrawn with the new rows"
            assert w.session.state.step == int(w.session.steps[-1])
            w.session.state.update(view="distribution")
            qtbot.waitUntil(lambda: child.poll() is not None, timeout=30000)
            assert child.returncode == 0, child.stderr.read()
            qtbot.waitUntil(lambda: not w.live_timer.isActive(), timeout=5000)
        finally:
            child.kill()
    assert len(w.session.steps) == BLOCKS * ROWS
    assert w.session.state.step == BLOCKS * ROWS - 1
    assert "writer: closed" in w.status["writer"].text()
    assert f"at step {BLOCKS * ROWS - 1}" in w.readout.text()
    w.findings.shutdown()


KILLED = textwrap.dedent("""
    import os, sys
    from bnviz.store import RunWriter
    from bnviz.store.synthetic import synthetic_blocks

    table, meta, blocks = synthetic_blocks(layers=2, channels=4, steps=32, flush_rows=16)
    writer = RunWriter(sys.argv[1], layers=table, meta=meta, probes=4)
    writer.append(next(iter(blocks)))
    os._exit(0)   # the training process dies without closing the file
""")


def test_a_killed_writer_is_named_in_the_status_and_banner(qtbot, tmp_path):
    path = tmp_path / "killed.h5"
    subprocess.run([sys.executable, "-c", KILLED, str(path)], check=True, timeout=60)
    w = MainWindow(QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    assert w.open_files(str(path)), w.last_error
    assert "writer: writer gone" in w.status["writer"].text()
    assert "stopped without closing" in w.banner.text()
    assert len(w.session.steps) == 16 and not w.live_timer.isActive()
    w.findings.shutdown()
