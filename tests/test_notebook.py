"""Notebooks: a run's HTML summary, inline pictures drawn off screen, findings as a DataFrame,
and the docs notebook executed in a kernel that has no display."""

import os
import struct
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

import bnviz
from bnviz.analysis.findings import findings
from bnviz.export import ExportError
from bnviz.store import open_run
from bnviz.store.synthetic import write_synthetic_run

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ['<img src=x onerror="alert(1)">', "a&b", "layer.1", "</table><script>x()</script>"]


class Collect(HTMLParser):
    """Tags, attributes and the text of table cells."""

    def __init__(self):
        super().__init__()
        self.tags, self.cells, self._in_cell = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "td":
            self._in_cell, self._text = True, ""

    def handle_endtag(self, tag):
        if tag == "td":
            self.cells.append(self._text)
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self._text += data


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("nb") / "run.h5"
    write_synthetic_run(
        path,
        layers=4,
        channels=8,
        steps=120,
        pathologies=("dead_relu", "drift"),
        layer_names=HOSTILE,
        meta={"model_class": "<b>Net</b>"},
    )
    return path


def test_a_run_shows_its_summary_layers_and_findings_as_html(run_path):
    with open_run(run_path) as run:
        page = run._repr_html_()
        expected = findings(run)
    parsed = Collect()
    parsed.feed(page)
    tags = {t for t, _ in parsed.tags}
    assert "script" not in tags and "img" not in tags and "b" in tags  # <b> only from our own labels
    assert all(name in parsed.cells for name in HOSTILE)  # shown as text, not markup
    assert "<b>Net</b>" in parsed.cells and str(run_path.resolve()) in parsed.cells
    assert expected, "the pathologies give findings"
    for f in expected:
        assert f.message in parsed.cells
    assert len([t for t, _ in parsed.tags if t == "tr"]) >= len(HOSTILE) + len(expected)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_show_draws_one_layer_as_png_and_svg(run_path, tmp_path):
    picture = bnviz.show(run_path, layer="layer.1", view="gamma-beta")
    width, height = png_size(picture._repr_png_())
    assert width >= 600 and height >= 400
    svg = ET.fromstring(picture._repr_svg_())
    title = next(el.text for el in svg.iter() if el.tag.endswith("title"))
    assert "layer layer.1" in title
    saved = picture.save(tmp_path / "gb.png")
    assert png_size(saved.read_bytes()) == (width, height)


def test_show_of_an_open_run_with_a_comparison_and_the_overview(run_path):
    with open_run(run_path) as run:
        pictures = [bnviz.show(run, compare=run_path), bnviz.show(run, view="overview")]
    assert pictures[0].layer == HOSTILE[0] and pictures[1].layer is None
    for p in pictures:
        png_size(p._repr_png_())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layer": "nope"}, "no layer matches 'nope'"),
        ({"layer": "*"}, "matches 4 layers"),
        ({"view": "histogram"}, "unknown view"),
    ],
)
def test_show_rejects_bad_input_before_drawing(run_path, kwargs, message):
    with pytest.raises(ExportError, match=message):
        bnviz.show(run_path, **kwargs)


def test_findings_frame_lists_the_findings(run_path):
    pd = pytest.importorskip("pandas")
    frame = bnviz.findings_frame(run_path)
    with open_run(run_path) as run:
        expected = [f.to_dict() for f in findings(run)]
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(expected) > 0
    assert frame.to_dict("records") == expected


@pytest.mark.slow
def test_the_docs_notebook_runs_in_a_kernel_without_a_display(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(ROOT / "docs" / "notebook.ipynb", as_version=4)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    # the kernel runs this interpreter, whatever PATH finds first
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.km = client.create_kernel_manager()
    client.km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    client.execute(env=env)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    kinds = [set(o.get("data", {})) for o in outputs]
    assert sum("text/html" in k for k in kinds) >= 2  # the run summary and the DataFrame
    assert sum({"image/png", "image/svg+xml"} <= k for k in kinds) == 2
    assert (tmp_path / "overview.png").stat().st_size > 0
