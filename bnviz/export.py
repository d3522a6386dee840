"""``bnviz.export(...)``: views of a recording as PNG, SVG or CSV files, without a screen.

The pictures come from the viewer's own plotting code (``bnviz.app.render``) driven by a
``ViewState``, so an export looks like the screen. Files are written to a temporary name and
renamed when complete: a failed export leaves nothing half-written behind.

This module imports only the standard library at load time (``import bnviz`` stays light);
numpy, the store and Qt load when an export runs.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import html
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bnviz.plaintext import printable

FORMATS = ("png", "svg", "csv")
# The CLI spells views with hyphens; the view state with underscores (a test checks they agree
# with bnviz.app.state.VIEWS; importing that here would make ``import bnviz`` load numpy).
VIEWS = ("drift", "channels", "distribution", "history", "gamma-beta", "train-eval", "overview", "layers", "ranks")
# Marks an index page as ours, so a later export may replace its folder.
_GENERATOR = '<meta name="generator" content="bnviz export">'

Progress = Callable[[int, int, str], None]


class ExportError(ValueError):
    """Bad export input; the message names the problem and what to do."""


def export(
    run,
    out,
    *,
    layer: str | list[str] | None = None,
    view: str = "drift",
    steps: str | tuple[int | None, int | None] | None = None,
    compare=None,
    fmt: str | None = None,
    progress: Progress | None = None,
    colour_limits: tuple[float, float] | None = None,
    log_colours: bool = False,
    log_y: tuple[int, ...] = (),
) -> list[Path]:
    """Write ``view`` of the matching layers of ``run`` to ``out``; returns the files written.

    ``run`` and ``compare`` are paths or open runs (``bnviz.open_run``); ``compare`` may be a
    list of them (any number of runs, ``A.``, ``B.``, ``C.``... in CSV columns, each in its
    colour in pictures, layers matched by name). ``layer``: names or
    glob patterns (``"layer3.*"``); None means every layer. ``steps``: ``"A:B"`` or ``(A, B)``,
    either end open; the distribution view overlays step A (the reference) on step B.
    The format comes from ``out``'s extension, or ``fmt`` when ``out`` is a folder. One layer
    writes one file; several write a folder (``out`` without its extension) holding one file per
    layer and an ``index.html``. ``colour_limits`` (low, high) and ``log_colours``: the heatmap's
    colour scale (channels, history, overview); ``log_y``: numbers of the plots (from 1, top to
    bottom then left to right) drawn with a log y axis. Raises ``ExportError`` on bad input,
    ``bnviz.store.RunFileError`` on unreadable files.
    """
    view = check_view(view)
    look = _look(view, colour_limits, log_colours, log_y)
    out = Path(out)
    fmt, single = _format(out, fmt)
    from bnviz.store import open_run

    with ExitStack() as opened:
        main = run if hasattr(run, "layers") else opened.enter_context(open_run(run))
        others = [r if hasattr(r, "layers") else opened.enter_context(open_run(r)) for r in _runs(compare)]
        if len(main.steps) == 0:
            raise ExportError(f"{main.path}: the run has no recorded steps yet; nothing to export")
        step_range = _step_range(main, steps)
        names = [None] if view == "overview" else select_layers(main, layer)
        folder = out if not single or len(names) > 1 else None
        if folder is not None and out.suffix:
            folder = out.with_suffix("")
        target = folder or out
        _check_writable(target)
        return _write(main, others, view, names, step_range, fmt, target, folder is not None, progress, look)


def check_view(view: str) -> str:
    v = view.replace("_", "-")
    if v not in VIEWS:
        raise ExportError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
    return v


def _format(out: Path, fmt: str | None) -> tuple[str, bool]:
    """(format, out names a file)."""
    ext = out.suffix.lower().lstrip(".")
    if ext:
        if ext not in FORMATS:
            raise ExportError(
                f"{out}: unsupported extension .{ext}; use .png, .svg or .csv (or a folder name with --format)"
            )
        if fmt is not None and fmt.lower() != ext:
            raise ExportError(f"{out}: the extension .{ext} contradicts the format {fmt!r}")
        return ext, True
    fmt = (fmt or "png").lower()
    if fmt not in FORMATS:
        raise ExportError(f"unsupported format {fmt!r}; use png, svg or csv")
    return fmt, False


def select_layers(run, patterns: str | list[str] | None) -> list[str]:
    """Layer paths matching names or glob patterns, in forward order.

    An unmatched pattern is an error that suggests the closest layer names."""
    names = list(dict.fromkeys(li.path for li in run.layers))  # views select layers by name
    if patterns is None:
        return names
    if isinstance(patterns, str):
        patterns = [patterns]
    chosen: set[str] = set()
    for p in patterns:
        hits = [n for n in names if n == p or fnmatch.fnmatchcase(n, p)]
        if not hits:
            close = difflib.get_close_matches(p, names, n=3, cutoff=0.5)
            hint = (
                f"; did you mean {' or '.join(close)}?" if close else (f"; the run's layers are {_short_list(names)}")
            )
            raise ExportError(f"{run.path}: no layer matches {p!r}{hint}")
        chosen.update(hits)
    return [n for n in names if n in chosen]


def _short_list(names: list[str], limit: int = 6) -> str:
    return ", ".join(names[:limit]) + (f" ... ({len(names)} in all)" if len(names) > limit else "")


def parse_steps(text: str) -> tuple[int | None, int | None]:
    """``"A:B"``, ``"A:"`` or ``":B"`` (inclusive) -> (A, B); None for an open end."""
    lo, sep, hi = str(text).partition(":")
    try:
        if not sep:
            raise ValueError
        return (int(lo) if lo.strip() else None, int(hi) if hi.strip() else None)
    except ValueError:
        raise ExportError(
            f"step range {text!r}: expected A:B with whole numbers, either may be left out (100:, :500)"
        ) from None


def _step_range(run, steps) -> tuple[int, int] | None:
    """The recorded steps [first, last] inside the requested range (None: no range asked for);
    a range holding no recorded step is an error."""
    import numpy as np

    if steps is None:
        return None
    lo, hi = parse_steps(steps) if isinstance(steps, str) else steps
    if lo is not None and hi is not None and lo > hi:
        raise ExportError(f"step range {lo}:{hi} is empty: the start is after the end")
    recorded = np.asarray(run.steps)
    keep = np.ones(len(recorded), bool)
    if lo is not None:
        keep &= recorded >= lo
    if hi is not None:
        keep &= recorded <= hi
    if not keep.any():
        raise ExportError(
            f"{run.path}: no recorded step in {'' if lo is None else lo}:"
            f"{'' if hi is None else hi}; the run has steps {recorded.min()} to {recorded.max()}"
        )
    return int(recorded[keep].min()), int(recorded[keep].max())


def _check_writable(target: Path) -> None:
    parent = target.resolve().parent
    if not parent.is_dir():
        raise ExportError(f"{target}: the folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"{target}: cannot write into {parent} (permission denied)")
    if target.is_dir() and any(target.iterdir()) and not _is_our_folder(target):
        raise ExportError(
            f"{target} is a folder that a bnviz export did not write; choose another output path or remove it"
        )
    if target.exists() and not target.is_dir() and target.suffix == "":
        raise ExportError(f"{target} exists and is not a folder")


def _is_our_folder(folder: Path) -> bool:
    index = folder / "index.html"
    try:
        return index.is_file() and _GENERATOR in index.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


# A file name's stem is at most this many bytes of UTF-8 (file systems allow 255 per name).
MAX_STEM_BYTES = 100
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def file_names(layers: list, view: str, fmt: str) -> list[str]:
    """One file name per layer (None: the view), distinct from each other even where case does
    not count, and valid on any file system: letters, digits and ``._-`` (dots in module paths
    stay), no leading dot, at most MAX_STEM_BYTES. A name that had to change gets a short hash of
    the real one, so ``a/b``, ``a_b`` and ``a b`` never overwrite one another."""
    bases = [layer if layer is not None else view for layer in layers]
    stems = [_safe_stem(b) for b in bases]
    folded = Counter(s.casefold() for s in stems)
    names = []
    for base, stem in zip(bases, stems):
        if stem != base or folded[stem.casefold()] > 1 or stem.split(".")[0].casefold() in _RESERVED:
            digest = hashlib.sha1(base.encode("utf-8", "surrogatepass")).hexdigest()[:8]
            stem = f"{stem}-{digest}"
        names.append(f"{stem}.{fmt}")
    return names


def _safe_stem(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).lstrip(".") or "_"
    raw = safe.encode("utf-8")
    if len(raw) > MAX_STEM_BYTES:
        safe = raw[:MAX_STEM_BYTES].decode("utf-8", "ignore")
    return safe


def _look(view: str, colour_limits, log_colours: bool, log_y) -> dict:
    """The view state fields of the colour scale and log axes an export asks for."""
    from bnviz.app.colour_scale import check_limits
    from bnviz.app.state import ViewState, heatmap_key, plot_key

    name = view.replace("-", "_")
    key = heatmap_key(ViewState(view=name))
    if (colour_limits is not None or log_colours) and not key:
        raise ExportError(f"colour limits and log colours are for heatmaps; the {view} view has none")
    if any(int(n) < 1 for n in log_y):
        raise ExportError(f"log y plots are numbered from 1 (top to bottom, then left to right), got {list(log_y)}")
    try:
        limits = {key: check_limits(*colour_limits)} if colour_limits is not None else {}
    except (TypeError, ValueError) as e:
        raise ExportError(f"colour limits: {e}") from None
    return {
        "colour_limits": limits,
        "colour_log": (key,) if log_colours else (),
        "log_y": tuple(plot_key(name, int(n) - 1) for n in log_y),
    }


def _write(
    main, others, view, names, step_range, fmt, target: Path, as_folder: bool, progress: Progress | None, look: dict
) -> list[Path]:
    draw = _csv_writer(main, others) if fmt == "csv" else _picture_writer(main, others, fmt)
    parent = target.resolve().parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        written = []
        files = file_names(names, view, fmt)
        for i, name in enumerate(names):
            if progress is not None:
                progress(i, len(names), printable(name or view))
            path = tmp / (files[i] if as_folder else target.name)
            draw(_state(view, name, step_range, look), path)
            written.append(path.name)
        if progress is not None:
            progress(len(names), len(names), "")
        if as_folder:
            labels = [name or view for name in names]
            (tmp / "index.html").write_text(_index_html(main, view, written, labels), encoding="utf-8")
            _give_usual_modes(tmp)
            _replace(tmp, target)
            return [target / w for w in written]
        _give_usual_modes(tmp)
        os.replace(tmp / target.name, target)
        return [target]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _runs(compare) -> list:
    """``compare`` as a list: nothing, one path or run, or a sequence of them."""
    if compare is None:
        return []
    if isinstance(compare, (str, os.PathLike)) or hasattr(compare, "layers"):
        return [compare]
    return list(compare)


def _csv_writer(main, others):
    """CSV needs no Qt: the views' tables come from the open runs (bnviz.app.tables)."""
    from bnviz.app.render import write_csv
    from bnviz.app.tables import export_table

    return lambda state, path: write_csv(export_table(state, main, *others), path)


