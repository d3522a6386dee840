"""The everyday controls users bring from TensorBoard, PlotJuggler and napari (issue 14)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtWidgets

from bnviz.app import render  # noqa: F401  (applies the PySide6 refcount guard first)
from bnviz.app.shortcuts import cheatsheet_text, shortcuts
from bnviz.app.state import VIEWS, Layout, ViewState
from bnviz.app.views.drawing import ema
from bnviz.store.synthetic import PATHOLOGIES, write_synthetic_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("controls") / "a.h5"
    write_synthetic_run(path, layers=6, channels=8, steps=300, eval_every=50, pathologies=PATHOLOGIES)
    return path


@pytest.fixture
def w(window, qtbot, run):
    assert window.open_files(str(run)), window.last_error
    assert window.findings.wait()
    qtbot.waitUntil(lambda: "analysing" not in window.findings.label.text())
    window.session.state.update(layer=window.session.primary.run.layers[0].path, view="drift", step=299)
    return window


def test_every_tab_says_what_it_shows(w):
    for i in range(w.tabs.count()):
        assert len(w.tabs.tabToolTip(i)) > 20, w.tabs.tabText(i)


def test_go_to_step(w, qtbot):
    w.actions["go_to_step"].trigger()
    box = w.step_box
    box.setIntValue(123)
    box.accept()
    assert w.session.cursor_step() == 123 and not w.session.state.follow_latest


def test_next_and_previous_layer_follow_the_filter(w, qtbot):
    names = [li.path for li in w.session.primary.run.layers]
    w.actions["next_layer"].trigger()
    assert w.session.state.layer == names[1]
    w.actions["prev_layer"].trigger()
    w.actions["prev_layer"].trigger()
    assert w.session.state.layer == names[-1], "wraps around"
    w.tree.filter_box.setText("bn2")
    shown = [n for n in names if "bn2" in n]
    assert w.session.state.layer_filter == "bn2"
    assert [p for p, leaf in w.tree._leaves.items() if not leaf.isHidden()] == shown
    w.session.state.update(layer=shown[0])
    w.actions["next_layer"].trigger()
    assert w.session.state.layer == shown[1]
    w.session.state.update(layer_filter="layer3.*")
    assert w.tree.filter_box.text() == "layer3.*"
    visible = [p for p, leaf in w.tree._leaves.items() if not leaf.isHidden()]
    assert visible and all(p.startswith("layer3.") for p in visible)
    hidden_groups = [g for g in w.tree._groups if g.isHidden()]
    assert hidden_groups, "groups with no matching layer are hidden"


def test_next_and_previous_finding(w):
    items = w.findings.items
    assert len(items) >= 2
    w.actions["next_finding"].trigger()
    assert w.findings.table.currentRow() == 0 and w.session.state.layer == items[0].layer
    w.actions["next_finding"].trigger()
    assert w.findings.table.currentRow() == 1 and w.session.state.layer == items[1].layer
    w.actions["prev_finding"].trigger()
    assert w.findings.table.currentRow() == 0


def test_bookmarks_are_drawn_jumped_to_and_saved_in_layouts(w, tmp_path):
    se = w.session
    for step in (50, 200):
        se.go_to(step)
        w.actions["bookmark"].trigger()
    assert se.state.bookmarks == (50, 200)
    lines = [
        i
        for p in w.current_view().time_plots()
        for i in p.items
        if isinstance(i, pg.InfiniteLine) and "bookmark" in (i.toolTip() or "")
    ]
    assert len(lines) == 2 * len(w.current_view().time_plots())
    se.go_to(120)
    w.actions["next_bookmark"].trigger()
    assert se.cursor_step() == 200
    w.actions["prev_bookmark"].trigger()
    assert se.cursor_step() == 50
    w.actions["bookmark"].trigger()
    assert se.state.bookmarks == (200,)
    path = tmp_path / "layout.json"
    w.save_layout(str(path))
    assert Layout.from_json(path.read_text()).state.bookmarks == (200,)


def test_copy_puts_the_view_on_the_clipboard(w, qtbot):
    QtWidgets.QApplication.clipboard().clear()
    w.actions["copy"].trigger()
    image = QtWidgets.QApplication.clipboard().image()
    view = w.current_view()
    assert not image.isNull() and image.width() == view.glw.width()
    assert "Copied" in w.banner.text()


def test_ema_is_tensorboards_debiased_average():
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    weight = 0.8
    # closed form: sum_j w^(i-j) (1-w) y_j over the first i+1 points, over 1 - w^(i+1)
    expected = [
        sum(weight ** (i - j) * (1 - weight) * y[j] for j in range(i + 1)) / (1 - weight ** (i + 1))
        for i in range(len(y))
    ]
    np.testing.assert_allclose(ema(y, weight), expected, rtol=1e-12)
    with_nan = y.copy()
    with_nan[10] = np.nan
    out = ema(with_nan, weight)
    assert np.isnan(out[10]) and np.isfinite(out[11])
    np.testing.assert_allclose(ema(y, 0.0), y)


def test_smoothing_draws_the_raw_curve_faint_under_the_average(w, qtbot):
    view = w.current_view()
    p = view.time_plots()[1]
    before = len([i for i in p.items if isinstance(i, pg.PlotDataItem)])
    w.options.smooth.setValue(60)
    assert w.session.state.smoothing == 0.6
    p = w.current_view().time_plots()[1]
    items = [i for i in p.items if isinstance(i, pg.PlotDataItem)]
    faint = [i for i in items if i.opacity() < 1]
    assert len(items) == before + 1 and len(faint) == 1
    raw, smooth = faint[0].yData, [i for i in items if i.opacity() == 1 and len(i.yData) == len(faint[0].yData)]
    assert smooth and np.std(np.diff(smooth[-1].yData)) < np.std(np.diff(raw))


def test_y_fits_the_visible_steps(w, qtbot):
    view = w.current_view()
    p = view.time_plots()[0]  # pre-BN mean: the synthetic drift makes late steps differ from early
    qtbot.wait(50)
    whole = p.vb.viewRange()[1]
    w.session.zoom((0, 30))
    qtbot.wait(50)
    part = p.vb.viewRange()[1]
    assert part[1] - part[0] < whole[1] - whole[0]


def test_new_state_fields_validate_and_round_trip():
    s = ViewState(smoothing=0.5, layer_filter="bn1", bookmarks=(30, 10, 30))
    assert s.bookmarks == (10, 30)
    assert ViewState.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="smoothing"):
        ViewState(smoothing=1.0)


def test_the_cheatsheet_lists_the_new_keys(w):
    text = cheatsheet_text(shortcuts(w))
    for key in ("Ctrl+G", "B", "]", "N", "Ctrl+F", "Ctrl+Shift+C"):
        assert f"\n{key} " in text or text.startswith(f"{key} ") or f"\n{key}" in text, key
    assert len(VIEWS) == w.tabs.count()


def test_the_viewer_docs_list_every_key(w):
    from pathlib import Path

    page = (Path(__file__).parent.parent / "docs" / "viewer.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| ") and "---" not in line]
    keyed = " ".join(r.split("|")[1] for r in rows)
    views = {str(i + 1) for i in range(len(VIEWS))}
    for sc in shortcuts(w):
        for key in sc.keys:
            if key in views:
                continue  # "1 … 7"
            assert key in keyed, f"docs/viewer.md does not list {key} ({sc.text})"


def test_the_export_command_knows_every_view():
    from bnviz.export import VIEWS as CLI_VIEWS

    assert CLI_VIEWS == tuple(v.replace("_", "-") for v in VIEWS)


class _TwoHistograms:
    """A run with two histogram rows of different ranges: uniform on [0, 1], then on [0, 2]."""

    hist_steps = np.array([10, 20])
    hist_phases = np.array([0, 0])

    def hist_block(self, layer, tensor, rows):
        nb = 64
        counts = np.zeros((2, nb + 3), np.int64)
        counts[:, :nb] = 100
        return counts[rows], np.array([[0.0, 1.0], [0.0, 2.0]])[rows]


def test_histograms_through_time_are_rebinned_onto_one_grid():
    from bnviz.app.data import distribution_history

    steps, edges, density = distribution_history(_TwoHistograms(), "x", "post", bins=8)
    assert list(steps) == [10, 20]
    np.testing.assert_allclose(edges, np.linspace(0, 2, 9))
    np.testing.assert_allclose(density[0], [1, 1, 1, 1, 0, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(density[1], np.full(8, 0.5), atol=1e-12)
    np.testing.assert_allclose((density * np.diff(edges)).sum(axis=1), [1, 1])


def test_the_distribution_through_time_view_draws_a_heatmap_with_the_zone_and_ridgelines(w, qtbot):
    w.session.state.update(view="history", history_tensor="post")
    view = w.current_view()
    assert view.time_plots(), "the heatmap has steps on x: cursor and linked zoom"
    p = view.time_plots()[0]
    images = [i for i in p.items if isinstance(i, pg.ImageItem)]
    hist_rows = len(w.session.primary.run.hist_rows("train"))
    assert images and images[0].image.shape[0] == hist_rows
    zone = [i for i in p.items if isinstance(i, pg.LinearRegionItem)]
    assert zone and zone[0].orientation == "horizontal", "the activation's zone is marked on the value axis"
    w.session.state.update(history_mode="ridgelines")
    view = w.current_view()
    assert not view.time_plots()
    plot = view.glw.ci.getItem(0, 0)
    ridges = [i for i in plot.items if isinstance(i, pg.PlotDataItem)]
    assert len(ridges) == min(24, hist_rows)
    assert "mean≈" in w.readout.text()


def test_several_layers_share_one_plot_chosen_by_the_filter(w, qtbot):
    run = w.session.primary.run
    w.session.state.update(view="layers", layers_metric="pre_var")
    view = w.current_view()
    p = view.time_plots()[0]
    curves = [i for i in p.items if isinstance(i, pg.PlotDataItem) and i.yData is not None and len(i.yData)]
    assert len(curves) == len(run.layers)
    train = run.phases == 0
    table = view.export_table()  # the CSV: every drawn layer's full column
    for li in run.layers:
        np.testing.assert_allclose(table[li.path], np.asarray(run.summary(li.path, "pre_var"))[train])
    assert len({c.opts["pen"].color().name() for c in curves}) == len(run.layers), "a colour per layer"
    w.session.state.update(layer_filter="*bn2")
    wanted = [li.path for li in run.layers if li.path.endswith("bn2")]
    assert [k for k in w.current_view().export_table() if k != "step"] == wanted


def test_a_dark_desktop_gets_dark_plots_and_a_light_cursor(qtbot, tmp_path):
    from PySide6 import QtGui

    from bnviz.app import style
    from bnviz.app.main_window import MainWindow

    app = QtWidgets.QApplication.instance()
    light = app.palette()
    dark = QtGui.QPalette(light)
    dark.setColor(QtGui.QPalette.ColorRole.Window, QtGui.QColor("#202020"))
    app.setPalette(dark)
    try:
        w = MainWindow(QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat))
        qtbot.addWidget(w)
        assert pg.getConfigOption("background") == style.DARK_BACKGROUND
        assert style.CURSOR == "#FFFFFF"
        w.close()
    finally:
        app.setPalette(light)
        style.configure()
    assert pg.getConfigOption("background") == "w" and style.CURSOR == style.OKABE_ITO["black"]


def test_the_time_axis_can_show_elapsed_wall_time(w, qtbot):
    from bnviz.app.views.base import WallTimeAxis, elapsed

    assert (elapsed(59.6), elapsed(61), elapsed(3725)) == ("1:00", "1:01", "1:02:05")
    w.actions["x_axis"].trigger()
    assert w.session.state.x_axis == "time"
    p = w.current_view().time_plots()[0]
    axis = p.getAxis("bottom")
    assert isinstance(axis, WallTimeAxis)
    run = w.session.primary.run
    t = np.asarray(run.times, np.float64)
    s = np.asarray(run.steps, np.float64)
    expected = elapsed(float(np.interp(100, s, t - t[0])))
    assert axis.tickStrings([100.0], 1, 10) == [expected]
    w.actions["x_axis"].trigger()
    assert not isinstance(w.current_view().time_plots()[0].getAxis("bottom"), WallTimeAxis)
