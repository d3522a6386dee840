"""Writing a view to PNG, SVG or CSV: from the live window, or headless from a state.

``render_view`` is what ``bnviz export`` calls: it builds the same view widget the window
shows, from a ``ViewState``, off screen, so an export looks like the screen.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from bnviz.plaintext import printable

FORMATS = (".png", ".svg", ".csv")


class ExportError(ValueError):
    pass


def check_output(path: str | os.PathLike) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ExportError(f"{path}: unsupported extension {ext or '(none)'}; use one of {', '.join(FORMATS)}")
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise ExportError(f"{path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ExportError(f"{path}: the folder {parent} is not writable")
    return ext


def usual_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file: 0o666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(path, write) -> None:
    """Write through a temporary file in the same folder, so a failure leaves nothing behind.
    The result gets the usual mode, not mkstemp's private 0600."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.resolve().parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, usual_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_csv(table: dict, path) -> None:
    """Columns of (possibly) different lengths; empty cells pad the shorter ones; NaN as 'NaN'."""
    names = list(table)
    cols = [np.asarray(table[n]).ravel() for n in names]
    n_rows = max((len(c) for c in cols), default=0)

    def cell(c, i):
        if i >= len(c):
            return ""
        v = c[i]
        if isinstance(v, (float, np.floating)):
            if math.isnan(v):
                return "NaN"
            return repr(float(v))
        return str(v.item() if hasattr(v, "item") else v)

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(names)
            for i in range(n_rows):
                w.writerow([cell(c, i) for c in cols])

    write_atomically(path, write)


CAPTION_HEIGHT = 28


def caption(view) -> str:
    """What an exported picture is of: the file, the layer, which compared run is which, and the
    view's note (what is missing). The window shows the same in its legends and note."""
    from bnviz.app import style

    session = view.session
    parts = [os.path.basename(session.primary.path)]
    if session.state.layer and session.state.view != "overview":
        parts.append(f"layer {session.state.layer}")
    if session.comparing:
        shown = session.visible_slots()
        side = len(shown) > 1 and (session.state.compare_mode == "side" or not view.overlay_ok)
        parts.append(
            ", ".join(
                f"run {s.label} = {os.path.basename(s.path)} "
                f"({'column ' + str(i + 1) if side else style.colour_name(style.run_colour(s.index))})"
                for i, s in enumerate(shown)
            )
        )
    head = " · ".join(parts)
    note = view.note.text()
    return printable(f"{head}.  {note}" if note else head)  # names from the file: text only


def _paint_caption(painter, view, width: int) -> None:
    from PySide6 import QtCore, QtGui

    painter.fillRect(QtCore.QRect(0, 0, width, CAPTION_HEIGHT), QtGui.QColor("white"))
    painter.setPen(QtGui.QColor("black"))
    painter.drawText(
        QtCore.QRect(8, 0, width - 16, CAPTION_HEIGHT),
        int(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter),
        caption(view),
    )


def view_image(view):
    """The view as a QImage with its caption above (PNG export and the clipboard)."""
    from PySide6 import QtCore, QtGui

    view.hover.hide()  # a picture of the data, not of where the mouse was
    plots = view.glw.grab()
    image = QtGui.QImage(plots.width(), plots.height() + CAPTION_HEIGHT, QtGui.QImage.Format_RGB32)
    painter = QtGui.QPainter(image)
    try:
        _paint_caption(painter, view, plots.width())
        painter.drawPixmap(QtCore.QPoint(0, CAPTION_HEIGHT), plots)
    finally:
        painter.end()
    return image


def write_png(view, path) -> None:
    def write(tmp):
        if not view_image(view).save(tmp, "PNG"):
            raise ExportError(f"{path}: Qt could not write the PNG")

    write_atomically(path, write)


def write_svg(view, path) -> None:
    """The view as SVG that renders the same in browsers and librsvg (see ``bnviz.app.svg``):
    frames from the scene, each plot's contents painted on their own and clipped to it.
    (pyqtgraph 0.14.0's SVGExporter fails on this Qt: pyqtgraph#3485.)"""
    import pyqtgraph as pg
    from PySide6 import QtCore, QtGui

    from bnviz.app import svg

    view.hover.hide()
    rect = view.glw.viewport().rect()
    width, height = rect.width(), rect.height() + CAPTION_HEIGHT
    dpi = view.glw.logicalDpiY()
    source = view.glw.mapToScene(rect).boundingRect()
    scene = view.glw.scene()
    page = QtGui.QTransform.fromTranslate(-source.x(), CAPTION_HEIGHT - source.y())
    boxes = [i for i in scene.items(QtCore.Qt.SortOrder.AscendingOrder) if isinstance(i, pg.ViewBox) and i.isVisible()]

    def frame(painter):
        _paint_caption(painter, view, rect.width())
        shown = [vb.childGroup.isVisible() for vb in boxes]
        for vb in boxes:
            vb.childGroup.setVisible(False)
        try:
            scene.render(painter, QtCore.QRectF(0, CAPTION_HEIGHT, rect.width(), rect.height()), source)
        finally:
            for vb, on in zip(boxes, shown):
                vb.childGroup.setVisible(on)

    def contents(vb):
        return lambda painter: _paint_items(painter, vb.childGroup.childItems(), page)

    def write(tmp):
        clipped = []
        for vb in boxes:
            r = page.mapRect(vb.sceneBoundingRect())
            clipped.append(((r.x(), r.y(), r.width(), r.height()), _svg_bytes(width, height, contents(vb), path, dpi)))
        data = svg.assemble(width, height, caption(view), _svg_bytes(width, height, frame, path, dpi), clipped)
        Path(tmp).write_bytes(data)

    write_atomically(path, write)


