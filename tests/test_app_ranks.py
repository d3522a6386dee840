"""The Ranks view of a distributed job's recording (pytest-qt, off screen)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from bnviz.analysis.ranks import channel_divergence, rank_divergence
from bnviz.app import render
from bnviz.app.state import VIEWS, ViewState
from bnviz.store.ranks import rank_path
from bnviz.store.synthetic import write_synthetic_run

WORLD = 3
RANKS_TAB = VIEWS.index("ranks")


def write_job(base, world=WORLD, skip=()):
    for r in range(world):
        if r not in skip:
            write_synthetic_run(
                rank_path(base, r),
                layers=3,
                channels=6,
                steps=80,
                seed=r,
                meta={"rank": r, "world_size": world, "local_rank": r, "dist_backend": "gloo", "job_id": "j"},
            )
    return base


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    return write_job(tmp_path_factory.mktemp("job") / "job.h5")


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    path = tmp_path_factory.mktemp("single") / "one.h5"
    write_synthetic_run(path, layers=3, channels=6, steps=80)
    return path


def opened(w, path):
    assert w.open_files(str(path)), w.last_error
    return w


def curves(plot):
    return [i for i in plot.listDataItems() if len(i.xData)]


def test_the_ranks_tab_shows_only_for_a_job_of_several_ranks(window, job, single):
    w = opened(window, single)
    assert not w.tabs.isTabVisible(RANKS_TAB) and not w.actions["view_ranks"].isEnabled()
    assert w.status["ranks"].text() == ""
    opened(w, job)
    assert w.tabs.isTabVisible(RANKS_TAB) and w.actions["view_ranks"].isEnabled()
    assert w.status["ranks"].text() == f"ranks: {WORLD}"
    w.session.state.update(view="ranks")
    assert w.tabs.currentIndex() == RANKS_TAB
    opened(w, single)  # a single process has no Ranks view to stay on
    assert w.session.state.view == "drift" and not w.tabs.isTabVisible(RANKS_TAB)


def test_one_curve_per_rank_and_the_spreads_of_the_analysis(window, job):
    w = opened(window, job)
    layer = w.session.primary.run.layers[1].path
    w.session.state.update(view="ranks", layer=layer)
    view = w.current_view()
    p_mean, p_spread, p_channel = view.time_plots()
    assert len(curves(p_mean)) == WORLD
    assert [f"rank {r}" in p_mean.titleLabel.text for r in range(WORLD)] == [True] * WORLD
    assert len(curves(p_spread)) == 2 and len(curves(p_channel)) == 1
    runs = w.session.primary.ranks
    steps, spread = rank_divergence(runs, "pre_mean", layer)
    np.testing.assert_allclose(curves(p_spread)[0].yData, spread)
    steps, spread = channel_divergence(runs, layer)
    np.testing.assert_allclose(curves(p_channel)[0].yData, spread)
    assert "random sampling alone" in p_channel.titleLabel.text


def test_the_cursor_moves_in_the_ranks_plots_and_the_readout_follows(window, job):
    w = opened(window, job)
    w.session.state.update(view="ranks")
    view = w.current_view()
    w.session.state.update(step=33)
    assert all(c.value() == 33 for c in view._cursors) and len(view._cursors) == 3
    view._cursors[1].setValue(12)
    view._cursors[1].sigDragged.emit(view._cursors[1])
    assert w.session.state.step == 12
    _, spread = rank_divergence(w.session.primary.ranks, "pre_mean", w.session.state.layer)
    assert w.readout.text().startswith("step 12: mean spread") and f"{spread[12]:.4g}" in w.readout.text()


def test_ranks_csv_holds_the_numbers_of_rank_divergence_in_the_shown_range(job, tmp_path, qapp):
    out = tmp_path / "ranks.csv"
    render.render_view(job, out, ViewState(view="ranks", layer="layer2.1.bn2", step_range=(20, 50)))
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    from bnviz.store import open_run

    with open_run(job) as run:
        steps, mean_spread = rank_divergence(run.ranks, "pre_mean", "layer2.1.bn2")
        _, var_spread = rank_divergence(run.ranks, "pre_var", "layer2.1.bn2")
        keep = (steps >= 20) & (steps <= 50)
        assert [int(r["step"]) for r in rows] == steps[keep].tolist()
        np.testing.assert_allclose([float(r["pre_mean_spread"]) for r in rows], mean_spread[keep])
        np.testing.assert_allclose([float(r["pre_var_spread"]) for r in rows], var_spread[keep])
        for rank, other in enumerate(run.ranks):
            np.testing.assert_allclose(
                [float(r[f"rank{rank}_pre_mean"]) for r in rows],
                other.summary("layer2.1.bn2", "pre_mean")[keep],
                rtol=1e-6,
            )
    for ext in (".png", ".svg"):
        render.render_view(job, tmp_path / f"ranks{ext}", ViewState(view="ranks"))
        assert (tmp_path / f"ranks{ext}").stat().st_size > 1000


def test_a_missing_rank_file_is_named_in_the_banner(window, tmp_path):
    base = write_job(tmp_path / "run.h5", world=4, skip=(2,))
    w = opened(window, base)
    assert "rank 2: run.rank2.h5 is missing" in w.banner.text().lower() and w.banner.isVisible()
    assert w.status["ranks"].text() == "ranks: 3 of 4"
    w.session.state.update(view="ranks")
    assert len(curves(w.current_view().time_plots()[0])) == 3


def test_a_job_where_rank_0_alone_recorded_is_one_run_with_nothing_missing(window, tmp_path, capsys):
    from bnviz import cli

    path = tmp_path / "zero.h5"
    meta = {
        "rank": 0,
        "world_size": 4,
        "local_rank": 0,
        "dist_backend": "gloo",
        "job_id": "j",
        "recorded_ranks": "zero",
    }
    write_synthetic_run(path, layers=3, channels=6, steps=40, meta=meta)
    w = opened(window, path)
    assert not w.banner.isVisible() and not w.tabs.isTabVisible(RANKS_TAB)
    assert w.status["ranks"].text() == "rank 0 of 4"
    assert cli.main(["info", str(path)]) == 0
    assert "a job of 4: rank 0 alone recorded" in capsys.readouterr().out


def test_a_ranks_finding_opens_the_ranks_view_on_its_layer(window, job):
    w = opened(window, job)
    assert w.findings.wait()
    rows = [i for i, f in enumerate(w.findings.items) if f.kind == "ranks_disagree"]
    assert rows, "the synthetic ranks draw different data: the findings must say so"
    layer = w.findings.items[rows[-1]].layer
    w.session.state.update(layer=w.session.primary.run.layers[0].path, view="drift")
    w.findings._clicked(rows[-1], 2)
    assert (w.session.state.layer, w.session.state.view) == (layer, "ranks")
    assert w.tabs.currentIndex() == RANKS_TAB
    assert "ranks≠" in w.tree._leaves[layer].text(3)


def test_live_follow_refreshes_every_rank(window, job, monkeypatch):
    w = opened(window, job)
    seen = []
    for r in w.session.primary.ranks:
        monkeypatch.setattr(r, "refresh", lambda r=r: seen.append(r) or False)
    w.poll_live()
    assert seen == [], "a job finished when opened is looked at for a resumed segment only"
    w.session.primary.followed = True  # as a job seen live, or one resumed since, is
    w.poll_live()
    assert seen == w.session.primary.ranks
