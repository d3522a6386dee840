"""Format 1.1 added fields at the end of SUMMARY_FIELDS / CHANNEL_FIELDS: 1.0 files still open, and
the fields they lack read as NaN (docs/format.md, Versioning). Format 1.2 names the estimator: the
files before it say once that their distribution estimates came from the old sampler."""

import json
import pathlib
import shutil

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import bnviz
from bnviz.store import layout, open_run, schema

NEW_SUMMARY = ("used_mean_gap",)
NEW_CHANNEL = ("used_mean", "used_var")
SAMPLES = pathlib.Path(__file__).parent.parent / "sample_runs"


def as_format_1_0(src, dst):
    """A copy of ``src`` as a 1.0 writer would have written it: the field axes without the 1.1 fields."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        names = [("summary", 2, len(NEW_SUMMARY))]
        names += [(f"{layout.CHANNEL_GROUP}/{i}", 1, len(NEW_CHANNEL)) for i in range(len(json.loads(f["layers"][()])))]
        for name, axis, drop in names:
            ds = f[name]
            data = np.take(ds[()], np.arange(ds.shape[axis] - drop), axis=axis)
            chunks = list(ds.chunks)
            chunks[axis] = min(chunks[axis], data.shape[axis])
            del f[name]
            f.create_dataset(name, data=data, chunks=tuple(chunks), maxshape=(None, *data.shape[1:]))
        f.attrs["format_version"] = "1.0"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("fmt") / "run.h5"
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3), nn.BatchNorm1d(3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with bnviz.record(model, path, channel_every=1) as rec:
        for step in range(4):
            model(torch.randn(16, 5)).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
            rec.step()
            if step == 1:
                model.eval()
                with torch.no_grad():
                    model(torch.randn(16, 5) + 1)
                model.train()
    return path


def test_new_files_are_in_the_current_format_with_the_used_statistics(recorded):
    with open_run(recorded) as run:
        assert run.format_version == schema.FORMAT_VERSION_TEXT == "1.3"
        train, evals = run.channel_rows("train"), run.channel_rows("eval")
        for layer in run.layers:
            ch = {
                f: run.channels(layer, f)
                for f in ("pre_mean", "pre_var", "running_mean", "running_var", "used_mean", "used_var")
            }
            np.testing.assert_array_equal(ch["used_mean"][train], ch["pre_mean"][train])
            np.testing.assert_allclose(ch["used_var"][train], ch["pre_var"][train], rtol=1e-6)
            np.testing.assert_array_equal(ch["used_mean"][evals], ch["running_mean"][evals])
            np.testing.assert_array_equal(ch["used_var"][evals], ch["running_var"][evals])
            gap = run.summary(layer, "used_mean_gap")
            assert (gap[run.rows("train")] == 0).all()
            np.testing.assert_allclose(gap[run.rows("eval")], run.summary(layer, "run_mean_gap", run.rows("eval")))
            assert (gap[run.rows("eval")] > 0.1).all()


def check_reads_as_1_0(path, reference=None):
    """Every accessor gives NaN for the 1.1 fields, and (given the 1.1 original) the old fields unchanged."""
    with open_run(path) as run:
        assert run.format_version == "1.0"
        old_s = [f for f in schema.SUMMARY_FIELDS if f not in NEW_SUMMARY]
        for layer in run.layers:
            whole = run.summary_layer(layer)
            assert whole.shape == (len(run.steps), len(schema.SUMMARY_FIELDS))
            for f in NEW_SUMMARY:
                assert np.isnan(run.summary(layer, f)).all() and run.summary(layer, f).shape == (len(run.steps),)
                assert np.isnan(whole[:, schema.SUMMARY_FIELDS.index(f)]).all()
            for f in NEW_CHANNEL:
                got = run.channels(layer, f, slice(1, None))
                assert got.shape == (len(run.channel_steps) - 1, layer.num_features) and np.isnan(got).all()
            assert np.isnan(run.channels(layer, "used_var", 0)).all()
            assert np.isfinite(run.channels(layer, "pre_mean", 0)).all()
        assert run.summary_all("used_mean_gap").shape == (len(run.steps), len(run.layers))
        assert np.isnan(run.summary_all("used_mean_gap")).all()
        snap = run.snapshot(int(run.steps[-1]))
        assert all(np.isnan(v["used_mean_gap"]) and np.isfinite(v["pre_mean"]) for v in snap.values())
        if reference is not None:
            with open_run(reference) as new:
                for f in old_s:
                    np.testing.assert_array_equal(run.summary_all(f), new.summary_all(f), err_msg=f)
                for layer in run.layers:
                    for f in schema.CHANNEL_FIELDS[: -len(NEW_CHANNEL)]:
                        np.testing.assert_array_equal(run.channels(layer, f), new.channels(layer, f), err_msg=f)


def test_a_1_0_file_reads_with_nan_for_the_new_fields(recorded, tmp_path):
    old = tmp_path / "old.h5"
    as_format_1_0(recorded, old)
    with h5py.File(old, "r") as f:
        assert f["summary"].shape[2] == len(schema.SUMMARY_FIELDS) - len(NEW_SUMMARY)
    check_reads_as_1_0(old, reference=recorded)


def test_the_shipped_sample_runs_are_in_the_current_format():
    # regenerate them (python sample_runs/make_all.py) when the format changes
    current = schema.FORMAT_VERSION_TEXT
    for path in sorted(SAMPLES.glob("*.h5")):
        with open_run(path) as run:
            assert run.format_version == current, path.name


def test_1_2_names_the_estimator_and_older_files_say_theirs_may_be_biased(recorded, tmp_path, capsys):
    from bnviz import cli

    with open_run(recorded) as run:
        assert run.meta["engine"]["estimator"] == "stratified-hash-1" and run.estimator_notice is None
        assert run.layers[0].zone_input == "y" and run.layers[0].activation_via == ""
    for version in ("1.0", "1.1"):
        old = tmp_path / f"old{version}.h5"
        shutil.copy(recorded, old)
        with h5py.File(old, "r+") as f:
            f.attrs["format_version"] = version
            engine = json.loads(f.attrs["engine"])
            del engine["estimator"]
            f.attrs["engine"] = json.dumps(engine)
        with open_run(old) as run:
            assert "old sampler" in run.estimator_notice and "biased" in run.estimator_notice
        assert cli.main(["info", str(old)]) in (0, None)
        out = capsys.readouterr().out
        assert out.count("old sampler") == 1
