"""Any number of runs (issue 14 item 2): the Qt-free Session's run list, and the window's run
list, views, findings and badges over it (pytest-qt, off screen)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtGui

from bnviz.app import render, style  # noqa: F401  (applies the PySide6 refcount guard first)
from bnviz.app.session import Session, run_label
from bnviz.app.state import Layout, ViewState
from bnviz.app.tables import export_table
from bnviz.store import RunFileError, open_run
from bnviz.store.synthetic import write_synthetic_run


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Three runs: A healthy, B with dead ReLUs and an extra layer, C short and without layer 2."""
    d = tmp_path_factory.mktemp("three")
    a, b, c = d / "a.h5", d / "b.h5", d / "c.h5"
    names = ["stem.bn", "block.bn1", "block.bn2"]
    write_synthetic_run(a, layers=3, channels=6, steps=120, layer_names=names)
    write_synthetic_run(
        b, layers=4, channels=6, steps=120, seed=1, layer_names=names + ["head.bn"], pathologies=("dead_relu",)
    )
    write_synthetic_run(c, layers=2, channels=6, steps=60, seed=2, layer_names=names[:2])
    return a, b, c


# --- the Session (no Qt) ------------------------------------------------------------------------


def test_run_letters_go_on_past_z():
    assert [run_label(i) for i in (0, 1, 25, 26, 27, 51, 52)] == ["A", "B", "Z", "AA", "AB", "AZ", "BA"]


def test_session_opens_adds_and_removes_runs_keeping_colours(three, tmp_path):
    a, b, c = map(str, three)
    s = Session()
    s.open(a, b, c)
    assert [x.label for x in s.slots] == ["A", "B", "C"] and [x.index for x in s.slots] == [0, 1, 2]
    names = [li.path for li in s.layers()]
    assert names == ["stem.bn", "block.bn1", "block.bn2", "head.bn"], "reference's layers first, then the others'"
    assert s.layer_info("head.bn") is s.slots[1].layer("head.bn") and s.layer_info("nosuch") is None
    s.set_visible(2, False)
    s.set_reference(2)
    assert s.primary.path.endswith("c.h5") and int(s.steps[-1]) == 59, "the timeline follows the reference"
    s.remove(0)  # A goes: B and C keep their letters and colours; visibility and reference follow them
    assert [(x.label, x.index) for x in s.slots] == [("B", 1), ("C", 2)]
    assert s.state.hidden_runs == (1,) and s.state.reference_run == 1 and s.primary.path.endswith("c.h5")
    added = s.add(a)
    assert (added.label, added.index) == ("A", 0), "a new run takes the first free colour"
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(RunFileError):
        s.add(str(bad))
    assert len(s.slots) == 3, "a bad file changes nothing"
    with pytest.raises(RunFileError):
        s.open(a, str(bad))
    assert len(s.slots) == 3, "a bad file among several leaves the open runs open"
    s.remove(0)
    s.remove(0)
    assert [x.label for x in s.slots] == [""], "one run left: no letters, its own colours"
    s.close()


def test_visible_findings_skip_hidden_runs_and_sort_by_severity(three):
    from bnviz.analysis.findings import Finding

    s = Session()
    s.open(*map(str, three))
    mild = Finding(0.3, "drift", "stem.bn", (), 0, 10, "drifts", 1.0)
    bad = Finding(0.9, "dead", "block.bn1", (2,), 0, 10, "dies", 1.0)
    s.set_findings(s.slots[0], [mild])
    s.set_findings(s.slots[2], [bad])
    s.set_findings(s.slots[1], "could not be computed")
    assert [(x.label, f.kind) for x, f in s.visible_findings()] == [("C", "dead"), ("A", "drift")]
    s.set_visible(2, False)
    assert [(x.label, f.kind) for x, f in s.visible_findings()] == [("A", "drift")]
    s.toggle_others()
    assert s.state.hidden_runs == (1, 2)
    s.toggle_others()
    assert s.state.hidden_runs == ()
    s.close()


def test_csv_export_of_three_runs_leaves_hidden_and_layerless_runs_out(three):
    with open_run(three[0]) as a, open_run(three[1]) as b, open_run(three[2]) as c:
        t = export_table(ViewState(layer="block.bn2"), a, b, c)
        assert {k.split(".")[0] for k in t} == {"A", "B"}, "C has no block.bn2"
        t = export_table(ViewState(layer="stem.bn", hidden_runs=(1,)), a, b, c)
        assert {k.split(".")[0] for k in t} == {"A", "C"}
        np.testing.assert_array_equal(t["C.step"], np.asarray(c.steps)[np.asarray(c.phases) == 0])
        t = export_table(ViewState(layer="head.bn"), a, b, c)
        assert "pre_mean" in t, "one run has the layer: its columns unprefixed"