def _svg_bytes(width: int, height: int, paint, path, dpi: int) -> bytes:
    from PySide6 import QtCore, QtGui, QtSvg

    buf = QtCore.QBuffer()
    buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    gen = QtSvg.QSvgGenerator()
    gen.setOutputDevice(buf)
    gen.setSize(QtCore.QSize(width, height))
    gen.setViewBox(QtCore.QRect(0, 0, width, height))
    gen.setResolution(dpi)  # the screen's: axes cached at screen resolution must not shrink
    painter = QtGui.QPainter()
    if not painter.begin(gen):
        raise ExportError(f"{path}: Qt could not start the SVG")
    try:
        paint(painter)
    finally:
        painter.end()
    return bytes(buf.data().data())


def _paint_items(painter, items, page) -> None:
    """Paint graphics items and their children in stacking order, each with its scene transform
    then ``page``; items in export mode (pyqtgraph then draws symbols as paths, not pixmaps)."""
    from PySide6 import QtWidgets

    option = QtWidgets.QStyleOptionGraphicsItem()
    behind = QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemStacksBehindParent
    for item in sorted(items, key=lambda i: i.zValue()):
        if not item.isVisible():
            continue
        kids = sorted(item.childItems(), key=lambda i: i.zValue())
        back = [k for k in kids if k.zValue() < 0 or k.flags() & behind]
        _paint_items(painter, back, page)
        exporting = hasattr(item, "setExportMode")
        if exporting:
            item.setExportMode(True, {"antialias": True, "background": None, "painter": painter})
        painter.save()
        try:
            painter.setTransform(item.sceneTransform() * page)
            painter.setOpacity(item.effectiveOpacity())
            item.paint(painter, option, None)
        finally:
            painter.restore()
            if exporting:
                item.setExportMode(False)
        _paint_items(painter, [k for k in kids if k not in back], page)


def export_view(view, path) -> None:
    """Write the view as shown, by the file's extension."""
    ext = check_output(path)
    if ext == ".csv":
        write_csv(view.export_table(), path)
    elif ext == ".png":
        write_png(view, path)
    else:
        write_svg(view, path)


def ensure_app(antialias: bool = False):
    """The QApplication, created off screen when there is no display (CI, servers)."""
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        _quiet_offscreen_notes()
        app = QtWidgets.QApplication([])
    from bnviz.app import style

    style.configure(antialias)
    return app


def _quiet_offscreen_notes() -> None:
    """The offscreen platform says, once per window, that it cannot propagate size hints: noise
    on every headless export's stderr. Everything else Qt says still goes to stderr."""
    from PySide6 import QtCore

    def handler(mode, context, message):
        if "propagateSizeHints" not in message:
            print(message, file=sys.stderr)

    QtCore.qInstallMessageHandler(handler)


def render_view(path, out, state=None, compare=None, size=(1400, 900)) -> None:
    """Headless: open ``path`` (and ``compare``: another path or a list of them, compared, layers
    matched by name), draw ``state``'s view and write ``out``.

    ``state`` is a ``ViewState`` (default: the first layer's drift view at the last step)."""
    check_output(out)
    app = ensure_app(antialias=True)
    from bnviz.app import style
    from bnviz.app.session import Session
    from bnviz.app.state import ViewState
    from bnviz.app.views import VIEW_CLASSES

    session = Session(ViewState.from_dict(state.to_dict()) if state is not None else ViewState())
    others = [compare] if isinstance(compare, (str, os.PathLike)) else list(compare or ())
    session.open(os.fspath(path), *(str(os.fspath(p)) for p in others), keep_state=True)
    try:
        view = VIEW_CLASSES[session.state.view](session)
        view.resize(*size)
        view.show()
        view.rebuild()
        app.processEvents()
        export_view(view, out)
        view.close()
        view.deleteLater()
        app.processEvents()
    finally:
        session.close()
        style.configure()
