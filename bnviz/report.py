"""``bnviz report RUN -o report.html``: one self-contained HTML page about a run.

Run summary, the findings with a picture each (the view that shows it best, as the viewer's
findings panel would), the overview, the drift of every layer and the layer table. Pictures
are PNGs drawn off screen by the export renderer and embedded as data URIs, so the page is one
file to attach to a pull request or a CI job; the CSS makes it readable on a phone. Every text
from the file is escaped.
"""

from __future__ import annotations

import base64
import datetime
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from bnviz.run_html import esc, findings_table, layer_table, span_text, summary_table

PICTURE_SIZE = (1100, 700)
FINDING_PICTURES = 20  # the most severe findings get a picture; the table lists them all
_GENERATOR = '<meta name="generator" content="bnviz report">'
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;line-height:1.4}
main{max-width:1200px;margin:0 auto;padding:12px}
h1{font-size:1.4em;word-break:break-all}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.6em}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:6px 0}
td,th{padding:3px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #e4e4e4}
code{word-break:break-all}figure{margin:10px 0}img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;color:#444}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,480px),1fr));gap:10px}
footer{color:#777;font-size:.85em;margin:2em 0}
@media (max-width:600px){main{padding:6px}td,th{padding:2px 4px}body{font-size:15px}}
"""

Progress = Callable[[int, int, str], None]


class ReportError(ValueError):
    """Bad report input; the message names the problem and what to do."""


def write_report(
    run_path, out, thresholds=None, progress: Progress | None = None, finding_pictures: int = FINDING_PICTURES
) -> Path:
    """Write the report of the run at ``run_path`` to ``out`` (an .html file); returns ``out``.

    ``progress(done, total, what)`` hears of each picture drawn."""
    from bnviz.analysis.findings import Finding
    from bnviz.analysis.runinfo import describe
    from bnviz.store import open_run
    from bnviz.viewer_deps import require_viewer

    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ReportError(f"{out}: a report is an .html file; name it so (e.g. report.html)")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise ReportError(f"{out}: the folder {parent} does not exist; create it first")
    with open_run(run_path) as run:
        if len(run.steps) == 0:
            raise ReportError(f"{run.path}: the run has no recorded steps yet; nothing to report")
        require_viewer("a report's pictures")
        info = describe(run, thresholds)
        steps = list(run.steps)
        layers = list(dict.fromkeys(li.path for li in run.layers))
    shown = [Finding(**{**f, "channels": tuple(f["channels"])}) for f in info["findings"][:finding_pictures]]
    jobs = [("finding", i, f) for i, f in enumerate(shown)] + [("overview", None, None)]
    jobs += [("drift", name, None) for name in layers]
    pictures = _draw(Path(run_path), jobs, steps, progress)
    page = _page(info, shown, pictures, layers)
    from bnviz.app.render import write_atomically

    write_atomically(out, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return out


def _draw(path: Path, jobs, steps, progress: Progress | None) -> dict:
    """{(what, key): PNG data URI} for each job, drawn off screen."""
    if not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from bnviz.app.finding_view import finding_changes
    from bnviz.app.render import render_view
    from bnviz.app.state import ViewState

    uris: dict = {}
    drawn: dict = {}  # the same view state twice (two findings of one layer): one picture
    with tempfile.TemporaryDirectory(prefix="bnviz-report-") as tmp:
        for n, (what, key, finding) in enumerate(jobs):
            if progress is not None:
                progress(n, len(jobs), f"{what} {key if key is not None else ''}".strip())
            if what == "finding":
                state = ViewState(**finding_changes(finding, steps))
            else:
                state = ViewState(view=what, layer=key)
            ident = tuple(sorted((k, str(v)) for k, v in state.to_dict().items()))
            if ident not in drawn:
                png = Path(tmp) / f"{n}.png"
                render_view(path, png, state=state, size=PICTURE_SIZE)
                drawn[ident] = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
            uris[(what, key)] = drawn[ident]
    if progress is not None:
        progress(len(jobs), len(jobs), "")
    return uris


def _figure(uri: str, caption: str, ident: str | None = None) -> str:
    id_attr = f' id="{esc(ident)}"' if ident else ""
    return (
        f'<figure{id_attr}><img src="{uri}" alt="{esc(caption)}" loading="lazy">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def _page(info: dict, shown, pictures: dict, layers: list[str]) -> str:
    import bnviz

    name = os.path.basename(info["path"])
    anchors = {i: f"finding-{i + 1}" for i in range(len(shown))}
    figures = []
    for i, f in enumerate(shown):
        span = span_text(f.to_dict())
        caption = f"{f.severity:.2f} {f.kind} in {f.layer}{' at steps ' + span if span else ''}: {f.message}"
        figures.append(_figure(pictures[("finding", i)], caption, anchors[i]))
    more = len(info["findings"]) - len(shown)
    if more > 0:
        figures.append(f"<p>{more} less severe findings are in the table above, without pictures.</p>")
    drift = "".join(_figure(pictures[("drift", layer)], f"layer {layer}") for layer in layers)
    made = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{_GENERATOR}\n'
        f"<title>bnviz report: {esc(name)}</title><style>{_CSS}</style></head>\n<body><main>\n"
        f"<h1>bnviz report: {esc(name)}</h1>\n"
        f'<nav><a href="#findings">Findings</a> · <a href="#overview">Overview</a> · '
        f'<a href="#drift">Drift of every layer</a> · <a href="#layers">Layers</a></nav>\n'
        f'<section id="summary"><h2>Run</h2><div class="scroll">{summary_table(info)}</div></section>\n'
        f'<section id="findings"><h2>Findings</h2><div class="scroll">{findings_table(info, anchors)}</div>\n'
        + "\n".join(figures)
        + "</section>\n"
        f'<section id="overview"><h2>Overview</h2>{_figure(pictures[("overview", None)], "every layer, drift")}'
        f"</section>\n"
        f'<section id="drift"><h2>Drift of every layer</h2><div class="grid">{drift}</div></section>\n'
        f'<section id="layers"><h2>Layers</h2><div class="scroll">{layer_table(info, limit=None)}</div></section>\n'
        f"<footer>Made by bnviz {esc(bnviz.__version__)} on {made} from {esc(info['path'])}.</footer>\n"
        "</main></body></html>\n"
    )
