"""Following a run that is resumed: the session (Qt-free) keeps watching a run whose writer was
live or died, picks up the segment the restarted training writes, and shows the joined rows;
the window says so."""

from __future__ import annotations

from live_writer import Writer  # tests/live_writer.py (pytest's pythonpath)

from bnviz.app.session import Session
from bnviz.store import checks
from bnviz.store.errors import CorruptRunFile
from bnviz.store.reader import Run
from bnviz.store.segments import segment_path


def test_a_followed_run_is_watched_and_followed_into_its_resumed_segment(tmp_path):
    path = tmp_path / "run.h5"
    session = Session()
    changes = []
    session.data_changed.connect(lambda: changes.append(len(session.steps)))
    with Writer(path, "--steps", "40", "--end", "kill") as first:
        first.send()
        session.open(str(path))
        assert session.live and session.watching and session.state.follow_latest
        first.send("all")
        first.end()  # the first attempt dies at step 39 (its last checkpoint: step 24)
    assert session.refresh() and session.state.step == 39
    assert not session.live and session.watching, "a run whose writer died may be resumed: keep looking"
    assert not session.refresh()
    session.go_to(35)  # the user looks at a step the restart will train again
    with Writer(segment_path(path, 1), "--steps", "48", "--seed", "1", "--segment-start", "24") as second:
        assert session.refresh() and session.live
        assert list(session.steps) == list(range(24)), "rows from the segment's start on are replaced"
        assert session.state.step == 23, "the cursor's step is gone: the last step left"
        session.follow()
        second.send()
        assert session.refresh() and session.state.step == 31
        second.send("all")
        second.end()
    assert session.refresh() and list(session.steps) == list(range(48)) and session.state.step == 47
    assert not session.live and session.watching
    assert changes == [40, 24, 32, 48]
    session.close()
    assert not session.watching


def test_a_run_opened_finished_is_read_again_only_once_a_restart_resumes_it(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    with Writer(path, "--steps", "16") as writer:
        writer.send("all")
        writer.end()
    session = Session()
    session.open(str(path))
    assert len(session.steps) == 16 and not session.live and session.watching
    reads = []
    monkeypatch.setattr(Run, "refresh", lambda run: reads.append(run) or False)
    monkeypatch.setattr(Run, "writer_state", property(lambda run: reads.append(run) or "closed"))
    assert not session.refresh() and not session.refresh()
    assert reads == [], "a closed run is looked at for a resumed segment only, never read"
    monkeypatch.undo()
    with Writer(segment_path(path, 1), "--steps", "32", "--seed", "1", "--segment-start", "16") as second:
        second.send()  # training trained on from step 16, resumed from the first attempt's end
        assert session.refresh() and session.live and list(session.steps) == list(range(24))
        assert session.state.step == 15, "the cursor stays where the user left it"
        session.follow()  # the timeline's follow button
        second.send("all")
        second.end()
    assert session.refresh() and list(session.steps) == list(range(32)) and session.state.step == 31
    assert not session.live and session.watching
    session.close()
    assert not session.watching


def test_the_window_follows_a_killed_run_into_its_resumed_segment(window, qtbot, tmp_path, monkeypatch):
    """``bnviz view run.h5`` left open: the first attempt dies (banner), the restart's segment
    arrives (banner gone, writer live again, the joined rows drawn and followed)."""
    w = window
    w.live_timer.setInterval(50)
    path = tmp_path / "run.h5"
    with Writer(path, "--steps", "40", "--end", "kill") as first:
        first.send()
        assert w.open_files(str(path)), w.last_error
        w.session.state.update(view="drift")  # the view the test reads, whatever the findings say
        first.send("all")
        first.end()
    qtbot.waitUntil(lambda: "writer: writer gone" in w.status["writer"].text(), timeout=10000)
    assert "stopped without closing" in w.banner.text() and w.live_timer.isActive()
    with Writer(segment_path(path, 1), "--steps", "48", "--seed", "1", "--segment-start", "24") as second:
        qtbot.waitUntil(lambda: "writer: live" in w.status["writer"].text(), timeout=10000)
        assert "stopped without closing" not in w.banner.text()
        assert list(w.session.steps) == list(range(24))

        def mid_write(path, *args):  # the next commit is caught mid-write
            raise CorruptRunFile(path, "the commit record says 32 summary rows, but the file holds 24")

        monkeypatch.setattr(checks, "committed", mid_write)
        second.send()
        qtbot.waitUntil(lambda: "waiting for it to finish a write" in w.status["writer"].text(), timeout=10000)
        assert list(w.session.steps) == list(range(24)) and "can no longer be read" not in w.banner.text()
        monkeypatch.undo()
        qtbot.waitUntil(lambda: len(w.session.steps) == 32, timeout=10000)
        assert "waiting" not in w.status["writer"].text()
        second.send("all")
        second.end()
    qtbot.waitUntil(lambda: "writer: closed" in w.status["writer"].text(), timeout=10000)
    assert list(w.session.steps) == list(range(48)) and w.session.state.step == 47
    qtbot.waitUntil(lambda: len(w.current_view().tables[""]["step"]) == 48, timeout=10000)
