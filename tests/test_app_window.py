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
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from bnviz.app import render  # noqa: F401  (applies the PySide6 refcount guard first)
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


def opened(w, qtbot, path, compare=None):
    assert w.open_files(str(path), str(compare) if compare else None), w.last_error
    assert w.findings.wait()
    qtbot.waitUntil(lambda: "Findings:" in w.findings.label.text() and "analysing" not in w.findings.label.text())
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
    w.cheatsheet.close()


def test_play_advances_and_stops_at_the_end(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    w.session.state.update(step=int(w.session.steps[-30]), loop=False, speed=5)
    w.timeline.toggle_play()
    assert w.timeline.timer.isActive()
    qtbot.waitUntil(lambda: not w.timeline.timer.isActive(), timeout=5000)
    assert w.session.cursor_step() == int(w.session.steps[-1])


def test_reference_step_overlays_the_distribution(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    w.session.state.update(view="distribution", step=250)
    n_now = len(w.current_view()._items)
    w.session.state.update(step=40)
    w.timeline.pin_reference()
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


def test_linked_zoom_and_the_strip_region_set_the_detail_range(window, qtbot, runs):
    w = opened(window, qtbot, runs[0])
    view = w.current_view()
    view.time_plots()[0].setXRange(50, 120, padding=0)
    assert w.session.state.step_range == (50, 120)
    w.session.state.update(link_zoom=False)
    view.time_plots()[0].setXRange(10, 20, padding=0)
    assert w.session.state.step_range == (50, 120)
    w.strip.region.setRegion((30, 60))
    w.strip.region.sigRegionChangeFinished.emit(w.strip.region)
    assert w.session.state.step_range == (30, 60)
    x0, x1 = view.time_plots()[-1].vb.viewRange()[0]
    assert (round(x0), round(x1)) == (30, 60)


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
    assert not w.tree._leaves[f.layer].text(3), "A's tree gets no badge for B's finding"
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
        assert len(v._bars) == 2 and v._bars[0].levels() == v._bars[1].levels(), view
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
    w.session.state.update(view="channels", channel_metric="gamma", step=77)
    w.save_layout(str(tmp_path / "l.json"))
    w.session.state.update(view="drift", step=5)
    w.close_compare()
    w.load_layout(str(tmp_path / "l.json"))
    assert w.session.compare is not None
    assert (w.session.state.view, w.session.state.channel_metric, w.session.state.step) == ("channels", "gamma", 77)


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
    assert w2.recent_files()[:2] == [str(runs[0]), str(runs[1])]
    assert [a.text() for a in w2.recent_menu.actions()][:2] == [str(runs[0]), str(runs[1])]
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
    assert window.session.compare is not None and window.session.primary.path == str(runs[0])


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
    assert w.info_box.textFormat() == QtCore.Qt.TextFormat.PlainText
    w.info_box.close()


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


def test_main_refuses_too_many_files(capsys):
    from bnviz.app import main

    with pytest.raises(SystemExit) as e:
        main(["a.h5", "b.h5", "c.h5"])
    assert e.value.code == 2 and "at most two" in capsys.readouterr().err


def test_options_bar_and_state_stay_in_step(window, qtbot, runs):
    w = opened(window, qtbot, runs[0], runs[1])
    bar = w.options
    assert bar.compare.isVisible()
    bar.phase.setCurrentIndex(bar.phase.findData("all"))
    assert w.session.state.phase == "all"
    assert len(w.current_view().tables["A"]["step"]) == len(w.session.steps)
    w.session.state.update(compare_mode="side", link_zoom=False)
    assert bar.compare.currentData() == "side" and not bar.link.isChecked()
    w.close_compare()
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