def _picture_writer(main, others, fmt: str):
    from bnviz.viewer_deps import require_viewer

    require_viewer(f"{fmt.upper()} export")
    # Headless: no window ever shows, with or without a display (a caller may still choose).
    if not os.environ.get("QT_QPA_PLATFORM"):  # unset or empty
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from bnviz.app.render import render_view

    compare = [r.path for r in others]
    return lambda state, path: render_view(main.path, path, state=state, compare=compare)


def _give_usual_modes(folder: Path) -> None:
    """Temporary files are private (0600/0700); the results get what a plain open() would give."""
    from bnviz.app.render import usual_file_mode

    mode = usual_file_mode()
    folder.chmod(mode | ((mode & 0o444) >> 2))  # a folder also gets x wherever it gets r
    for f in folder.iterdir():
        f.chmod(mode)


def _state(view: str, layer: str | None, step_range: tuple[int, int] | None, look: dict):
    """The view state an export draws: the whole run at its last step, or the chosen range with
    the cursor at its end (and, for the distribution view, its start pinned as the reference)."""
    from bnviz.app.state import ViewState

    if step_range is None:
        return ViewState(view=view.replace("-", "_"), layer=layer, **look)
    lo, hi = step_range
    ref = lo if view == "distribution" and lo != hi else None
    return ViewState(
        view=view.replace("-", "_"), layer=layer, step_range=step_range, step=hi, reference_step=ref, **look
    )


