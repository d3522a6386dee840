"""SVG export that renders alike in browsers, librsvg and Inkscape.

Qt's QSvgGenerator writes each item in its own coordinates under a ``transform`` with
``vector-effect="non-scaling-stroke"`` for pyqtgraph's cosmetic pens, and never clips. Viewers
without non-scaling strokes (librsvg, ImageMagick) then draw a 2 px line in data units (large
coloured blocks), and zone shading 10^6 wide spills past the axes everywhere. So:

- the plot frames (axes, titles, grids) are rendered by the scene with every ViewBox's contents
  hidden; then each ViewBox's items are painted on their own and wrapped in a ``clipPath`` of
  that box;
- every path, polyline and rect is rewritten in page coordinates (``flatten``), so strokes keep
  their width with no transform to apply;
- images (heatmaps, colour bars) keep every data cell, enlarged by whole pixels so no viewer
  blurs one cell into the next.
"""

from __future__ import annotations

import base64
import math
import re
import xml.etree.ElementTree as ET

import numpy as np

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)
MAX_IMAGE_PIXELS = 16_000_000  # an enlarged heatmap stays below this many pixels
_MATRIX = re.compile(r"matrix\(([^)]*)\)")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _tag(e: ET.Element) -> str:
    return e.tag.rsplit("}", 1)[-1]


def _matrix(g: ET.Element) -> np.ndarray:
    """The group's affine matrix as 3x3 (SVG's matrix(a,b,c,d,e,f))."""
    m = _MATRIX.search(g.get("transform", ""))
    a, b, c, d, e, f = (float(v) for v in m.group(1).split(",")) if m else (1, 0, 0, 1, 0, 0)
    return np.array([[a, c, e], [b, d, f], [0, 0, 1]], dtype=np.float64)