# --- the window ---------------------------------------------------------------------------------


def opened(w, qtbot, paths):
    assert w.open_files(*map(str, paths)), w.last_error
    assert w.findings.wait()
    qtbot.waitUntil(lambda: "analysing" not in w.findings.label.text())
    return w


def curves(view):
    return [
        i
        for p in view.time_plots()
        for i in p.items
        if isinstance(i, pg.PlotDataItem) and i.opacity() == 1 and i.xData is not None and len(i.xData)
    ]


def test_three_runs_each_draw_in_their_colour_and_a_missing_layer_says_so(window, qtbot, three):
    w = opened(window, qtbot, three)
    w.session.state.update(layer="block.bn2", view="drift", compare_mode="overlay")
    view = w.current_view()
    colours = {i.opts["pen"].color().name().upper() for i in curves(view)}
    assert colours == {style.run_colour(0).upper(), style.run_colour(1).upper()}
    assert "Run C has no layer named block.bn2" in view.note.text()
    legend = view.time_plots()[0].bnviz_legend if hasattr(view.time_plots()[0], "bnviz_legend") else None
    title = view.time_plots()[0].titleLabel.text
    assert "a.h5" in title and "b.h5" in title and (legend is None or "c.h5" not in legend)
    w.session.state.update(layer="stem.bn", compare_mode="side")
    assert len(view._rows) == 3, "side by side: one column per visible run"
    w.session.set_visible(1, False)
    assert len(view._rows) == 2 and set(view.tables) == {"A", "C"}
    w.session.state.update(hidden_runs=(0, 1, 2))
    assert "Every open run is hidden" in view.note.text() and not view.tables


def test_findings_and_badges_cover_every_visible_run(window, qtbot, three):
    from bnviz.app.findings_panel import MAX_JOBS

    assert window.open_files(*map(str, three))
    window.findings._start_timer.stop()
    window.findings.start()
    assert len(window.findings._procs) == MAX_JOBS < 3, "a few analyses at a time, not one per run at once"
    w = opened(window, qtbot, three)
    assert set(w.session.findings) == {0, 1, 2}  # keyed by Slot.index
    header = w.findings.label.text()
    assert "A none" in header and "C none" in header and "B " in header
    assert set(w.findings.item_runs) == {"B"}
    row = next(i for i, f in enumerate(w.findings.items) if f.kind == "dead")
    cell = w.findings.table.item(row, 1)
    img = cell.icon().pixmap(28, 14).toImage()
    assert cell.text() == "B" and style.run_colour(1).upper() in {
        img.pixelColor(x, 7).name().upper() for x in range(img.width())
    }, "the run's letter with its colour swatch"
    layer = w.findings.items[row].layer
    leaf = w.tree._leaves[layer]
    assert "dead" in leaf.text(3) and "B: " in leaf.toolTip(3)
    assert "head.bn" in w.tree._leaves, "a layer only B has is in the tree"
    w.session.set_visible(1, False)
    assert not leaf.text(3) and not w.findings.items
    w.session.set_visible(1, True)
    w.session.set_reference(1)
    assert w.findings.info is not None and w.findings.info["path"].endswith("b.h5")


def test_adding_a_run_analyses_only_it_and_removing_drops_its_findings(window, qtbot, three):
    w = opened(window, qtbot, three[:1])  # one run: no letter yet; its findings stay its own when it gets "A"
    before = dict(w.session.findings)
    assert list(before) == [0]
    assert w.runs.add_paths([str(p) for p in three[1:]])
    assert set(w.findings._procs) <= {1, 2}, "only the added runs are analysed"
    assert w.findings.wait()
    assert w.session.findings[0] is before[0], "A was not analysed again"
    assert {1, 2} <= set(w.session.findings)
    w.runs.tree.setCurrentItem(w.runs.tree.topLevelItem(1))
    w.runs.remove_current()
    assert 1 not in w.session.findings and "B" not in w.findings.item_runs
    assert [s.label for s in w.session.slots] == ["A", "C"]


