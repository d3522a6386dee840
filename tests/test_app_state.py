"""The viewer's Qt-free parts: view state, layouts, step arithmetic and the numbers views draw."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bnviz.app.data import activation, distribution, drift_table, overview_matrix, phase_mask
from bnviz.app.state import Layout, ViewState
from bnviz.app.stepping import advance, row_at_or_before, snap
from bnviz.store import open_run
from bnviz.store.synthetic import write_synthetic_run


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "run.h5"
    write_synthetic_run(path, layers=4, channels=6, steps=120, eval_every=40, pathologies=("nan",))
    return path


def test_state_round_trips_through_json():
    s = ViewState(
        layer="layer1.0.bn1",
        view="distribution",
        step=40,
        reference_step=3,
        step_range=(10, 90),
        link_zoom=False,
        tensors=("pre", "post"),
        compare_mode="side",
        channel=2,
        channel_metric="gamma",
        overview_metric="dead",
        speed=50,
        loop=False,
        reference_run=2,
        hidden_runs=(1, 3),
    )
    back = ViewState.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s
    assert back.hidden_runs == (1, 3) and back.reference_run == 2
    assert back.step_range == (10, 90) and back.tensors == ("pre", "post")


def test_layout_keeps_files_and_state(tmp_path):
    s = ViewState(view="channels", step=7, reference_run=1, hidden_runs=(2,))
    text = Layout(["/a.h5", "/b.h5", "/c.h5"], s).to_json()
    back = Layout.from_json(text)
    assert back.paths == ["/a.h5", "/b.h5", "/c.h5"] and back.state == s


def test_layout_of_an_older_bnviz_compares_its_second_run():
    text = '{"bnviz_layout": 1, "paths": ["/a.h5"], "compare": "/b.h5", "state": {"view": "drift"}}'
    assert Layout.from_json(text).paths == ["/a.h5", "/b.h5"]


def test_run_places_are_not_negative():
    with pytest.raises(ValueError, match="run list"):
        ViewState(hidden_runs=(-1,))
    with pytest.raises(ValueError, match="run list"):
        ViewState().update(reference_run=-2)


def test_layout_rejects_other_json():
    with pytest.raises(ValueError, match="not a bnviz layout"):
        Layout.from_json('{"x": 1}')
    with pytest.raises(ValueError, match="invalid JSON"):
        Layout.from_json("{")


def test_state_from_newer_bnviz_is_refused_but_unknown_keys_are_ignored():
    with pytest.raises(ValueError, match="newer"):
        ViewState.from_dict({"version": 99})
    assert ViewState.from_dict({"version": 1, "future_option": True, "view": "overview"}).view == "overview"


def test_update_notifies_only_changed_fields():
    s = ViewState(step=5)
    seen = []
    s.changed.connect(seen.append)
    assert s.update(step=5) == set()
    s.update(step=6, view="channels")
    assert seen == [{"step", "view"}]


@pytest.mark.parametrize(
    "change", [{"view": "nope"}, {"phase": "test"}, {"step_range": (5, 1)}, {"tensors": ("pre", "z")}, {"speed": 0}]
)
def test_invalid_values_are_refused_and_leave_the_state_alone(change):
    s = ViewState()
    before = s.to_dict()
    with pytest.raises(ValueError):
        s.update(**change)
    assert s.to_dict() == before


def test_unknown_field_is_refused():
    with pytest.raises(AttributeError):
        ViewState().update(colour="red")


def test_stepping_snaps_to_recorded_steps_with_duplicates():
    steps = np.array([0, 10, 10, 20, 30])
    assert row_at_or_before(steps, 15) == 2 and snap(steps, 15) == 10
    assert snap(steps, -5) == 0 and snap(steps, None) == 30
    assert advance(steps, 20, 1, loop=False) == (30, True)
    assert advance(steps, 30, 1, loop=False) == (30, False)
    assert advance(steps, 30, 1, loop=True) == (0, True)
    assert advance(steps, 0, -1, loop=False) == (0, False)
    assert advance(np.array([], int), 0, 1, loop=True) == (None, False)


def test_activation_curves():
    y = np.array([-2.0, 0.0, 8.0])
    assert activation("relu", y).tolist() == [0, 0, 8]
    assert activation("relu6", y).tolist() == [0, 0, 6]
    assert activation("unknown", y) is None
    assert np.allclose(activation("tanh", y), np.tanh(y))


def test_drift_table_matches_the_reader(run_path):
    with open_run(run_path) as run:
        layer = run.layers[1].path
        t = drift_table(run, layer, "train")
        train = phase_mask(run.phases, "train")
        assert len(t["step"]) == train.sum() < len(run.steps)
        np.testing.assert_allclose(t["post_var"], run.summary(layer, "post_var")[train])
        np.testing.assert_allclose(t["pre_q50"], run.quantiles(layer, "pre")[train][:, 4])


def test_distribution_is_a_density_of_the_cursor_row(run_path):
    with open_run(run_path) as run:
        layer = run.layers[0].path
        hists = distribution(run, layer, 55)
        assert [h.tensor for h in hists] == ["pre", "xhat", "post"]
        assert all(h.step <= 55 for h in hists)
        for h in hists:
            area = np.nansum(h.density * np.diff(h.edges))
            assert area == pytest.approx(1.0, rel=1e-6)


def test_overview_matrix_has_one_column_per_layer_and_shows_nan(run_path):
    with open_run(run_path) as run:
        steps, m = overview_matrix(run, "saturation", "train", max_columns=50)
        assert m.shape == (len(steps), len(run.layers)) and len(steps) <= 50
        _, nf = overview_matrix(run, "nonfinite", "all")
        assert np.isnan(m).any() or (nf > 0).any()


def test_the_model_layer_imports_no_qt():
    """state, session, data and stepping are Qt-free (napari's rule): export and tests use them bare."""
    code = (
        "import sys, bnviz.app, bnviz.app.state, bnviz.app.session, bnviz.app.data, bnviz.app.stepping, "
        "bnviz.app.findings_job; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'torch')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
