"""Plots that stay fast on big runs, the hover crosshair, heatmap colour limits and per-plot
log-y (issue 14 items 4-6)."""

from __future__ import annotations

import cProfile
import pstats

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtWidgets

from bnviz.app import render  # noqa: F401  (applies the PySide6 refcount guard first)
from bnviz.app.views.distribution import grown_span
from bnviz.app.views.layers import ENVELOPE_BUCKETS
from bnviz.store.synthetic import PATHOLOGIES, write_synthetic_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("plots") / "a.h5"
    write_synthetic_run(path, layers=6, channels=8, steps=300, eval_every=50, pathologies=PATHOLOGIES)
    return path


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("plots") / "long.h5"
    write_synthetic_run(path, layers=3, channels=2, steps=9000, flush_rows=2048, channel_every=500, hist_every=500)
    return path


@pytest.fixture
def w(window, qtbot, run):
    assert window.open_files(str(run)), window.last_error
    assert window.findings.wait()
    window.session.state.update(layer=window.session.primary.run.layers[0].path, view="drift", step=299)
    return window


def test_grown_span_only_grows():
    assert grown_span(None, 0.0, 10.0, 0.1) == (-1.0, 11.0)
    assert grown_span((-1.0, 11.0), 2.0, 9.0, 0.1) is None, "inside: the axis stays"
    lo, hi = grown_span((-1.0, 11.0), -5.0, 9.0, 0.1)
    assert lo < -5.0 and hi == 11.0, "only the end that grew moves"


def test_a_cursor_move_repaints_no_cached_curve(window, qtbot, tmp_path):
    """Every layer's curve of the across-layers view stays in Qt's pixmap cache, so a cursor move
    (and even a whole repaint) copies pixels instead of stroking 24 curves again."""
    path = tmp_path / "many.h5"
    write_synthetic_run(path, layers=24, channels=2, steps=300, probes=0, pathologies=PATHOLOGIES)
    assert window.open_files(str(path)), window.last_error
    window.resize(1600, 1000)
    window.session.state.update(view="layers")
    view = window.current_view()
    qtbot.wait(10)
    view.glw.viewport().repaint()
    profile = cProfile.Profile()  # counts the strokes (Qt calls paint() of each uncached item)
    profile.enable()
    for step in (50, 150, 250):
        window.session.state.update(step=step)
        QtWidgets.QApplication.processEvents()
        view.glw.viewport().repaint()
    profile.disable()
    strokes = sum(
        calls
        for (file, _line, fn), (calls, *_rest) in pstats.Stats(profile).stats.items()  # type: ignore[attr-defined]
        if fn == "paint" and file.endswith("PlotCurveItem.py")
    )
    curves = [i for i in view.time_plots()[0].items if isinstance(i, pg.PlotDataItem)]
    assert len(curves) == 24
    assert strokes == 0, f"{strokes} curve strokes on 3 cursor moves"


def test_distribution_axes_only_grow_as_the_cursor_moves(w, qtbot):
    w.session.state.update(view="distribution", tensors=("pre",), step=0)
    view = w.current_view()
    plot = view.glw.ci.getItem(0, 0)
    spans = []
    for step in range(0, 300, 10):
        w.session.state.update(step=step)
        (x0, x1), (y0, y1) = plot.vb.viewRange()
        t = view.tables[""]
        assert x0 <= t["pre_lo"].min() and t["pre_hi"].max() <= x1, "the histogram is in view"
        assert y0 == 0 and np.nanmax(t["pre_density"]) <= y1
        spans.append((x0, x1, y1))
    for (a0, a1, ay), (b0, b1, by) in zip(spans, spans[1:]):
        assert b0 <= a0 and b1 >= a1 and by >= ay, "an axis shrank while the cursor moved"
    w.session.state.update(layer=w.session.primary.run.layers[1].path)
    assert view.glw.ci.getItem(0, 0).vb.viewRange()[0] != spans[-1][:2], "a new layer starts afresh"


