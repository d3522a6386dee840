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
            qtbot.waitUntil(lambda: not w.session.live, timeout=5000)
            assert w.live_timer.isActive(), "a run followed live is watched for a resumed segment"
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
    assert len(w.session.steps) == 16 and not w.session.live
    assert w.live_timer.isActive(), "a run whose writer died is watched for a resumed segment"
    w.findings.shutdown()


TRAINING = textwrap.dedent(
    """
    import sys, time
    import torch
    import bnviz
    sys.path.insert(0, sys.argv[2])
    from models import small_cnn

    torch.set_num_threads(1)
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 4, (16,))
    print("ready", flush=True)
    sys.stdin.readline()                  # the window is already waiting for the file
    with bnviz.record(model, sys.argv[1], optimizer=opt, flush_every=8, flush_seconds=0.2) as rec:
        for step in range(%d):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
            rec.log(loss=loss)
            time.sleep(0.02)
"""
    % 300
)


def test_a_real_training_run_is_waited_for_then_followed_until_the_user_moves(window, qtbot, tmp_path):
    """``bnviz view run.h5`` before training starts: waits for the file, opens following the
    newest step with the whole growing run in view; a cursor move stops following, F resumes."""
    import os

    w = window
    w.live_timer.setInterval(100)
    path = tmp_path / "run.h5"
    tests = os.path.dirname(__file__)
    with subprocess.Popen(
        [sys.executable, "-c", TRAINING, str(path), tests],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
            assert w.open_files(str(path), wait=True)
            assert w.banner.isVisible() and f"Waiting for {path}" in w.banner.text()
            assert "waiting for" in w.windowTitle()
            child.stdin.write("go\n")
            child.stdin.flush()
            qtbot.waitUntil(lambda: w.session.primary is not None and len(w.session.steps) >= 40, timeout=60000)
            assert "Waiting for" not in w.banner.text()
            assert w.session.state.follow_latest and w.timeline.follow.isChecked()
            assert "Following" in w.timeline.follow.text()
            seen = len(w.session.steps)
            qtbot.waitUntil(lambda: len(w.session.steps) >= seen + 40, timeout=60000)
            latest = int(w.session.steps[-1])
            assert w.session.state.step == latest and w.session.state.step_range is None
            x1 = w.current_view().time_plots()[0].vb.viewRange()[0][1]
            assert x1 >= latest, "the time plots grew with the run"
            w.session.step_rows(-5)  # the user moves the cursor: following stops
            held = w.session.state.step
            assert not w.session.state.follow_latest and "Follow live" in w.timeline.follow.text()
            seen = len(w.session.steps)
            qtbot.waitUntil(lambda: len(w.session.steps) >= seen + 16, timeout=60000)
            assert w.session.state.step == held
            w.actions["follow"].trigger()  # F: following again
            assert w.session.state.follow_latest and w.session.state.step == int(w.session.steps[-1])
            qtbot.waitUntil(lambda: child.poll() is not None, timeout=90000)
            assert child.returncode == 0, child.stderr.read()
            qtbot.waitUntil(lambda: not w.session.live, timeout=10000)
        finally:
            child.kill()
    assert w.session.state.step == int(w.session.steps[-1]) == 299
    assert "writer: closed" in w.status["writer"].text()
