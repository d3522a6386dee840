"""bnviz export / bnviz.export: every view to PNG, SVG and CSV without a screen, CSV equal to
the stored numbers, many layers into a folder, and bad input refused with nothing left behind."""

import csv
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import bnviz
import bnviz.app.render
from bnviz import cli
from bnviz.export import VIEWS, ExportError
from bnviz.store import open_run
from bnviz.store.synthetic import write_synthetic_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "run.h5"
    write_synthetic_run(path, layers=3, channels=6, steps=60, layer_names=["stem.bn", "block.bn1", "block.bn2"])
    return path


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def column(header, rows, name):
    i = header.index(name)
    return np.array([float(r[i]) for r in rows if i < len(r) and r[i] != ""])


def assert_valid(path, fmt):
    data = path.read_bytes()
    if fmt == "png":
        from PySide6 import QtGui

        assert data.startswith(PNG_SIGNATURE)
        image = QtGui.QImage(str(path))
        assert image.width() > 200 and image.height() > 200
        # a real plot, not a blank canvas
        assert len({image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}) > 3
    elif fmt == "svg":
        root = ET.fromstring(data)
        assert root.tag.endswith("svg") and len(list(root.iter())) > 10
    else:
        header, rows = read_csv(path)
        assert rows and header and len(set(header)) == len(header)


@pytest.mark.parametrize("fmt", ["png", "svg", "csv"])
@pytest.mark.parametrize("view", VIEWS)
def test_each_view_exports_headless(qapp, run_path, out, view, fmt):
    written = bnviz.export(run_path, out / f"v.{fmt}", layer="block.bn1", view=view)
    assert written == [out / f"v.{fmt}"]
    assert_valid(written[0], fmt)
    assert sorted(os.listdir(out)) == [f"v.{fmt}"]  # no temporary files left


def test_drift_csv_round_trips_to_the_stored_numbers(qapp, run_path, out):
    bnviz.export(run_path, out / "d.csv", layer="block.bn2", view="drift")
    header, rows = read_csv(out / "d.csv")
    with open_run(run_path) as run:
        rows_train = run.rows("train")
        assert np.array_equal(column(header, rows, "step"), run.steps[rows_train])
        for field in ("pre_mean", "pre_var", "post_mean", "post_var"):
            stored = run.summary("block.bn2", field, rows_train).astype(np.float64)
            assert np.array_equal(column(header, rows, field), stored), field


def test_channels_csv_round_trips_to_the_stored_channel_tier(qapp, run_path, out):
    bnviz.export(run_path, out / "c.csv", layer="stem.bn", view="channels")
    header, rows = read_csv(out / "c.csv")
    values = np.array([[float(v) for v in r[1:]] for r in rows])
    with open_run(run_path) as run:
        stored = run.channels("stem.bn", "post_mean").astype(np.float64)
        assert np.array_equal(column(header, rows, "step"), run.channel_steps)
    assert np.array_equal(values, stored)


def test_many_layers_go_into_a_folder_with_an_index(qapp, run_path, out):
    progress = []
    written = bnviz.export(
        run_path, out / "drift.png", layer="block.*", progress=lambda done, total, name: progress.append((done, total))
    )
    folder = out / "drift"
    assert written == [folder / "block.bn1.png", folder / "block.bn2.png"]
    assert sorted(os.listdir(out)) == ["drift"]
    assert sorted(os.listdir(folder)) == ["block.bn1.png", "block.bn2.png", "index.html"]
    index = (folder / "index.html").read_text()
    assert 'src="block.bn1.png"' in index and 'src="block.bn2.png"' in index
    assert progress == [(0, 2), (1, 2), (2, 2)]
    for p in written:
        assert_valid(p, "png")
    # exporting again replaces the earlier export's folder
    assert bnviz.export(run_path, out / "drift.png", layer="stem.bn", fmt=None) == [out / "drift.png"]
    again = bnviz.export(run_path, folder, fmt="csv")
    assert sorted(os.listdir(folder)) == ["block.bn1.csv", "block.bn2.csv", "index.html", "stem.bn.csv"]
    assert len(again) == 3


def test_steps_and_compare_reach_the_view_state(qapp, run_path, out, monkeypatch):
    seen = []
    monkeypatch.setattr(
        bnviz.app.render,
        "render_view",
        lambda path, dest, state=None, compare=None: (seen.append((state, compare)), dest.write_text("x")),
    )
    bnviz.export(run_path, out / "a.png", layer="stem.bn", view="distribution", steps="10:40", compare=run_path)
    state, compare = seen[0]
    assert (state.view, state.layer, state.step_range, state.step, state.reference_step) == (
        "distribution",
        "stem.bn",
        (10, 40),
        40,
        10,
    )
    assert len(compare) == 1 and os.path.samefile(compare[0], run_path)
    bnviz.export(run_path, out / "b.png", layer="stem.bn", view="gamma_beta")
    assert (seen[1][0].view, seen[1][0].step_range, seen[1][0].step, seen[1][1]) == ("gamma_beta", None, None, [])