def test_across_layers_draws_envelopes_that_keep_every_spike(window, qtbot, long_run):
    assert window.open_files(str(long_run)), window.last_error
    run = window.session.primary.run
    window.session.state.update(view="layers", layers_metric="pre_var", layer=run.layers[1].path)
    view = window.current_view()
    curves = [i for i in view.time_plots()[0].items if isinstance(i, pg.PlotDataItem)]
    train = run.phases == 0
    assert train.sum() > 2 * ENVELOPE_BUCKETS
    for li, c in zip(run.layers, curves):
        full = np.asarray(run.summary(li.path, "pre_var"), np.float64)[train]
        assert len(c.yData) <= 2 * ENVELOPE_BUCKETS, "the view holds an envelope, not the full series"
        assert np.nanmax(c.yData) == np.nanmax(full) and np.nanmin(c.yData) == np.nanmin(full)
    kept = {k for t in view.tables.values() for k in t}
    assert kept == {"step", run.layers[1].path}, "only the selected layer's full series is kept (readout)"
    assert set(view.export_table()) == {"step", *(li.path for li in run.layers)}


# --- hover readout -------------------------------------------------------------------------------


def test_read_at_takes_the_nearest_sample_and_an_envelopes_range():
    from bnviz.app.views.crosshair import Series, read_at

    x = np.array([0.0, 10.0, 20.0, 30.0])
    y = np.array([1.0, 2.0, np.nan, 4.0])
    env_x = np.repeat([0.0, 100.0], 2)
    env_y = np.array([-1.0, 5.0, 7.0, 3.0])
    got = read_at(12.0, [Series("a", "#000", x, y, y, raw=y * 10), Series("e", "#111", env_x, env_y, env_y)])
    assert [(r.name, r.step, r.lo, r.hi, r.raw) for r in got] == [
        ("a", 10.0, 2.0, 2.0, 20.0),
        ("e", 0.0, -1.0, 5.0, None),
    ]
    assert np.isnan(read_at(21.0, [Series("a", "#000", x, y, y)])[0].lo), "NaN is read as NaN"
    assert read_at(95.0, [Series("a", "#000", x, y, y)]) == [], "past a series' end: left out"


def hover(view, plot, step, y):
    """Move the mouse over ``plot`` at (step, y) as Qt would, and let the readout draw."""
    from PySide6 import QtCore
    from PySide6.QtTest import QTest

    scene_pt = plot.vb.mapViewToScene(QtCore.QPointF(step, y))
    QTest.mouseMove(view.glw.viewport(), view.glw.mapFromScene(scene_pt))
    QtWidgets.QApplication.processEvents()
    QTest.qWait(view.hover.RATE_MS * 3)
    QtWidgets.QApplication.processEvents()


def test_hovering_a_time_plot_shows_every_series_at_that_step(w, qtbot):
    w.session.state.update(view="drift")
    view = w.current_view()
    qtbot.waitUntil(lambda: view.time_plots() and view.isVisible())
    p_mean = view.time_plots()[0]
    hover(view, p_mean, 120, float(np.mean(p_mean.vb.viewRange()[1])))
    label = view.hover.label
    assert label.isVisible()
    t = view.tables[""]
    i = int(np.argmin(np.abs(t["step"] - 120)))
    text = label.text()
    assert f"step {int(t['step'][i])}" in text
    assert f"mean: {render_fmt(t['pre_mean'][i])}" in text
    lo, hi = t["pre_mean_min"][i], t["pre_mean_max"][i]
    assert f"{render_fmt(lo)} … {render_fmt(hi)}" in text, "the band as its range"
    hairs = view.hover.crosshairs
    assert all(c.vline.isVisible() and c.vline.value() == t["step"][i] for c in hairs), "a step line in every plot"
    assert [c.hline.isVisible() for c in hairs].count(True) == 1, "the value line in the hovered plot only"
    w.session.state.update(crosshair=False)
    hover(view, p_mean, 200, float(np.mean(p_mean.vb.viewRange()[1])))
    assert not label.isVisible() and not any(c.vline.isVisible() for c in view.hover.crosshairs)


def render_fmt(v):
    from bnviz.app.views.drawing import fmt

    return fmt(float(v))


