"""Findings on purpose-built recordings: each pathology is found where it was put, and a healthy
run yields nothing."""

import json
import math

import numpy as np
import pytest

from bnviz.analysis.findings import KINDS, Finding, Thresholds, findings
from bnviz.store import open_run
from bnviz.store.synthetic import NAN_AT, pathology_layers, write_synthetic_run

LAYERS, STEPS = 8, 300
WHERE = pathology_layers(LAYERS)
# The kinds each pathology may raise: the symptom and what it causes.
EXPECTED = {
    "drift": {"drift"},
    "saturation": {"saturated", "gamma_beta_zone"},
    "dead_relu": {"dead", "gamma_beta_zone"},
    "gamma_collapse": {"gamma_collapse"},
    "small_batch": {"small_batch", "train_eval"},
    "nan": {"nonfinite"},
}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("findings")
    paths = {}
    for name in (None, *EXPECTED):
        path = folder / f"{name or 'healthy'}.h5"
        write_synthetic_run(
            path, layers=LAYERS, channels=16, steps=STEPS, eval_every=50, pathologies=(name,) if name else ()
        )
        paths[name] = path
    return paths


def found(path, thresholds=None):
    with open_run(path) as run:
        return run, findings(run, thresholds)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "shape",
    [
        dict(layers=8, channels=16, steps=300),
        dict(layers=12, channels=[8, 64, 16], steps=1000, channel_every=10, hist_every=50, eval_every=100),
    ],
    ids=["small", "sparse-tiers"],
)
def test_a_healthy_run_has_no_findings(tmp_path, seed, shape):
    if isinstance(shape["channels"], list):
        shape = {**shape, "channels": shape["channels"] * (shape["layers"] // 3)}
    write_synthetic_run(tmp_path / "healthy.h5", seed=seed, **shape)
    assert found(tmp_path / "healthy.h5")[1] == []


@pytest.mark.parametrize("pathology", list(EXPECTED))
def test_each_pathology_is_found_in_its_layer_and_nothing_else_is(recordings, pathology):
    run, fs = found(recordings[pathology])
    assert fs, f"nothing found in a run with {pathology}"
    assert {f.kind for f in fs} <= EXPECTED[pathology]
    layer = run.layers[WHERE[pathology]].path
    assert {f.layer for f in fs} == {layer}
    assert fs[0].kind in EXPECTED[pathology] and fs[0].severity == max(f.severity for f in fs)


def test_dead_channels_are_exactly_those_beta_pushed_below_zero(recordings):
    run, fs = found(recordings["dead_relu"])
    dead = next(f for f in fs if f.kind == "dead")
    with open_run(recordings["dead_relu"]) as r:
        beta = r.channels(dead.layer, "beta", r.channel_rows("train"))[-1]
    assert dead.channels == tuple(np.flatnonzero(beta < -1.0))
    assert 0 < len(dead.channels) < 16 and dead.value == pytest.approx(len(dead.channels) / 16)
    by_beta = next(f for f in fs if f.kind == "gamma_beta_zone")
    assert by_beta.channels == dead.channels


def test_nan_reports_the_first_step_and_layer_once(recordings):
    run, fs = found(recordings["nan"])
    (f,) = fs
    assert f.kind == "nonfinite" and f.severity == 1.0
    assert f.layer == run.layers[WHERE["nan"]].path
    assert f.first_step == math.ceil(NAN_AT * STEPS)
    assert f.channels == tuple(range(16))
    assert f.value == LAYERS - WHERE["nan"]  # the layers it spread to, itself included


def test_small_batch_reports_the_batch_size(recordings):
    _, fs = found(recordings["small_batch"])
    small = next(f for f in fs if f.kind == "small_batch")
    assert small.value == 2.0 and "2 values per channel" in small.message


def test_gamma_collapse_names_every_collapsed_channel(recordings):
    _, fs = found(recordings["gamma_collapse"])
    (f,) = fs
    assert f.channels == tuple(range(16)) and f.first_step is not None and f.last_step == STEPS - 1


def test_findings_rank_by_severity_across_layers(tmp_path):
    path = tmp_path / "all.h5"
    write_synthetic_run(path, layers=LAYERS, channels=16, steps=STEPS, pathologies=tuple(EXPECTED))
    _, fs = found(path)
    assert fs[0].kind == "nonfinite"
    assert [f.severity for f in fs] == sorted((f.severity for f in fs), reverse=True)
    assert all(0 < f.severity <= 1 for f in fs)
    # every kind a single-process run can show (ranks_disagree needs a distributed job)
    assert {f.kind for f in fs} == set(KINDS) - {"ranks_disagree"}


def test_thresholds_change_what_is_reported(recordings):
    _, fs = found(recordings["drift"])
    (drift,) = fs
    assert drift.value > Thresholds().drift
    assert found(recordings["drift"], Thresholds(drift=drift.value + 0.01))[1] == []
    _, strict = found(recordings[None], Thresholds.parse(["min-batch-values=1e9"]))
    assert {f.kind for f in strict} == {"small_batch"} and len(strict) == LAYERS


def test_threshold_overrides_parse_and_reject_bad_input():
    t = Thresholds.parse(["drift=2.5", "drift_window=3"])
    assert t.drift == 2.5 and t.drift_window == 3 and isinstance(t.drift_window, int)
    with pytest.raises(ValueError, match="unknown threshold 'drfit=1'.*drift"):
        Thresholds.parse(["drfit=1"])
    with pytest.raises(ValueError, match="not a number"):
        Thresholds.parse(["drift=high"])
    with pytest.raises(ValueError, match="NAME=VALUE"):
        Thresholds.parse(["drift"])


def test_a_finding_serialises_to_json():
    f = Finding(0.5, "dead", "a.bn", (1, 2), 3, 4, "msg", 0.25)
    assert json.loads(json.dumps(f.to_dict())) == {
        "severity": 0.5,
        "kind": "dead",
        "layer": "a.bn",
        "channels": [1, 2],
        "first_step": 3,
        "last_step": 4,
        "message": "msg",
        "value": 0.25,
    }


def test_a_run_without_rows_has_no_findings(tmp_path):
    write_synthetic_run(tmp_path / "empty.h5", layers=2, channels=4, steps=0)
    assert found(tmp_path / "empty.h5")[1] == []