def test_a_failure_midway_leaves_nothing_behind(qapp, run_path, out, monkeypatch):
    real = bnviz.app.render.render_view
    calls = []

    def flaky(path, dest, state=None, compare=None):
        calls.append(state.layer)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        real(path, dest, state=state, compare=compare)

    monkeypatch.setattr(bnviz.app.render, "render_view", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        bnviz.export(run_path, out / "all.svg")
    assert os.listdir(out) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(layer="block.bn3"), "no layer matches 'block.bn3'; did you mean block.bn2 or block.bn1"),
        (dict(layer="zzz"), "the run's layers are stem.bn, block.bn1, block.bn2"),
        (dict(steps="100:200"), "no recorded step in 100:200; the run has steps 0 to 59"),
        (dict(steps="40:10"), "step range 40:10 is empty"),
        (dict(steps="ten:20"), "expected A:B"),
        (dict(view="histogram"), "unknown view 'histogram'"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(run_path, out, kwargs, message):
    with pytest.raises(ExportError, match=message.replace("(", r"\(")):
        bnviz.export(run_path, out / "x.png", **kwargs)
    assert os.listdir(out) == []


def test_bad_output_paths_are_refused(run_path, out):
    with pytest.raises(ExportError, match=r"unsupported extension \.jpg; use \.png, \.svg or \.csv"):
        bnviz.export(run_path, out / "x.jpg")
    with pytest.raises(ExportError, match="does not exist"):
        bnviz.export(run_path, out / "missing" / "x.png")
    (out / "mine").mkdir()
    (out / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="did not write"):
        bnviz.export(run_path, out / "mine", fmt="png")
    assert (out / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_folder_is_refused(run_path, out):
    out.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="cannot write into"):
            bnviz.export(run_path, out / "x.png")
    finally:
        out.chmod(0o700)


def test_a_run_without_steps_is_refused(tmp_path, out):
    write_synthetic_run(tmp_path / "empty.h5", layers=2, channels=4, steps=0)
    with pytest.raises(ExportError, match="no recorded steps"):
        bnviz.export(tmp_path / "empty.h5", out / "x.png")
    assert os.listdir(out) == []


def test_the_api_takes_an_open_run_and_leaves_it_open(qapp, run_path, out):
    with open_run(run_path) as run:
        bnviz.export(run, out / "o.csv", layer="stem.bn", view="overview")
        assert len(run.steps) == 60  # still usable
    header, _ = read_csv(out / "o.csv")
    assert header[0] == "step"


def test_cli_export_writes_and_reports(qapp, run_path, out, capsys):
    assert (
        cli.main(["export", str(run_path), "--layer", "stem.bn", "--view", "train-eval", "-o", str(out / "te.csv")])
        == 0
    )
    assert "wrote" in capsys.readouterr().err
    assert cli.main(["export", str(run_path), "--layer", "stm.bn", "-o", str(out / "x.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bnviz export: error:") and "did you mean stem.bn" in err
    assert sorted(os.listdir(out)) == ["te.csv"]


def test_the_public_api_resolves_lazily_and_export_stays_a_function():
    import importlib

    importlib.import_module("bnviz.export")  # importing the submodule must not replace the function
    assert callable(bnviz.export) and bnviz.export.__name__ == "export"
    from bnviz.analysis.findings import Thresholds, findings
    from bnviz.hooks.recorder import record

    assert (bnviz.findings, bnviz.Thresholds, bnviz.open_run, bnviz.record) == (findings, Thresholds, open_run, record)
    with pytest.raises(AttributeError, match="no attribute 'exprot'"):
        bnviz.exprot  # noqa: B018


def test_exported_pictures_say_what_they_show(qapp, run_path, out, tmp_path):
    other = tmp_path / "other.h5"
    write_synthetic_run(other, layers=4, channels=8, steps=60, seed=3)
    layer = open_run(run_path).layers[1].path
    svg = out / "d.svg"
    bnviz.export(run_path, svg, layer=layer, view="drift", compare=other)
    title = ET.parse(svg).getroot().find("{http://www.w3.org/2000/svg}title").text
    assert run_path.name in title and f"layer {layer}" in title
    assert "run A" in title and other.name in title
    from PySide6 import QtGui

    png = out / "d.png"
    bnviz.export(run_path, png, layer=layer, view="drift")
    image = QtGui.QImage(str(png))
    assert image.height() == 900 + bnviz.app.render.CAPTION_HEIGHT