def test_run_list_shows_colours_visibility_and_reference(window, qtbot, three):
    w = opened(window, qtbot, three)
    tree = w.runs.tree
    assert tree.topLevelItemCount() == 3
    assert tree.topLevelItem(0).text(0).startswith("A") and "★" in tree.topLevelItem(0).text(0)
    tree.topLevelItem(2).setCheckState(0, QtCore.Qt.CheckState.Unchecked)
    assert w.session.state.hidden_runs == (2,)
    tree.itemDoubleClicked.emit(tree.topLevelItem(1), 0)
    assert w.session.state.reference_run == 1 and "★" in tree.topLevelItem(1).text(0)
    assert w.session.primary.path == str(three[1]) and w.timeline.slider.maximum() == len(w.session.steps) - 1
    w.actions["next_reference"].trigger()
    assert w.session.state.reference_run == 2
    w.actions["toggle_others"].trigger()
    assert w.session.state.hidden_runs == (0, 1)
    img = w.runs.tree.topLevelItem(1).icon(0).pixmap(28, 14).toImage()
    seen = {img.pixelColor(x, 7).name().upper() for x in range(img.width())}
    assert style.run_colour(1).upper() in seen, "the swatch is the run's colour"


def test_a_layout_of_three_runs_brings_back_visibility_and_reference(window, qtbot, three, tmp_path):
    w = opened(window, qtbot, three)
    w.session.state.update(hidden_runs=(0,), reference_run=2, view="channels")
    w.save_layout(str(tmp_path / "l.json"))
    layout = Layout.from_json((tmp_path / "l.json").read_text())
    assert layout.paths == [str(p) for p in three]
    w.open_files(str(three[0]))
    assert w.session.state.hidden_runs == () and w.session.state.reference_run == 0
    w.load_layout(str(tmp_path / "l.json"))
    assert len(w.session.slots) == 3 and w.session.primary.path == str(three[2])
    assert w.session.state.hidden_runs == (0,) and w.runs.tree.topLevelItem(0).checkState(0) == (
        QtCore.Qt.CheckState.Unchecked
    )


def test_dropping_on_the_run_list_adds_and_elsewhere_replaces(window, qtbot, three):
    w = opened(window, qtbot, three[:1])

    def drop(paths, widget):
        mime = QtCore.QMimeData()
        mime.setUrls([QtCore.QUrl.fromLocalFile(str(p)) for p in paths])
        pos = QtCore.QPointF(widget.mapTo(w, widget.rect().center()))
        ev = QtGui.QDropEvent(
            pos, QtCore.Qt.DropAction.CopyAction, mime, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier(0)
        )
        w.dropEvent(ev)

    drop(three[1:], w.runs)
    assert [s.path for s in w.session.slots] == [str(p) for p in three]
    drop(three[1:2], w.tabs)
    assert [s.path for s in w.session.slots] == [str(three[1])]
    w.findings.shutdown()


def test_headless_export_draws_every_run(qapp, three, tmp_path):
    import bnviz

    seen = {}
    real = render.export_view

    def spy(view, out):
        seen["tables"] = sorted(view.tables)
        seen["caption"] = render.caption(view)
        real(view, out)

    render.export_view = spy
    try:
        bnviz.export(three[0], tmp_path / "x.png", layer="stem.bn", compare=[three[1], three[2]])
    finally:
        render.export_view = real
    assert seen["tables"] == ["A", "B", "C"]
    assert "run C = c.h5" in seen["caption"] and (tmp_path / "x.png").stat().st_size > 1000


def test_runs_after_the_eighth_take_the_colours_again_with_dots():
    assert [style.run_colour(i) for i in range(8)] == [style.run_colour(i + 8) for i in range(8)]
    assert len(set(style.RUN_COLOURS)) == 8
    first, ninth = style.pen("#000000", 1, 1, style.run_cycle(0)), style.pen("#000000", 1, 1, style.run_cycle(8))
    assert first.style() == QtCore.Qt.PenStyle.DashLine
    assert ninth.style() == QtCore.Qt.PenStyle.CustomDashLine and list(ninth.dashPattern())[-2:] == [1.0, 2.0]
    patterns = {tuple(style.pen("#000000", 1, d, c).dashPattern()) for d in range(4) for c in (1, 2)}
    assert len(patterns) == 8, "every series of every cycle has its own line style"


def test_nine_runs_stay_apart_the_ninth_in_the_first_colour_dotted(window, qtbot, three, tmp_path):
    import shutil

    paths = [tmp_path / f"r{i}.h5" for i in range(9)]
    for p in paths:
        shutil.copy(three[0], p)
    w = opened(window, qtbot, paths)
    w.session.state.update(layer="stem.bn", view="drift", compare_mode="overlay")
    assert [s.label for s in w.session.slots][-1] == "I"
    plot = w.current_view().time_plots()[0]
    pens = [i.opts["pen"] for i in plot.items if isinstance(i, pg.PlotDataItem) and i.xData is not None]
    first = style.run_colour(0).upper()
    styles = [p.style() for p in pens if p.color().name().upper() == first]
    assert QtCore.Qt.PenStyle.SolidLine in styles and QtCore.Qt.PenStyle.CustomDashLine in styles
    assert "I: r8.h5" in plot.titleLabel.text
