"""A run described in HTML: summary, layer and findings tables, from ``bnviz info``'s structure.

Shared by the notebook display (``Run._repr_html_``) and ``bnviz report``. Every text that comes
from a file (paths, layer and model names, scalar names, messages) is escaped: a recording may
hold any string.
"""

from __future__ import annotations

import html

from bnviz.analysis.runinfo import duration_text, ranks_text, size_text

LAYER_LIMIT = 50


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(head: list[str], rows: list[list[str]], css: str) -> str:
    """A table of already-escaped cells."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _steps_text(info: dict) -> str:
    st = info["steps"]
    if not st["rows"]:
        return "none recorded yet"
    phases = ", ".join(f"{n} {name}" for name, n in st["phases"].items() if n)
    return f"{st['first']} to {st['last']}: {st['rows']} rows ({phases})"


def summary_table(info: dict) -> str:
    state = info["writer_state"] + (", recording FAILED (write error)" if info["recording_failed"] else "")
    if info["dropped_steps"]:
        state += f", {info['dropped_steps']} steps dropped"
    rows = [
        ("file", info["path"]),
        ("size", size_text(info["file_size"])),
        ("format", info["format_version"]),
        ("writer", state),
        ("model", info["model"] or "unknown"),
        ("steps", _steps_text(info)),
        ("took", duration_text(info["duration_s"])),
        ("layers", len(info["layers"])),
        ("scalars", ", ".join(info["scalars"]) or "none"),
        ("findings", len(info["findings"]) or "none"),
    ]
    if ranks_text(info):
        rows.append(("ranks", ranks_text(info)))
    return _table(["", ""], [[f"<b>{esc(k)}</b>", esc(v)] for k, v in rows], "bnviz-summary")


def layer_table(info: dict, limit: int | None = LAYER_LIMIT) -> str:
    layers = info["layers"] if limit is None else info["layers"][:limit]
    rows = [
        [
            esc(li["index"]),
            f"<code>{esc(li['path'])}</code>",
            esc(li["kind"]),
            esc(li["num_features"]),
            esc(li["activation"] or "unknown"),
        ]
        for li in layers
    ]
    more = len(info["layers"]) - len(layers)
    tail = f"<p>… {more} more layers</p>" if more > 0 else ""
    return _table(["#", "layer", "kind", "channels", "followed by"], rows, "bnviz-layers") + tail


def span_text(f: dict) -> str:
    if f["first_step"] is None:
        return ""
    return str(f["first_step"]) if f["last_step"] == f["first_step"] else f"{f['first_step']}–{f['last_step']}"


def findings_table(info: dict, anchors: dict[int, str] | None = None) -> str:
    """The findings, most severe first; ``anchors`` links finding i to an id in the page."""
    if not info["findings"]:
        return "<p>No findings.</p>"
    rows = []
    for i, f in enumerate(info["findings"]):
        kind = esc(f["kind"])
        if anchors and i in anchors:
            kind = f'<a href="#{esc(anchors[i])}">{kind}</a>'
        rows.append(
            [f"{f['severity']:.2f}", kind, f"<code>{esc(f['layer'])}</code>", esc(span_text(f)), esc(f["message"])]
        )
    return _table(["severity", "kind", "layer", "steps", "what"], rows, "bnviz-findings")
