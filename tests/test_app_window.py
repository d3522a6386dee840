"""The viewer window, driven through its state and its widgets (pytest-qt, off screen)."""

from __future__ import annotations

import csv
import gc
import os
import shutil
import weakref
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.app import render, style  # noqa: F401  (applies the PySide6 refcount guard first)
from bnviz.app.main_window import MainWindow
from bnviz.app.state import VIEWS, ViewState
from bnviz.store import RunWriter, open_run
from bnviz.store.synthetic import PATHOLOGIES, layer_table, write_synthetic_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    a, b = d / "a.h5", d / "b.h5"
    write_synthetic_run(a, layers=6, channels=8, steps=300, eval_every=50, pathologies=PATHOLOGIES)
    names = [f"layer{1 + i * 4 // 6}.{i % 3}.bn{1 + i % 2}" for i in range(5)] + ["only_in_b.bn"]
    write_synthetic_run(b, layers=6, channels=8, steps=200, seed=1, layer_names=names, pathologies=("drift",))
    return a, b


def opened(w, qtbot, path, compare=None, at_trouble=False):
    """Open and wait for the findings. A run opens on its most severe finding; unless
    ``at_trouble``, the tests then start from the first layer's drift view at the last step."""
    assert w.open_files(str(path), str(compare) if compare else None), w.last_error
    assert w.findings.wait()
    qtbot.waitUntil(lambda: "Findings:" in w.findings.label.text() and "analysing" not in w.findings.label.text())
    if not at_trouble:
        d = ViewState()
        w.session.state.update(
            layer=w.session.primary.run.layers[0].path,
            view="drift",
            step=int(w.session.steps[-1]) if len(w.session.steps) else None,
            reference_step=None,
            channel=d.channel,
            channel_metric=d.channel_metric,
        )
    return w


def error_boxes(w):
    return [b for b in w.findChildren(QtWidgets.QMessageBox) if b.isVisible()]


# --- opening and navigating ---------------------------------------------------------------


