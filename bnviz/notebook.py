"""bnviz in a notebook: a run's summary as HTML, views as inline pictures, findings as a DataFrame.

``Run._repr_html_`` (what a cell ending in a run shows) comes from ``run_html``;
``bnviz.show(run, layer=..., view=...)`` returns a ``Picture`` that Jupyter displays inline as
PNG or SVG, drawn by the export renderer off screen (no display needed, so a kernel on a server
works); ``bnviz.findings_frame(run)`` gives the findings as a pandas DataFrame.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bnviz.run_html import findings_table, layer_table, summary_table

_CSS = (
    "<style>.bnviz-run table{border-collapse:collapse;margin:4px 0 10px}"
    ".bnviz-run td,.bnviz-run th{padding:2px 8px;text-align:left;vertical-align:top;"
    "border-bottom:1px solid #ddd}</style>"
)


def run_html(run, thresholds=None) -> str:
    """The run's summary, layer table and findings (most severe first) as an HTML fragment."""
    from bnviz.analysis.runinfo import describe

    info = describe(run, thresholds)
    return (
        f'{_CSS}<div class="bnviz-run"><h4>bnviz run</h4>{summary_table(info)}'
        f"<details><summary>{len(info['layers'])} layers</summary>{layer_table(info)}</details>"
        f"<h4>Findings</h4>{findings_table(info)}</div>"
    )


class Picture:
    """One view of one layer, drawn on first display as PNG or SVG and kept.

    ``_repr_png_``/``_repr_svg_`` are what Jupyter calls; ``save(path)`` writes .png or .svg."""

    def __init__(self, run, layer: str | None, view: str, steps, compare):
        self._args = dict(run=run, layer=layer, view=view, steps=steps, compare=compare)
        self._drawn: dict[str, bytes] = {}
        self.layer, self.view = layer, view

    def _draw(self, fmt: str) -> bytes:
        if fmt not in self._drawn:
            from bnviz.export import export

            with tempfile.TemporaryDirectory(prefix="bnviz-show-") as tmp:
                (path,) = export(out=Path(tmp) / f"view.{fmt}", **self._args)
                self._drawn[fmt] = path.read_bytes()
        return self._drawn[fmt]

    def _repr_png_(self) -> bytes:
        return self._draw("png")

    def _repr_svg_(self) -> str:
        return self._draw("svg").decode("utf-8")

    def save(self, path) -> Path:
        path = Path(path)
        path.write_bytes(self._draw(path.suffix.lower().lstrip(".")))
        return path

    def __repr__(self) -> str:
        return f"<bnviz Picture: {self.view} view of layer {self.layer}>"


def show(run, layer: str | None = None, view: str = "drift", steps=None, compare=None) -> Picture:
    """A picture of ``view`` for one layer of ``run`` (a path or an open run), to display inline.

    ``layer``: a name or a glob matching one layer (default: the first layer; the overview
    view shows every layer). ``steps`` (``"A:B"``) and ``compare`` (a second run, overlaid) are
    those of ``bnviz.export``. Bad input raises ``bnviz.export.ExportError`` at once."""
    from bnviz.export import ExportError, check_view, select_layers
    from bnviz.store import open_run

    view = check_view(view)
    with ExitStack() as opened:
        opened_run = run if hasattr(run, "layers") else opened.enter_context(open_run(run))
        names = [li.path for li in opened_run.layers]
        if view == "overview":
            chosen = None
        elif layer is None:
            chosen = names[0] if names else None
        else:
            matched = select_layers(opened_run, layer)
            if len(matched) > 1:
                raise ExportError(
                    f"{layer!r} matches {len(matched)} layers ({', '.join(matched[:4])}, ...); "
                    f"show draws one: give its name"
                )
            chosen = matched[0]
    return Picture(_path(run), chosen, view, steps, None if compare is None else _path(compare))


def _path(run) -> str:
    return os.fspath(run.path if hasattr(run, "layers") else run)


def findings_frame(run, thresholds=None):
    """The findings of ``run`` (a path or an open run) as a pandas DataFrame, most severe first."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("findings_frame needs pandas, which is not installed: pip install pandas") from None
    from bnviz.analysis.findings import findings
    from bnviz.store import open_run

    columns = ["severity", "kind", "layer", "channels", "first_step", "last_step", "message", "value"]
    with ExitStack() as opened:
        opened_run = run if hasattr(run, "layers") else opened.enter_context(open_run(run))
        rows = [f.to_dict() for f in findings(opened_run, thresholds)]
    return pd.DataFrame(rows, columns=columns)
