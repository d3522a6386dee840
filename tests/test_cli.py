"""The bnviz command: routing to the viewer, info (text and JSON), and errors on bad input."""

import json
import math
import os

import pytest

import bnviz
import bnviz.app
from bnviz import cli, demo
from bnviz.analysis.findings import Thresholds, findings
from bnviz.store import open_run
from bnviz.store.synthetic import NAN_AT, pathology_layers, write_synthetic_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    healthy, sick = folder / "healthy.h5", folder / "sick.h5"
    write_synthetic_run(healthy, layers=4, channels=8, steps=120, eval_every=40)
    write_synthetic_run(sick, layers=8, channels=8, steps=120, pathologies=("dead_relu", "nan"))
    return healthy, sick


@pytest.fixture
def viewer(monkeypatch):
    calls = []
    monkeypatch.setattr(
        bnviz.app, "run_viewer", lambda paths, compare=None, layer=None: calls.append((paths, compare, layer)) or 0
    )
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    return calls


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"bnviz {bnviz.__version__}"


def test_no_arguments_prints_help(capsys):
    assert cli.main([]) == 0
    assert "info" in capsys.readouterr().out


def test_a_bare_file_opens_the_viewer(runs, viewer):
    healthy, sick = runs
    assert cli.main([str(healthy)]) == 0
    assert cli.main(["view", str(healthy), "--compare", str(sick), "--layer", "layer1.1.bn2"]) == 0
    assert viewer == [([str(healthy)], None, None), ([str(healthy)], str(sick), "layer1.1.bn2")]


def test_view_waits_for_a_file_not_written_yet_and_refuses_a_missing_compare(runs, viewer, capsys):
    assert cli.main(["view", "no-such-run.h5"]) == 0  # the window waits for the training run
    assert "waiting for no-such-run.h5" in capsys.readouterr().err
    assert viewer == [(["no-such-run.h5"], None, None)]
    assert cli.main(["view", str(runs[0]), "--compare", "no-such-run.h5"]) == 1
    assert "no-such-run.h5: no such file" in capsys.readouterr().err
    assert len(viewer) == 1


def test_view_opens_any_number_of_runs(runs, viewer):
    files = [str(runs[0]), str(runs[1]), str(runs[0])]
    assert cli.main(["view", *files, "--compare", str(runs[1])]) == 0
    assert viewer == [(files, str(runs[1]), None)]


def test_view_without_a_display_says_so_instead_of_hiding_a_window(runs, viewer, monkeypatch, capsys):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(cli.sys, "platform", "linux")
    assert cli.main([str(runs[0])]) == 1
    assert "no display" in capsys.readouterr().err and viewer == []


def test_demo_opens_the_bn_paper_pair_in_compare_mode(tmp_path, viewer, monkeypatch):
    for name in demo.DEMO_RUNS:
        write_synthetic_run(tmp_path / name, layers=2, channels=4, steps=5)
    monkeypatch.setattr(demo, "demo_folders", lambda: [tmp_path / "not-installed", tmp_path])
    assert cli.main(["demo"]) == 0
    # the BN paper's last hidden layer, where its Figure 1 looks
    assert viewer == [([str(tmp_path / demo.DEMO_RUNS[0])], str(tmp_path / demo.DEMO_RUNS[1]), demo.DEMO_LAYER)]


def test_demo_from_a_checkout_uses_the_sample_runs():
    # an editable install has no packaged copy; the checkout's sample_runs/ holds the pair
    assert [p.parent.name for p in demo.demo_paths()] == ["sample_runs"] * 2


def test_demo_without_recordings_says_how_to_get_them(tmp_path, viewer, monkeypatch, capsys):
    monkeypatch.setattr(demo, "demo_folders", lambda: [tmp_path / "a", tmp_path / "b"])
    assert cli.main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bn_paper_with_bn.h5" in err and "bn_paper.py" in err
    assert "pip install" in err and viewer == []


def test_view_refuses_a_file_that_is_not_a_recording_before_any_window(tmp_path, viewer, capsys):
    model = tmp_path / "model.pt"
    model.write_bytes(b"PK\x03\x04 a torch checkpoint, not a recording")
    assert cli.main(["view", str(model)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bnviz view: error: ") and err.count("\n") == 1 and "model.pt" in err
    assert viewer == []


@pytest.mark.parametrize("value, why", [("2", "outside 0-1"), ("-0.1", "outside 0-1"), ("high", "not a number")])
def test_fail_on_outside_the_severity_range_is_a_usage_error(runs, capsys, value, why):
    with pytest.raises(SystemExit) as e:
        cli.main(["info", str(runs[0]), "--fail-on", value])
    assert e.value.code == 2 and why in capsys.readouterr().err


def test_info_text_names_the_run_and_its_findings(runs, capsys):
    healthy, sick = runs
    assert cli.main(["info", str(healthy)]) == 0
    out = capsys.readouterr().out
    assert "SyntheticNet" in out and "findings   none" in out
    assert "0 to 119: 123 rows (120 train, 3 eval)" in out
    assert cli.main(["info", str(sick)]) == 0
    out = capsys.readouterr().out
    nan_layer = open_run(sick).layers[pathology_layers(8)["nan"]].path
    assert f"first non-finite batch statistics at step {math.ceil(NAN_AT * 120)} in {nan_layer}" in out
    assert out.index("nonfinite") < out.index("dead ")


def test_info_json_is_the_documented_structure(runs, capsys):
    _, sick = runs
    assert cli.main(["info", str(sick), "--json", "--threshold", "drift=3"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["bnviz_info"] == 1
    assert {
        "path",
        "file_size",
        "format_version",
        "writer_state",
        "recording_failed",
        "dropped_steps",
        "model",
        "meta",
        "steps",
        "duration_s",
        "schedule",
        "scalars",
        "layers",
        "thresholds",
        "findings",
    } <= set(info)
    assert info["file_size"] == os.path.getsize(sick) and info["writer_state"] == "closed"
    assert info["steps"] == {"first": 0, "last": 119, "rows": 120, "phases": {"train": 120, "eval": 0}}
    assert info["schedule"]["channels"]["every"] == 1 and info["thresholds"]["drift"] == 3.0
    assert [li["path"] for li in info["layers"]] == [li.path for li in open_run(sick).layers]
    with open_run(sick) as run:
        expected = [f.to_dict() for f in findings(run, Thresholds(drift=3))]
    assert json.loads(json.dumps(expected)) == info["findings"]


def test_info_fail_on_gives_status_3_only_for_serious_findings(runs, capsys):
    healthy, sick = runs
    assert cli.main(["info", str(sick), "--fail-on", "0.99"]) == 3
    assert cli.main(["info", str(healthy), "--fail-on", "0"]) == 0


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("hello"), "HDF5"),
        (lambda p: p.write_bytes(b""), "empty"),
    ],
    ids=["missing", "text", "empty"],
)
def test_info_on_a_bad_file_is_a_clear_error(tmp_path, capsys, make, expected):
    path = tmp_path / "bad.h5"
    make(path)
    assert cli.main(["info", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bnviz info: error: ") and str(path) in err and expected in err


def test_info_rejects_an_unknown_threshold(runs, capsys):
    assert cli.main(["info", str(runs[0]), "--threshold", "drfit=2"]) == 1
    assert "unknown threshold 'drfit=2'" in capsys.readouterr().err