def test_open_shows_layers_views_and_status(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    st = w.session.state
    assert w.tree._leaves.keys() == {li.path for li in w.session.primary.run.layers}
    assert st.layer == w.session.primary.run.layers[0].path
    assert st.step == int(w.session.steps[-1])
    assert len(w.current_view().time_plots()) == 6
    assert "writer: closed" in w.status["writer"].text()
    assert "pre mean" in w.readout.text()
    assert w.findings.items, "the synthetic run has pathologies, findings must list them"


def test_selecting_a_layer_in_the_tree_redraws_the_view(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    target = w.session.primary.run.layers[3].path
    w.tree.setCurrentItem(w.tree._leaves[target])
    assert w.session.state.layer == target
    expected = w.session.primary.run.summary(target, "post_var")[w.session.primary.run.phases == 0]
    np.testing.assert_allclose(w.current_view().tables[""]["post_var"], expected)


def test_cursor_moves_every_plot_and_a_drag_moves_the_state(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    view = w.current_view()
    w.session.state.update(step=123)
    assert all(c.value() == 123 for c in view._cursors)
    assert w.timeline.slider.value() == np.searchsorted(w.session.steps, 123, side="right") - 1
    view._cursors[2].setValue(77)
    view._cursors[2].sigDragged.emit(view._cursors[2])
    assert w.session.state.step == 77
    assert all(c.value() == 77 for c in view._cursors)


def test_keys_step_jump_and_show_the_cheatsheet(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    w.session.state.update(step=100)
    w.tabs.setFocus()
    qtbot.keyClick(w, QtCore.Qt.Key.Key_Right)
    assert w.session.cursor_step() == 101
    qtbot.keyClick(w, QtCore.Qt.Key.Key_Home)
    assert w.session.cursor_step() == 0
    qtbot.keyClick(w, QtCore.Qt.Key.Key_Right, QtCore.Qt.KeyboardModifier.ShiftModifier)
    assert w.session.cursor_step() > 10
    qtbot.keyClick(w, QtCore.Qt.Key.Key_F1)
    assert "Space" in w.cheatsheet.text() and "Pin reference step" in w.cheatsheet.text()
    before = w.session.cursor_step()
    w.cheatsheet.accept()
    # keys work at once after F1 closes, without a click into the window first
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activeWindow() is w)
    target = QtWidgets.QApplication.focusWidget() or w
    assert target.window() is w
    qtbot.keyClick(target, QtCore.Qt.Key.Key_Right)
    assert w.session.cursor_step() > before


def test_play_advances_and_stops_at_the_end(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    w.session.state.update(step=int(w.session.steps[-30]), loop=False, speed=5)
    w.timeline.toggle_play()
    assert w.timeline.timer.isActive()
    qtbot.waitUntil(lambda: not w.timeline.timer.isActive(), timeout=30000)  # redraws are slow under load
    assert w.session.cursor_step() == int(w.session.steps[-1])


def test_reference_step_overlays_the_distribution(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    w.session.state.update(view="distribution", step=250)
    n_now = len(w.current_view()._items)
    w.session.state.update(step=40)
    w.session.pin_reference()
    w.session.state.update(step=250)
    assert w.session.state.reference_step == 40
    assert len(w.current_view()._items) == 2 * n_now
    assert "reference step 40" in w.readout.text()


def test_every_view_draws_for_every_layer(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    for layer in w.tree._leaves:
        for view in VIEWS:
            w.session.state.update(layer=layer, view=view)
            assert not w.banner.isVisible(), w.banner.text()
            assert w.current_view().tables, (layer, view)


def test_heatmap_click_picks_channel_and_step(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    w.session.state.update(view="channels")
    view = w.current_view()
    plot = view._plots[0]
    qtbot.wait(50)
    pos = plot.vb.mapViewToScene(QtCore.QPointF(150, 5))
    ev = type("Click", (), {"scenePos": lambda self: pos, "accept": lambda self: None})()
    view._clicked(ev)
    assert w.session.state.channel == 5
    assert abs(w.session.state.step - 150) <= 2


def test_overview_click_selects_the_layer(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    w.session.state.update(view="overview")
    plot, _ = w.current_view()._plots[0]
    qtbot.wait(50)
    pos = plot.vb.mapViewToScene(QtCore.QPointF(100, 4))
    w.current_view()._clicked(type("Click", (), {"scenePos": lambda self: pos, "accept": lambda self: None})())
    assert w.session.state.layer == w.session.primary.run.layers[4].path


def wheel_zoom(view, plot, clicks=3):
    """Turn the mouse wheel over ``plot`` (a user's zoom, as Qt delivers it)."""
    centre = view.glw.mapFromScene(plot.vb.sceneBoundingRect().center())
    glob = view.glw.viewport().mapToGlobal(centre)
    ev = QtGui.QWheelEvent(
        QtCore.QPointF(centre),
        QtCore.QPointF(glob),
        QtCore.QPoint(0, 0),
        QtCore.QPoint(0, 120 * clicks),
        QtCore.Qt.MouseButton.NoButton,
        QtCore.Qt.KeyboardModifier.NoModifier,
        QtCore.Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QtWidgets.QApplication.sendEvent(view.glw.viewport(), ev)


def test_linked_zoom_and_the_strip_region_set_the_detail_range(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    view = w.current_view()
    qtbot.wait(50)
    wheel_zoom(view, view.time_plots()[1])
    rng = w.session.state.step_range
    assert rng is not None and 0 < rng[0] < rng[1] < 299, "a wheel zoom is the shared range"
    x0, x1 = view.time_plots()[4].vb.viewRange()[0]
    assert (round(x0), round(x1)) == rng
    w.session.state.update(link_zoom=False)
    wheel_zoom(view, view.time_plots()[0])
    assert w.session.state.step_range == rng
    w.strip.region.setRegion((30, 60))
    w.strip.region.sigRegionChangeFinished.emit(w.strip.region)
    assert w.session.state.step_range == (30, 60)
    x0, x1 = view.time_plots()[-1].vb.viewRange()[0]
    assert (round(x0), round(x1)) == (30, 60)


def test_the_time_range_is_only_what_the_user_set(window, qtbot, runs, tmp_path):
    """Switching views, clicking findings and loading a layout never narrow the range by
    themselves (linked plots auto-ranging to their own data used to become the shared zoom)."""
    w = opened(window, qtbot, runs[0])
    for v in VIEWS:
        w.session.state.update(view=v)
        qtbot.wait(20)
        assert w.session.state.step_range is None, v
    for row in range(min(6, len(w.findings.items))):
        w.findings._clicked(row, 2)
        qtbot.wait(20)
        assert w.session.state.step_range is None, w.findings.items[row]
        for p in w.current_view().time_plots():
            x0, x1 = p.vb.viewRange()[0]
            assert x0 <= 0 and x1 >= 299, "every step is in view"
    w.save_layout(str(tmp_path / "l.json"))
    w.load_layout(str(tmp_path / "l.json"))
    qtbot.wait(20)
    assert w.session.state.step_range is None


def test_findings_click_selects_layer_step_and_view(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    f = w.findings.items[0]
    w.findings._clicked(0, 2)
    assert w.session.state.layer == f.layer
    assert w.session.state.view != "" and w.current_view().key == w.session.state.view
    assert w.tree._leaves[f.layer].text(3), "the layer's tree row shows a trouble badge"


def test_nan_is_marked_with_a_tooltip_and_named_in_the_readout(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    nan = [f for f in w.findings.items if f.kind == "nonfinite"][0]
    w.session.state.update(layer=nan.layer, step=int(w.session.steps[-1]), view="drift")
    marks = [i for p in w.current_view().time_plots() for i in p.items if "NaN" in (i.toolTip() or "")]
    assert marks
    assert "NaN" in w.readout.text()


# --- compare ------------------------------------------------------------------------------


def test_compare_findings_list_run_b_tagged_and_clickable(window, qtbot, tmp_path):
    healthy, sick = tmp_path / "healthy.h5", tmp_path / "sick.h5"
    write_synthetic_run(healthy, layers=4, channels=8, steps=120)
    write_synthetic_run(sick, layers=4, channels=8, steps=120, pathologies=("dead_relu",))
    w = opened(window, qtbot, healthy, sick)
    assert set(w.findings.item_runs) == {"B"}, "only the sick run B has findings"
    header = w.findings.label.text()
    assert "A none" in header and f"B {len(w.findings.items)}" in header
    row = next(i for i, f in enumerate(w.findings.items) if f.kind == "dead")
    assert w.findings.table.item(row, 1).text() == "B"
    f = w.findings.items[row]
    assert w.findings.table.item(row, 2).text() == f.layer
    w.findings._clicked(row, 3)
    assert w.session.state.layer == f.layer
    leaf = w.tree._leaves[f.layer]
    assert "dead" in leaf.text(3) and "B: " in leaf.toolTip(3), "badges cover every visible run, naming it"
    w.session.set_visible(1, False)
    assert not leaf.text(3), "a hidden run's findings badge nothing"
    assert not w.findings.items and "hidden" in w.findings.label.text()
    w.session.set_visible(1, True)
    w.findings.start()
    w.reload()
    w.findings.shutdown()
    assert not w.findings._procs, "both analyses stopped"


def test_a_probe_without_gamma_or_running_stats_gets_a_note_not_nan_marks(window, qtbot):
    from bnviz.demo import demo_paths

    with_bn, without_bn = demo_paths()
    w = opened(window, qtbot, with_bn, without_bn)
    for view, what in (("gamma_beta", "has no γ/β (a probe, no BN)"), ("train_eval", "keeps no running statistics")):
        w.session.state.update(view=view, layer="7")
        v = w.current_view()
        assert f"Run B: 7 {what}" in v.note.text(), view
        assert not [i for p in v.time_plots() for i in p.items if "NaN" in (i.toolTip() or "")], view
        assert set(v.tables) == {"A", "B"}


def test_compare_overlays_matching_layers_and_notes_missing_ones(window, qtbot, runs):
    w = opened(window, qtbot, runs[0], runs[1])
    view = w.current_view()
    assert set(view.tables) == {"A", "B"}
    assert len(view.tables["B"]["step"]) < len(view.tables["A"]["step"])
    assert len(view.time_plots()) == 6
    w.session.state.update(compare_mode="side")
    assert len(w.current_view().time_plots()) == 12
    w.session.state.update(layer=w.session.primary.run.layers[5].path)
    assert set(w.current_view().tables) == {"A"}
    assert "no layer named" in w.current_view().note.text()


def test_side_by_side_heatmaps_share_one_colour_scale_and_fit_the_window(window, qtbot, runs):
    w = opened(window, qtbot, runs[0], runs[1])
    w.resize(1000, 800)
    for view in ("overview", "channels"):
        w.session.state.update(view=view)
        v = w.current_view()
        qtbot.wait(20)
        assert len(v.ink.bars) == 2 and v.ink.bars[0].levels() == v.ink.bars[1].levels(), view
        plots = [p for p in v.glw.ci.items if hasattr(p, "vb")]
        assert max(p.sceneBoundingRect().right() for p in plots) <= v.glw.viewport().width() + 1, view


# --- export -------------------------------------------------------------------------------


@pytest.mark.parametrize("view", VIEWS)
def test_each_view_exports_valid_png_svg_csv(window, qtbot, runs, tmp_path, view):
    w = opened(window, qtbot, runs[0])
    w.session.state.update(view=view, step=150)
    qtbot.wait(20)
    png, svg, out_csv = tmp_path / "v.png", tmp_path / "v.svg", tmp_path / "v.csv"
    assert w.export(str(png)) and w.export(str(svg)) and w.export(str(out_csv)), w.last_error
    assert png.read_bytes()[:8] == PNG_MAGIC
    img = QtGui.QImage(str(png))
    assert img.width() > 200 and img.height() > 150
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and len(list(root.iter())) > 20
    with open(out_csv, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) > 1 and all(len(r) == len(rows[0]) for r in rows)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")], "no temporary file left behind"


def test_csv_holds_the_stored_numbers(window, qtbot, runs, tmp_path):
    w = opened(window, qtbot, runs[0])
    out = tmp_path / "drift.csv"
    assert w.export(str(out))
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    run = w.session.primary.run
    train = run.phases == 0
    expected = run.summary(w.session.state.layer, "pre_var")[train]
    np.testing.assert_allclose([float(r["pre_var"]) for r in rows], expected, rtol=1e-6)
    assert [int(float(r["step"])) for r in rows] == run.steps[train].tolist()


def test_csv_holds_the_shown_step_range(window, qtbot, runs, tmp_path):
    w = opened(window, qtbot, runs[0])
    run = w.session.primary.run
    for view in ("drift", "gamma_beta", "channels"):
        w.session.state.update(view=view, step_range=(50, 120))
        assert w.export(str(tmp_path / f"{view}.csv"))
        with open(tmp_path / f"{view}.csv", newline="") as f:
            steps = [int(float(r["step"])) for r in csv.DictReader(f)]
        every = run.steps[run.phases == 0] if view != "channels" else run.channel_steps[run.channel_phases == 0]
        assert steps == [s for s in every.tolist() if 50 <= s <= 120], view
    render.render_view(runs[0], tmp_path / "h.csv", ViewState(step_range=(10, 20)))
    with open(tmp_path / "h.csv", newline="") as f:
        assert [int(float(r["step"])) for r in csv.DictReader(f)] == list(range(10, 21))


@pytest.mark.parametrize("umask", [0o022, 0o007])
def test_exports_get_the_usual_file_mode(window, qtbot, runs, tmp_path, umask):
    w = opened(window, qtbot, runs[0])
    old = os.umask(umask)
    try:
        for ext in (".png", ".svg", ".csv"):
            assert w.export(str(tmp_path / f"w{ext}")), w.last_error
        render.render_view(runs[0], tmp_path / "h.csv")
    finally:
        os.umask(old)
    for name in ("w.png", "w.svg", "w.csv", "h.csv"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_the_distribution_shades_the_zone_of_the_analysis(window, qtbot, runs):
    import pyqtgraph as pg

    from bnviz.analysis.zones import zone_bounds

    w = opened(window, qtbot, runs[0])
    for li in w.session.primary.run.layers:
        w.session.state.update(view="distribution", layer=li.path)
        plot = w.current_view().glw.getItem(0, 0)
        shaded = sorted(r.getRegion() for r in plot.items if isinstance(r, pg.LinearRegionItem))
        lo, hi = zone_bounds(li.zone_rule, li.zone_threshold)
        expected = ([(-1e6, lo)] if np.isfinite(lo) else []) + ([(hi, 1e6)] if np.isfinite(hi) else [])
        assert shaded == expected, li.path


def test_export_to_a_bad_place_shows_an_error(window, qtbot, runs, tmp_path):
    w = opened(window, qtbot, runs[0])
    assert not w.export(str(tmp_path / "view.gif"))
    assert "unsupported extension" in w.last_error
    assert not w.export(str(tmp_path / "missing" / "view.png"))
    assert "does not exist" in w.last_error


def test_headless_render_matches_the_requested_state(runs, tmp_path, qapp):
    state = ViewState(view="distribution", step=120, reference_step=10)
    render.render_view(runs[0], tmp_path / "d.csv", state)
    with open(tmp_path / "d.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[:3] == ["pre_lo", "pre_hi", "pre_density"]
    render.render_view(runs[0], tmp_path / "d.png", state, compare=runs[1])
    assert (tmp_path / "d.png").read_bytes()[:8] == PNG_MAGIC


# --- bad input ----------------------------------------------------------------------------


def _bad_files(tmp_path, good):
    text = tmp_path / "notes.h5"
    text.write_text("<b>not</b> a recording")
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    newer = tmp_path / "newer.h5"
    shutil.copy(good, newer)
    with h5py.File(newer, "r+") as f:
        f.attrs["format_version"] = "99.0"
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    return {
        "text": text,
        "empty": empty,
        "other HDF5": other,
        "newer": newer,
        "truncated": truncated,
        "missing": tmp_path / "missing.h5",
        "folder": tmp_path,
    }


def test_each_bad_file_shows_an_error_dialog(window, qtbot, runs, tmp_path):
    for what, path in _bad_files(tmp_path, runs[0]).items():
        assert not window.open_files(str(path)), what
        boxes = error_boxes(window)
        assert boxes, what
        assert str(path) in boxes[-1].text(), what
        assert boxes[-1].textFormat() == QtCore.Qt.TextFormat.PlainText
        for b in boxes:
            b.close()
    assert window.session.primary is None


def test_a_bad_file_keeps_the_open_one(window, qtbot, runs, tmp_path):
    w = opened(window, qtbot, runs[0])
    w.session.state.update(step=42)
    assert not w.open_files(str(tmp_path / "missing.h5"))
    assert w.session.primary.path == str(runs[0]) and w.session.state.step == 42


def test_zero_steps_shows_a_message_not_a_crash(window, qtbot, tmp_path):
    path = tmp_path / "zero.h5"
    RunWriter(path, layers=layer_table([4, 4], 0), meta={}, probes=0).close()
    w = opened(window, qtbot, path)
    assert "no recorded steps" in w.banner.text()
    for view in VIEWS:
        w.session.state.update(view=view)
    w.timeline.toggle_play()
    assert not w.timeline.timer.isActive()


def test_file_deleted_while_open_then_reload_shows_an_error(window, qtbot, runs, tmp_path):
    path = tmp_path / "gone.h5"
    shutil.copy(runs[0], path)
    w = opened(window, qtbot, path)
    os.remove(path)
    w.session.state.update(layer=w.session.primary.run.layers[2].path)  # still readable (open handle)
    w.reload()
    assert "gone.h5" in w.last_error and error_boxes(w)
    assert w.session.primary is not None, "the views keep what was read"


def test_file_truncated_while_open_becomes_a_banner(window, qtbot, runs, tmp_path):
    path = tmp_path / "cut.h5"
    shutil.copy(runs[0], path)
    w = opened(window, qtbot, path)
    with open(path, "r+b") as f:
        f.truncate(4096)
    for layer in list(w.tree._leaves)[1:]:
        w.session.state.update(layer=layer)
    w.poll_live()
    assert "can no longer be read" in w.banner.text() or "Could not draw" in w.banner.text()
    assert w.isVisible()


def test_layer_names_are_plain_text(window, qtbot, tmp_path):
    path = tmp_path / "html.h5"
    write_synthetic_run(path, layers=2, channels=4, steps=20, layer_names=["<b>bold</b>", "a&amp;b"])
    w = opened(window, qtbot, path)
    assert set(w.tree._leaves) == {"<b>bold</b>", "a&amp;b"}
    assert w.tree._leaves["<b>bold</b>"].text(0) == "<b>bold</b>"
    w.session.state.update(compare_mode="side")
    assert "&lt;b&gt;" not in w.readout.text()


# --- files, settings, layouts -------------------------------------------------------------


def test_reload_keeps_the_view_state(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    w.session.state.update(
        view="gamma_beta", layer=w.session.primary.run.layers[2].path, step=99, step_range=(20, 200), channel=3
    )
    before = w.session.state.to_dict()
    w.reload()
    assert w.session.state.to_dict() == before
    assert w.current_view().key == "gamma_beta"


def test_layout_save_and_load(window, qtbot, runs, tmp_path):
    w = opened(window, qtbot, runs[0], runs[1])
    w.session.state.update(view="channels", channel_metric="gamma", step=77, hidden_runs=(0,))
    w.save_layout(str(tmp_path / "l.json"))
    w.session.state.update(view="drift", step=5)
    w.session.remove(1)
    assert w.session.state.hidden_runs == (0,)
    w.load_layout(str(tmp_path / "l.json"))
    assert [s.path for s in w.session.slots] == [str(runs[0]), str(runs[1])]
    st = w.session.state
    assert (st.view, st.channel_metric, st.step, st.hidden_runs) == ("channels", "gamma", 77, (0,))


def test_recent_files_and_geometry_persist(qtbot, runs, tmp_path):
    ini = str(tmp_path / "settings.ini")
    w = MainWindow(QtCore.QSettings(ini, QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    opened(w, qtbot, runs[1])
    opened(w, qtbot, runs[0])
    w.resize(w.width(), 555)  # (the offscreen screen clamps widths: test the height)
    w.split.setSizes([150, w.width() - 150])
    split_state = w.split.saveState()
    w.close()
    w2 = MainWindow(QtCore.QSettings(ini, QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(w2)
    assert w2.files.recent_files()[:2] == [str(runs[0]), str(runs[1])]
    assert [a.text() for a in w2.files.recent_menu.actions()][:2] == [str(runs[0]), str(runs[1])]
    assert w2.height() == 555
    assert w2.split.saveState() == split_state


def test_dropping_files_opens_them(window, qtbot, runs):
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(runs[0])), QtCore.QUrl.fromLocalFile(str(runs[1]))])
    ev = QtGui.QDropEvent(
        QtCore.QPointF(10, 10),
        QtCore.Qt.DropAction.CopyAction,
        mime,
        QtCore.Qt.MouseButton.LeftButton,
        QtCore.Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(ev)
    window.findings.wait()
    assert len(window.session.slots) == 2 and window.session.primary.path == str(runs[0])


def test_window_is_freed_after_close(qtbot, runs, tmp_path):
    w = MainWindow(QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat))
    w.show()
    opened(w, qtbot, runs[0])
    w.session.state.update(view="distribution")
    w.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    w.close()
    ref = weakref.ref(w)
    del w
    qtbot.wait(10)
    QtWidgets.QApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)
    gc.collect()
    assert ref() is None


def test_run_information_shows_bnviz_info_as_plain_text(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    w.actions["info"].trigger()
    text = w.info_box.text()
    assert str(runs[0]) in text and "findings" in text and "layers     6" in text
    assert isinstance(w.info_box.view, QtWidgets.QPlainTextEdit), "plain text, never rich text"
    w.info_box.close()


def test_run_information_of_a_big_run_fits_on_the_screen(window, qtbot, tmp_path):
    path = tmp_path / "big.h5"
    write_synthetic_run(path, layers=100, channels=2, steps=20)
    w = opened(window, qtbot, path)
    w.actions["info"].trigger()
    assert w.info_box.text().count("\n") > 100
    screen = w.screen().availableGeometry()
    qtbot.waitUntil(w.info_box.isVisible)
    assert w.info_box.frameGeometry().height() <= screen.height()
    ok = w.info_box.findChild(QtWidgets.QDialogButtonBox)
    assert ok.isVisible() and w.info_box.rect().contains(ok.geometry()), "OK is reachable"
    w.info_box.accept()


def test_plot_context_menu_offers_our_exports(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    texts = [a.text() for a in w.current_view().glw.scene().contextMenu]
    assert texts == ["Export view as PNG…", "Export view as SVG…", "Export view as CSV…"]


def test_run_viewer_opens_the_files_and_returns_when_closed(qapp, runs, tmp_path):
    from bnviz.app import run_viewer

    seen = {}

    def close_all():
        w = next(x for x in qapp.topLevelWidgets() if isinstance(x, MainWindow) and x.isVisible())
        seen["paths"] = [s.path for s in w.session.slots]
        seen["layer"] = w.session.state.layer
        w.findings.shutdown()
        w.close()

    QtCore.QTimer.singleShot(300, close_all)
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    with open_run(runs[0]) as run:
        last = run.layers[-1].path
    assert run_viewer([str(runs[0])], compare=str(runs[1]), settings=settings, layer=last) == 0
    assert seen["paths"] == [str(runs[0]), str(runs[1])] and seen["layer"] == last


def test_main_passes_every_file_on(monkeypatch):
    import bnviz.app

    calls = []
    monkeypatch.setattr(bnviz.app, "run_viewer", lambda paths, compare=None: calls.append((paths, compare)) or 0)
    assert bnviz.app.main(["a.h5", "b.h5", "c.h5", "--compare", "d.h5"]) == 0
    assert calls == [(["a.h5", "b.h5", "c.h5"], "d.h5")]


def test_options_bar_and_state_stay_in_step(window, qtbot, runs):
    w = opened(window, qtbot, runs[0], runs[1])
    bar = w.options
    assert bar.compare.isVisible()
    bar.phase.setCurrentIndex(bar.phase.findData("all"))
    assert w.session.state.phase == "all"
    assert len(w.current_view().tables["A"]["step"]) == len(w.session.steps)
    w.session.state.update(compare_mode="side", link_zoom=False)
    assert bar.compare.currentData() == "side" and not bar.link.isChecked()
    w.session.remove(1)
    assert not bar.compare.isVisible()


@pytest.mark.qt_log_ignore("does not support raise")  # the offscreen platform, on showing a tooltip
def test_hovering_a_heatmap_cell_names_it_and_says_nan(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    nan = [f for f in w.findings.items if f.kind == "nonfinite"][0]
    names = [li.path for li in w.session.primary.run.layers]
    w.session.state.update(view="overview", overview_metric="drift")
    plot, _ = w.current_view()._plots[0]
    qtbot.wait(50)
    last = int(w.session.steps[-1])
    w.current_view()._hover(plot.vb.mapViewToScene(QtCore.QPointF(last - 1, names.index(nan.layer))))
    tip = QtWidgets.QToolTip.text()
    assert nan.layer in tip and "NaN" in tip
    w.current_view()._hover(plot.vb.mapViewToScene(QtCore.QPointF(5, 0)))
    assert names[0] in QtWidgets.QToolTip.text() and "NaN" not in QtWidgets.QToolTip.text()
    # an item's own tooltip shows over its whole area: none may claim every cell is NaN
    assert not [i for i in plot.items if "NaN" in (i.toolTip() or "")]


# --- screens that used to be wrong (issue 13) ----------------------------------------------


def test_a_layer_the_run_lacks_is_named_in_the_banner(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    first = w.session.state.layer
    assert not w.select_layer("nosuch")
    assert w.banner.isVisible() and "no layer named 'nosuch'" in w.banner.text()
    assert first in w.banner.text() and w.session.state.layer == first
    assert w.select_layer(w.session.primary.run.layers[2].path) and "nosuch" not in w.banner.text()


def test_an_export_is_confirmed_where_it_can_be_seen(window, qtbot, runs, tmp_path):
    w = opened(window, qtbot, runs[0])
    out = tmp_path / "drift.png"
    assert w.export(str(out))
    assert w.banner.isVisible() and f"Wrote {out}" in w.banner.text()


def test_double_clicking_the_strip_shows_the_whole_run_and_leaves_the_cursor(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    w.session.state.update(step=250, step_range=(200, 280))
    viewport = w.strip.plot_widget.viewport()
    qtbot.wait(50)
    pos = QtCore.QPointF(viewport.width() // 3, 50)
    E = QtCore.QEvent.Type
    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.MouseButton.NoButton
    for kind in (E.MouseButtonPress, E.MouseButtonRelease, E.MouseButtonDblClick, E.MouseButtonRelease):
        # what a window system sends for a double-click (QTest's mouseDClick sends only the third)
        ev = QtGui.QMouseEvent(
            kind,
            pos,
            QtCore.QPointF(viewport.mapToGlobal(pos)),
            left,
            none if kind == E.MouseButtonRelease else left,
            QtCore.Qt.KeyboardModifier.NoModifier,
        )
        QtWidgets.QApplication.sendEvent(viewport, ev)
    qtbot.wait(QtWidgets.QApplication.doubleClickInterval() + 100)
    assert w.session.state.step_range is None and w.session.state.step == 250
    qtbot.mouseClick(viewport, left, pos=pos.toPoint())
    qtbot.waitUntil(lambda: w.session.state.step != 250, timeout=2000)  # a single click moves it


def test_the_step_label_leaves_room_for_five_digit_steps(window, qtbot, tmp_path):
    path = tmp_path / "long.h5"
    write_synthetic_run(
        path, layers=1, channels=2, steps=50000, flush_rows=4096, probes=0, channel_every=1000, hist_every=1000
    )
    w = opened(window, qtbot, path)
    w.session.go_to(48888)
    qtbot.wait(20)
    label = w.timeline.step_label
    assert label.text() == "step 48888 / 49999"
    speed = label.buddy() if label.buddy() else w.timeline.speed
    need = label.fontMetrics().horizontalAdvance(label.text())
    assert label.width() >= need
    gap = [c for c in w.timeline.findChildren(QtWidgets.QLabel) if c.text() == "Speed"][0]
    assert label.geometry().right() + 4 < gap.geometry().left(), "the step runs into 'Speed'"
    assert speed is not None


def _pen_colours(plot):
    return {
        i.opts["pen"].color().name().upper()
        for i in plot.items
        if isinstance(i, pg.PlotDataItem)
        and i.opts.get("pen") is not None
        and i.yData is not None
        and len(i.yData) > 100
    }


def test_compare_overlay_draws_each_run_in_its_colour_with_both_bands_and_names_the_files(window, qtbot, runs):
    w = opened(window, qtbot, runs[0], runs[1])
    view = w.current_view()
    p_var = view.time_plots()[1]
    colours = _pen_colours(p_var)
    assert colours == {style.RUN_COLOURS[0].upper(), style.RUN_COLOURS[1].upper()}
    assert set(style.RUN_COLOURS[:2]) <= set(style.OKABE_ITO.values()), "a colour-blind-safe pair"
    fills = [i for i in p_var.items if isinstance(i, pg.FillBetweenItem)]
    assert {f.brush().color().name().upper() for f in fills} == colours, "B's band is drawn too"
    title = p_var.titleLabel.text
    assert "A: a.h5" in title and "B: b.h5" in title
    w.session.state.update(view="distribution")
    hist_colours = {
        i.opts["pen"].color().name().upper()
        for i in w.current_view()._items and [it for it, _p, _k in w.current_view()._items]
    }
    assert hist_colours == colours


def test_side_by_side_rows_share_the_y_axis_and_titles_do_not_overlap(window, qtbot, runs):
    w = opened(window, qtbot, runs[0], runs[1])
    w.resize(1024, 700)
    w.session.state.update(compare_mode="side")
    qtbot.wait(50)
    plots = w.current_view().time_plots()
    left, right = plots[:6], plots[6:]
    for a, b in zip(left, right):
        assert np.allclose(a.vb.viewRange()[1], b.vb.viewRange()[1]), a.bnviz_title
    titles = [p.titleLabel.sceneBoundingRect() for p in plots]
    for i, r in enumerate(titles):
        for q in titles[i + 1 :]:
            assert not r.intersects(q), "titles print over each other"
    clip = QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape
    assert all(p.titleLabel.flags() & clip for p in plots), "a title's text may not run past its label"
    assert "Run A: a.h5" in w.current_view().note.text() and "Run B: b.h5" in w.current_view().note.text()


def test_distribution_rebuilds_leave_one_activation_curve_on_a_linear_axis(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    w.session.state.update(view="distribution")
    view = w.current_view()
    scene = view.glw.scene()

    def boxes():
        return [i for i in scene.items() if isinstance(i, pg.ViewBox)]

    n = len(boxes())
    w.session.pin_reference()
    w.session.state.update(tensors=("pre", "post"))
    w.session.state.update(log_counts=True)
    qtbot.wait(20)
    assert len(boxes()) == n, "stale activation curves pile up"
    p = view._columns[0][0]
    assert p.getAxis("left").logMode and not p.getAxis("right").logMode
    curve_box = view._curve_boxes[0]
    assert p.vb.sceneBoundingRect().contains(curve_box.sceneBoundingRect().center())
    w.resize(900, 600)
    qtbot.wait(50)
    assert p.vb.sceneBoundingRect().adjusted(-1, -1, 1, 1).contains(curve_box.sceneBoundingRect()), (
        "the activation curve stays inside its plot after a resize"
    )


def test_a_log_y_axis_transforms_bands_like_curves(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    p_var = w.current_view().time_plots()[1]
    p_var.setLogMode(y=True)
    p_var.enableAutoRange(axis="y")
    qtbot.wait(50)
    lo, hi = p_var.vb.viewRange()[1]
    band_hi = max(np.nanmax(w.current_view().tables[""]["pre_var_max"]), 1e-9)
    assert hi < np.log10(band_hi) + 1, f"the y axis ends at 10^{hi:.0f}: a band was not log-transformed"


def _contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio (written out here, independent of the app's colours)."""

    def lum(c):
        q = QtGui.QColor(c)
        ch = [v / 255 for v in (q.red(), q.green(), q.blue())]
        ch = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in ch]
        return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2]

    hi, lo = sorted((lum(fg), lum(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_tree_badges_say_severity_readably_and_groups_show_what_is_below(window, qtbot, runs):
    from bnviz.analysis.findings import Finding

    w = opened(window, qtbot, runs[0])
    layers = [li.path for li in w.session.primary.run.layers]
    mild = Finding(0.3, "drift", layers[0], (), 0, 10, "drifts", 1.0)
    bad = Finding(0.9, "dead", layers[1], (2,), 0, 10, "dies", 1.0)
    worse_kind_milder = Finding(0.6, "nonfinite", layers[1], (), 5, 6, "nan", 1.0)
    w.tree.set_findings([("", mild), ("", bad), ("", worse_kind_milder)])
    leaf0, leaf1 = w.tree._leaves[layers[0]], w.tree._leaves[layers[1]]
    assert leaf1.text(3).split()[0] == "dead", "most severe first, not by kind"
    c0, c1 = leaf0.foreground(3).color().name(), leaf1.foreground(3).color().name()
    assert c0 != c1, "a mild and a severe finding look different"
    base = w.tree.palette().color(QtGui.QPalette.ColorRole.Base).name()
    alt = w.tree.palette().color(QtGui.QPalette.ColorRole.AlternateBase).name()
    for c in (c0, c1):
        assert _contrast(c, base) >= 4.5 and _contrast(c, alt) >= 4.5, c
    group = leaf1.parent()
    assert group is not None
    w.tree.collapseAll()
    assert "dead" in group.text(3) and layers[1] in group.toolTip(3)
    assert group.foreground(3).color().name() == c1


def test_nan_marks_are_not_drawn_in_a_series_colour():
    assert style.NAN_MARK not in style.TENSOR_COLOURS.values()
    assert style.HEATMAP_NAN not in style.TENSOR_COLOURS.values()


def test_a_run_opens_on_its_most_severe_finding_and_a_healthy_one_on_its_first_layer(window, qtbot, runs, tmp_path):
    from bnviz.app.finding_view import VIEW_FOR_KIND

    w = opened(window, qtbot, runs[0], at_trouble=True)
    worst = max(w.findings.items, key=lambda f: f.severity)
    assert w.session.state.layer == worst.layer and w.session.state.view == VIEW_FOR_KIND[worst.kind]
    healthy = tmp_path / "healthy.h5"
    write_synthetic_run(healthy, layers=3, channels=4, steps=60)
    w = opened(window, qtbot, healthy, at_trouble=True)
    assert not w.findings.items
    assert w.session.state.layer == w.session.primary.run.layers[0].path and w.session.state.view == "drift"


def test_a_user_who_moved_on_before_the_findings_came_is_not_moved(window, qtbot, runs):
    w = window
    assert w.open_files(str(runs[0]))
    target = w.session.primary.run.layers[2].path
    w.session.state.update(layer=target, view="channels")
    assert w.findings.wait()
    qtbot.waitUntil(lambda: "analysing" not in w.findings.label.text())
    assert (w.session.state.layer, w.session.state.view) == (target, "channels")


def test_findings_show_whole_messages_without_sideways_scrolling(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    w.split.setSizes([300, 1000])
    qtbot.wait(50)
    table = w.findings.table
    longest = max(range(len(w.findings.items)), key=lambda r: len(w.findings.items[r].message))
    msg_col = table.columnCount() - 1
    assert table.item(longest, msg_col).text() == w.findings.items[longest].message
    assert table.horizontalScrollBar().maximum() == 0 or not table.horizontalScrollBar().isVisible()
    right = table.columnViewportPosition(msg_col) + table.columnWidth(msg_col)
    assert right <= table.viewport().width() + 1, "the message column runs out of the panel"
    fm = table.fontMetrics()
    need = fm.horizontalAdvance(w.findings.items[longest].message)
    if need > table.columnWidth(msg_col):
        assert table.rowHeight(longest) >= 2 * fm.height(), "a long message wraps onto more lines"


@pytest.mark.parametrize("view", ["gamma_beta", "train_eval", "drift", "ranks"])
def test_plots_keep_a_usable_height_in_a_small_window(window, qtbot, runs, view):
    w = opened(window, qtbot, runs[0], runs[1])
    if view == "ranks":
        w.session.state.update(compare_mode="side")
    else:
        w.session.state.update(view=view)
    w.resize(1024, 700)
    qtbot.wait(100)
    for p in w.current_view().time_plots():
        assert p.vb.sceneBoundingRect().height() >= 80, (view, p.bnviz_title)


def test_the_readout_is_never_cut(window, qtbot, runs):
    w = opened(window, qtbot, runs[0], runs[1])
    w.resize(1024, 700)
    qtbot.wait(50)
    label = w.readout
    assert label.text().startswith("step ")
    assert label.heightForWidth(label.width()) <= label.height(), "the readout's text does not fit"