def test_hover_survives_rebuilds_between_moves(w, qtbot):
    """Smoothing changes and bookmarks rebuild the plots while the mouse moves over them: the
    crosshairs of the old plots are dropped with them, the new plots get their own, and no
    item is added to or removed from a scene by a mouse move."""
    w.session.state.update(view="gamma_beta")
    view = w.current_view()
    for k in range(12):
        p = view.time_plots()[k % len(view.time_plots())]
        hover(view, p, 20 + 20 * k, float(np.mean(p.vb.viewRange()[1])))
        before = {id(i) for i in view.glw.scene().items()}
        hover(view, p, 25 + 20 * k, float(np.mean(p.vb.viewRange()[1])))
        assert {id(i) for i in view.glw.scene().items()} == before, "a mouse move changed the scene's items"
        if k % 2:
            w.session.state.update(smoothing=0.1 * (k % 9))
        else:
            w.session.toggle_bookmark()
    assert len(view.hover.crosshairs) == len(view.time_plots())
    assert all(c.alive() for c in view.hover.crosshairs)


# --- heatmap colour limits -----------------------------------------------------------------------


def test_colour_scale_maths():
    from bnviz.app.colour_scale import colour_levels, robust_limits, shown_values

    v = np.concatenate([np.linspace(0, 1, 1000), [1e6, np.nan]])
    lo, hi = robust_limits(v, signed=False)
    assert 0 <= lo < 0.02 and 0.98 < hi < 1.0, "one outlier does not set the top"
    assert robust_limits(np.array([-3.0, 1.0, 2.0]), signed=True)[0] == -robust_limits(np.array([-3.0, 1, 2]), True)[1]
    logged = shown_values(np.array([0.0, -1.0, 0.01, 100.0, np.nan]), log=True)
    np.testing.assert_array_equal(logged[:4], [-2.0, -2.0, -2.0, 2.0])  # <= 0: the lowest positive's colour
    assert np.isnan(logged[4]), "NaN stays NaN (its own colour)"
    assert colour_levels(v, False, (0.5, 2.0), log=False) == (0.5, 2.0)
    assert colour_levels(v, False, (0.1, 10.0), log=True) == (-1.0, 1.0)


def test_view_state_keeps_colour_limits_and_log_axes(tmp_path):
    from bnviz.app.state import Layout, ViewState

    st = ViewState(colour_limits={"channels/pre_var": [0, 2]}, colour_log=["history/post"], log_y=["drift/1"])
    back = Layout.from_json(Layout(["a.h5"], st).to_json()).state
    assert back == st and back.colour_limits == {"channels/pre_var": (0.0, 2.0)}
    with pytest.raises(ValueError, match="low limit must be below"):
        ViewState(colour_limits={"channels/pre_var": [2, 1]})
    with pytest.raises(ValueError, match="finite"):
        ViewState().update(colour_limits={"overview/drift": [0, float("inf")]})


def heatmap_of(view):
    assert len(view.ink.maps) >= 1
    return view.ink.maps[0]


@pytest.mark.parametrize("view_name", ["channels", "history", "overview"])
def test_heatmap_colour_limits_manual_and_log(w, qtbot, view_name):
    st = w.session.state
    st.update(view=view_name, channel_metric="pre_var")
    view = w.current_view()
    m = heatmap_of(view)
    key = view.heatmap_key()
    auto = m.bar.levels()
    finite = m.values[np.isfinite(m.values)]
    np.testing.assert_allclose(auto, np.percentile(finite, [1, 99]), rtol=1e-9)
    assert m.bar.axis.autoSIPrefixScale == 1.0, "the bar's ticks are the values, not rescaled"
    # the control: manual starts from what is shown; typed limits apply
    view.colour.mode.setCurrentIndex(1)
    assert st.colour_limits[key] == pytest.approx(auto)
    view.colour.lo.setText("0.25")
    view.colour.hi.setText("0.75")
    view.colour.hi.editingFinished.emit()
    assert st.colour_limits[key] == (0.25, 0.75)
    assert heatmap_of(view).bar.levels() == (0.25, 0.75)
    assert "manual" in heatmap_of(view).bar.axis.labelText
    assert not view.colour.lo.isHidden()
    view.colour.log.setChecked(True)
    assert key in st.colour_log
    m = heatmap_of(view)
    shown = m.img.image
    expect = np.log10(np.maximum(m.values, m.values[np.isfinite(m.values) & (m.values > 0)].min()))
    np.testing.assert_allclose(shown[np.isfinite(m.values)], expect[np.isfinite(m.values)], rtol=1e-5)
    assert m.bar.levels() == pytest.approx((np.log10(0.25), np.log10(0.75)))
    view.colour.mode.setCurrentIndex(0)
    assert key not in st.colour_limits
    st.update(view="drift")
    st.update(view=view_name)  # a rebuild draws from the state again
    assert heatmap_of(w.current_view()).log and heatmap_of(w.current_view()).auto


