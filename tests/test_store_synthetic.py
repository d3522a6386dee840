"""Synthetic runs are consistent like real ones and show each pathology where it says."""

import numpy as np
import pytest

from bnviz.store import open_run, schema
from bnviz.store.synthetic import DEAD_FRACTION, NAN_AT, PATHOLOGIES, pathology_layers, write_synthetic_run

STEPS, LAYERS = 400, 7


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("syn") / "all.h5"
    write_synthetic_run(
        path, layers=LAYERS, channels=16, steps=STEPS, pathologies=PATHOLOGIES, eval_every=20, flush_rows=100
    )
    with open_run(path) as r:
        yield r


def test_summary_agrees_with_the_channel_tier(run):
    rows = run.rows("train")[:50]
    for layer in range(LAYERS):
        for field in ("pre_mean", "post_var", "sat_y"):
            per_channel = run.channels(layer, field, rows)
            np.testing.assert_allclose(run.summary(layer, field, rows), per_channel.mean(axis=1), rtol=1e-4)
        gamma = run.channels(layer, "gamma", rows)
        np.testing.assert_allclose(run.summary(layer, "gamma_abs_max", rows), np.abs(gamma).max(axis=1), rtol=1e-5)
    # train-mode BN: post-BN mean is beta, post-BN variance gamma^2 var / (var + eps)
    np.testing.assert_allclose(run.channels(0, "post_mean", rows), run.channels(0, "beta", rows), atol=1e-6)


def test_each_pathology_shows_in_its_layer(run):
    where = pathology_layers(LAYERS)
    end = run.rows("train")[-20:]
    start = run.rows("train")[:20]
    dead = run.summary(where["dead_relu"], "zone_channels", end).mean()
    assert dead == pytest.approx(DEAD_FRACTION, abs=0.1)
    assert run.summary(where["gamma_collapse"], "gamma_mean", end).mean() < 0.05
    assert run.summary(where["saturation"], "sat_y", end).mean() > 0.5
    assert run.layer(where["saturation"]).activation == "tanh"
    drift = run.summary(where["drift"], "pre_mean", end).mean() - run.summary(where["drift"], "pre_mean", start).mean()
    assert drift > 2
    assert run.summary(where["small_batch"], "n", end).max() == 2
    gap = run.summary(where["small_batch"], "run_mean_gap", end).mean()
    assert gap > 3 * run.summary(0, "run_mean_gap", end).mean()
    nan = run.summary(where["nan"], "pre_mean")
    onset = np.flatnonzero(np.isnan(nan))[0]
    assert run.steps[onset] == int(np.ceil(NAN_AT * STEPS)) and np.isnan(nan[onset:]).all()
    assert not np.isnan(run.summary(where["nan"] - 1, "pre_mean")).any()


def test_eval_rows_scalars_and_histograms(run):
    assert len(run.rows("eval")) == STEPS // 20
    assert run.scalar_names == ["loss", "lr", "accuracy"]
    steps, acc = run.scalar("accuracy")
    np.testing.assert_array_equal(steps, run.steps[run.rows("eval")])
    h = run.hist(0, "xhat", 0)
    assert (h.edges[0], h.edges[-1]) == schema.XHAT_RANGE
    assert h.counts.sum() + h.under + h.over == pytest.approx(4096, rel=0.1)


def test_unknown_pathology_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown pathologies"):
        write_synthetic_run(tmp_path / "x.h5", pathologies=("gremlins",))
