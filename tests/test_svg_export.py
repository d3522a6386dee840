"""SVG exports that render the same everywhere: valid XML, every plot clipped to its axes, no
transforms left on strokes (librsvg has no non-scaling strokes), heatmaps at full resolution."""

from __future__ import annotations

import base64
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from PySide6 import QtGui

from bnviz.app import render  # noqa: F401  (applies the PySide6 refcount guard first)
from bnviz.app.render import render_view
from bnviz.app.state import VIEWS, ViewState
from bnviz.store.synthetic import PATHOLOGIES, write_synthetic_run

NS = {"svg": "http://www.w3.org/2000/svg", "xlink": "http://www.w3.org/1999/xlink"}
STEPS, CHANNELS = 300, 8


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("svg") / "a.h5"
    write_synthetic_run(path, layers=6, channels=CHANNELS, steps=STEPS, eval_every=50, pathologies=PATHOLOGIES)
    return path


def export(run, tmp_path, view):
    out = tmp_path / f"{view}.svg"
    render_view(run, out, ViewState(view=view, layer="layer1.0.bn1" if view != "overview" else None))
    return out, ET.parse(out).getroot()


@pytest.mark.parametrize("view", [v for v in VIEWS if v != "ranks"])
def test_svg_is_clipped_and_has_no_scaled_strokes(qapp, run, tmp_path, view):
    _out, root = export(run, tmp_path, view)
    clips = root.findall(".//svg:clipPath", NS)
    groups = [g for g in root.iter("{%s}g" % NS["svg"]) if g.get("clip-path")]
    assert clips and len(groups) == len(clips), "each plot's contents sit in their own clip"
    for e in root.iter():
        assert e.get("vector-effect") is None
        if e.tag.endswith("}g") and "transform" in e.attrib:
            kinds = {c.tag.rsplit("}", 1)[-1] for c in e}
            assert kinds <= {"text", "image"}, f"shapes left under a transform: {kinds}"


def test_heatmaps_embed_every_cell(qapp, run, tmp_path):
    _out, root = export(run, tmp_path, "channels")
    sizes = []
    for img in root.iter("{%s}image" % NS["svg"]):
        href = img.get("{%s}href" % NS["xlink"]) or img.get("href")
        q = QtGui.QImage.fromData(base64.b64decode(href.split(",", 1)[1]), "PNG")
        sizes.append((q.width(), q.height()))
    assert any(w >= STEPS and h >= CHANNELS for w, h in sizes), sizes


@pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="librsvg's rsvg-convert is not installed")
@pytest.mark.parametrize("view", ["distribution", "channels", "drift"])
def test_librsvg_draws_nothing_outside_the_plots(qapp, run, tmp_path, view):
    out, _root = export(run, tmp_path, view)
    png = tmp_path / f"{view}.png"
    subprocess.run(["rsvg-convert", "-o", str(png), str(out)], check=True, timeout=60)
    img = QtGui.QImage(str(png))
    assert img.width() > 1000
    # the left margin holds only axis labels: zone shading or a fat stroke there is a spill
    for y in range(img.height() // 4, 3 * img.height() // 4, 20):
        c = img.pixelColor(4, y)
        assert (c.red(), c.green(), c.blue()) == (255, 255, 255), (view, y, c.name())