def _replace(tmp: Path, target: Path) -> None:
    """Swap the finished folder in; an earlier export's folder is removed only afterwards."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _index_html(run, view: str, files: list[str], labels: list[str]) -> str:
    """The folder's index: each file under its layer's real name (escaped: names are text)."""
    title = html.escape(printable(f"bnviz {view}: {os.path.basename(run.path)}"))
    items = []
    for f, layer in zip(files, labels):
        name, label = html.escape(f), html.escape(printable(layer))
        items.append(
            f'<li><a href="{name}">{label}</a></li>'
            if f.endswith(".csv")
            else f'<figure><figcaption>{label}</figcaption><img src="{name}" alt="{label}"></figure>'
        )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8">{_GENERATOR}<title>{title}</title>'
        f"</head>\n<body><h1>{title}</h1>\n" + "\n".join(items) + "\n</body></html>\n"
    )


def stderr_progress(done: int, total: int, name: str) -> None:
    """A one-line progress bar on a terminal, one line per file otherwise."""
    if total <= 1:
        return
    if sys.stderr.isatty():
        width = 30
        bar = "#" * (width * done // total)
        end = "\n" if done == total else ""
        print(f"\r[{bar:<{width}}] {done}/{total} {name[:40]:<40}", end=end, file=sys.stderr, flush=True)
    elif done < total:
        print(f"[{done + 1}/{total}] {name}", file=sys.stderr, flush=True)