def _apply(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ m[:2, :2].T + m[:2, 2]


def _fmt(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if math.isfinite(v) else "0"


def _path_in_page(d: str, m: np.ndarray) -> str:
    """Map an SVG path of absolute commands (M, L, C, Z: what Qt writes) through ``m``."""
    out = []
    for cmd, args in re.findall(r"([MLCZmlcz])([^MLCZmlcz]*)", d):
        nums = np.array([float(v) for v in _NUMBER.findall(args)], dtype=np.float64)
        if len(nums) >= 2:
            pts = _apply(m, nums[: len(nums) // 2 * 2].reshape(-1, 2))
            out.append(cmd.upper() + " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in pts))
        else:
            out.append(cmd.upper())
    return " ".join(out)


def flatten(root: ET.Element) -> None:
    """Rewrite paths, polylines and rects of every transformed group in page coordinates and
    drop the transform; cosmetic strokes keep their width, others scale with the matrix."""
    for g in root.iter(f"{{{SVG_NS}}}g"):
        if "transform" not in g.attrib:
            continue
        m = _matrix(g)
        shapes = [c for c in g if _tag(c) in ("path", "polyline", "rect")]
        if not shapes or len(shapes) != len(g):
            continue  # text and images keep their transform (they render right with it)
        for c in shapes:
            if _tag(c) == "rect":
                x, y, w, h = (float(c.get(k, 0)) for k in ("x", "y", "width", "height"))
                c.tag = f"{{{SVG_NS}}}path"
                d = f"M{x},{y} L{x + w},{y} L{x + w},{y + h} L{x},{y + h} Z"
                for k in ("x", "y", "width", "height"):
                    c.attrib.pop(k, None)
            elif _tag(c) == "polyline":
                d = "M" + " L".join(c.get("points", "").split())
                c.tag = f"{{{SVG_NS}}}path"
                c.attrib.pop("points", None)
            else:
                d = c.get("d", "")
            c.set("d", _path_in_page(d, m))
            cosmetic = c.attrib.pop("vector-effect", "") == "non-scaling-stroke"
            width = g.get("stroke-width")
            if width and not cosmetic:
                g.set("stroke-width", _fmt(float(width) * math.sqrt(abs(np.linalg.det(m[:2, :2])))))
        del g.attrib["transform"]


def crisp_images(root: ET.Element) -> None:
    """Enlarge each embedded image by whole pixels towards its size on the page (nearest
    neighbour: every data cell stays one flat colour in any viewer)."""
    from PySide6 import QtCore, QtGui

    for g in root.iter(f"{{{SVG_NS}}}g"):
        m = _matrix(g)
        for img in [c for c in g if _tag(c) == "image"]:
            href_key = f"{{{XLINK_NS}}}href" if f"{{{XLINK_NS}}}href" in img.attrib else "href"
            data = img.get(href_key, "")
            if not data.startswith("data:image/png;base64,"):
                continue
            qimg = QtGui.QImage.fromData(base64.b64decode(data.split(",", 1)[1]))
            w, h = float(img.get("width", qimg.width())), float(img.get("height", qimg.height()))
            page_w = abs(m[0, 0] * w) + abs(m[0, 1] * h)
            page_h = abs(m[1, 0] * w) + abs(m[1, 1] * h)
            fx = max(1, round(page_w / max(qimg.width(), 1)))
            fy = max(1, round(page_h / max(qimg.height(), 1)))
            while fx * fy * qimg.width() * qimg.height() > MAX_IMAGE_PIXELS and (fx > 1 or fy > 1):
                fx, fy = max(1, fx // 2), max(1, fy // 2)
            if fx > 1 or fy > 1:
                qimg = qimg.scaled(
                    qimg.width() * fx,
                    qimg.height() * fy,
                    QtCore.Qt.AspectRatioMode.IgnoreAspectRatio,
                    QtCore.Qt.TransformationMode.FastTransformation,
                )
            buf = QtCore.QBuffer()
            buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
            qimg.save(buf, "PNG")  # type: ignore[call-overload]  # PySide6 takes str, its stubs say bytes
            img.set(href_key, "data:image/png;base64," + base64.b64encode(bytes(buf.data().data())).decode("ascii"))
            img.set("image-rendering", "optimizeSpeed")
            img.set("style", "image-rendering:pixelated")


def content(svg_bytes: bytes) -> list[ET.Element]:
    """The drawn elements of a QSvgGenerator document (what follows its defs)."""
    root = ET.fromstring(svg_bytes)
    return [c for c in root if _tag(c) not in ("title", "desc", "defs")]


def assemble(width: int, height: int, title: str, frame: bytes, boxes: list[tuple[tuple, bytes]]) -> bytes:
    """One SVG: ``frame`` (axes, titles), then each ViewBox's contents clipped to its rectangle
    (``boxes``: ((x, y, w, h) on the page, that box's SVG))."""
    root = ET.Element(
        f"{{{SVG_NS}}}svg",
        {"width": str(width), "height": str(height), "viewBox": f"0 0 {width} {height}", "version": "1.2"},
    )
    ET.SubElement(root, f"{{{SVG_NS}}}title").text = title
    defs = ET.SubElement(root, f"{{{SVG_NS}}}defs")
    ET.SubElement(root, f"{{{SVG_NS}}}rect", {"width": "100%", "height": "100%", "fill": "white"})
    root.extend(content(frame))
    for i, ((x, y, w, h), svg) in enumerate(boxes):
        clip = ET.SubElement(defs, f"{{{SVG_NS}}}clipPath", {"id": f"plot{i}"})
        ET.SubElement(clip, f"{{{SVG_NS}}}rect", {"x": _fmt(x), "y": _fmt(y), "width": _fmt(w), "height": _fmt(h)})
        group = ET.SubElement(root, f"{{{SVG_NS}}}g", {"clip-path": f"url(#plot{i})"})
        group.extend(content(svg))
    flatten(root)
    crisp_images(root)
    for e in root.iter():  # Qt names the font only ("Sans Serif"): add the generic family
        family = e.get("font-family")
        if family and "sans-serif" not in family:
            e.set("font-family", f"{family}, sans-serif")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