def test_a_signed_statistic_offers_no_log_colours(w):
    w.session.state.update(view="channels", channel_metric="pre_mean")
    view = w.current_view()
    assert not view.colour.log.isEnabled()
    w.session.state.update(colour_log=("channels/pre_mean",))
    assert not heatmap_of(view).log, "log of signed data is not drawn"


# --- per-plot log y ------------------------------------------------------------------------------


def test_each_plot_has_its_own_log_y_in_the_state(w, qtbot):
    st = w.session.state
    st.update(view="drift")
    view = w.current_view()
    plots = view.time_plots()
    assert not any(p.ctrl.logYCheck.isChecked() for p in plots)
    plots[1].ctrl.logYCheck.setChecked(True)  # its menu: Plot Options > Transforms > Log Y
    qtbot.waitUntil(lambda: st.log_y == ("drift/1",))
    plots = view.time_plots()
    assert [p.ctrl.logYCheck.isChecked() for p in plots] == [i == 1 for i in range(len(plots))]
    assert plots[1].vb.state["logMode"][1]
    st.update(view="gamma_beta")
    assert not any(p.ctrl.logYCheck.isChecked() for p in w.current_view().time_plots()), "per view"
    st.update(view="drift")
    first = w.current_view().time_plots()[0]
    hover(w.current_view(), first, 100, float(np.mean(first.vb.viewRange()[1])))
    w.actions["log_y"].trigger()  # L: the plot under the mouse
    assert set(st.log_y) == {"drift/0", "drift/1"}
    st.update(log_y=())
    assert not any(p.ctrl.logYCheck.isChecked() for p in w.current_view().time_plots())


def view_from_state(state, path):
    """The view as ``bnviz export`` draws it (``render_view``), kept for inspection."""
    from bnviz.app.session import Session
    from bnviz.app.state import ViewState
    from bnviz.app.views import VIEW_CLASSES

    session = Session(ViewState.from_dict(state.to_dict()))
    session.open(str(path), None)
    view = VIEW_CLASSES[session.state.view](session)
    view.resize(900, 600)
    view.show()
    view.rebuild()
    return view, session


def test_export_honours_colour_limits_and_log_y(run, tmp_path, qapp):
    from bnviz.export import ExportError, _look, _state, export

    look = _look("history", (0.1, 0.9), True, ())
    state = _state("history", None, None, look)
    view, session = view_from_state(state, run)
    try:
        m = heatmap_of(view)
        assert m.log and m.bar.levels() == pytest.approx((-1.0, np.log10(0.9)))
    finally:
        view.close()
        session.close()
    view, session = view_from_state(_state("drift", None, None, _look("drift", None, False, (2, 6))), run)
    try:
        assert [p.ctrl.logYCheck.isChecked() for p in view.time_plots()] == [i in (1, 5) for i in range(6)]
    finally:
        view.close()
        session.close()
    out = export(run, tmp_path / "c.png", view="channels", layer="layer1.0.bn1", colour_limits=(0, 1))
    assert out[0].stat().st_size > 0
    with pytest.raises(ExportError, match="heatmaps"):
        export(run, tmp_path / "d.png", view="drift", colour_limits=(0, 1))
    with pytest.raises(ExportError, match="below"):
        export(run, tmp_path / "d.png", view="overview", colour_limits=(1, 0))
