"""Following a run that is resumed: the session (Qt-free) keeps watching a run whose writer was
live or died, picks up the segment the restarted training writes, and shows the joined rows."""

from __future__ import annotations

from live_writer import Writer  # tests/live_writer.py (pytest's pythonpath)

from bnviz.app.session import Session
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


def test_a_run_opened_finished_is_not_watched(tmp_path):
    path = tmp_path / "run.h5"
    with Writer(path, "--steps", "16") as writer:
        writer.send("all")
        writer.end()
    session = Session()
    session.open(str(path))
    assert len(session.steps) == 16 and not session.live and not session.watching
    session.close()
