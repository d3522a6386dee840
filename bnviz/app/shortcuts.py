"""Every command of the window with its keys: the menus, the key bindings and the F1 cheatsheet
are built from this one table, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bnviz.app.state import VIEW_TITLES, VIEWS
from bnviz.app.timeline import big_jump


@dataclass
class Shortcut:
    name: str
    text: str
    keys: tuple[str, ...]
    fn: Callable
    menu: str | None = None
    checkable: bool = False


def shortcuts(w) -> list[Shortcut]:
    """The commands of MainWindow ``w``."""
    st = w.session.state
    tl = w.timeline
    n = lambda: len(w.session.steps)  # noqa: E731
    items = [
        Shortcut("open", "&Open…", ("Ctrl+O",), w.open_dialog, "&File"),
        Shortcut("open_compare", "Open to &compare…", ("Ctrl+Shift+O",), lambda: w.open_dialog(True), "&File"),
        Shortcut("reload", "&Reload (keeps the view)", ("Ctrl+R", "F5"), w.reload, "&File"),
        Shortcut("close_compare", "Close the compared run", (), w.close_compare, "&File"),
        Shortcut("info", "Run &information…", ("Ctrl+I",), w.show_run_info, "&File"),
        Shortcut("save_layout", "&Save layout…", ("Ctrl+S",), w.save_layout, "&File"),
        Shortcut("load_layout", "&Load layout…", ("Ctrl+L",), w.load_layout, "&File"),
        Shortcut("export_png", "Export view as &PNG…", ("Ctrl+E",), lambda: w.export_dialog(".png"), "&File"),
        Shortcut("export_svg", "Export view as S&VG…", (), lambda: w.export_dialog(".svg"), "&File"),
        Shortcut("export_csv", "Export view data as &CSV…", (), lambda: w.export_dialog(".csv"), "&File"),
        Shortcut("quit", "&Quit", ("Ctrl+Q",), w.close, "&File"),
    ]
    for i, key in enumerate(VIEWS):
        items.append(Shortcut(f"view_{key}", VIEW_TITLES[key], (str(i + 1),), lambda k=key: st.update(view=k), "&View"))
    items += [
        Shortcut(
            "link_zoom",
            "&Linked zoom of time plots",
            ("Z",),
            lambda on: st.update(link_zoom=on),
            "&View",
            checkable=True,
        ),
        Shortcut("whole_run", "Show the &whole run", ("A",), lambda: st.update(step_range=None), "&View"),
        Shortcut(
            "compare_mode",
            "Compare: overlay ⟷ side by side",
            ("C",),
            lambda: st.update(compare_mode="side" if st.compare_mode == "overlay" else "overlay"),
            "&View",
        ),
        Shortcut(
            "phase",
            "Phase: train → eval → all",
            ("P",),
            lambda: st.update(phase={"train": "eval", "eval": "all", "all": "train"}[st.phase]),
            "&View",
        ),
        Shortcut("play", "&Play / pause", ("Space",), tl.toggle_play, "&Go"),
        Shortcut("prev", "Previous step", ("Left",), lambda: tl.step_rows(-1), "&Go"),
        Shortcut("next", "Next step", ("Right",), lambda: tl.step_rows(1), "&Go"),
        Shortcut("back", "Jump back 5%", ("Shift+Left",), lambda: tl.step_rows(-big_jump(n())), "&Go"),
        Shortcut("forward", "Jump forward 5%", ("Shift+Right",), lambda: tl.step_rows(big_jump(n())), "&Go"),
        Shortcut("first", "First step", ("Home",), lambda: tl.go_row(0), "&Go"),
        Shortcut("last", "Last step", ("End",), lambda: tl.go_row(-1), "&Go"),
        Shortcut("pin", "Pin &reference step", ("R",), tl.pin_reference, "&Go"),
        Shortcut("unpin", "Clear reference step", ("Shift+R",), lambda: st.update(reference_step=None), "&Go"),
        Shortcut(
            "follow", "&Follow latest (live)", ("F",), lambda: st.update(follow_latest=not st.follow_latest), "&Go"
        ),
        Shortcut("help", "&Keyboard shortcuts", ("F1",), w.show_cheatsheet, "&Help"),
    ]
    return items


def cheatsheet_text(items: list[Shortcut]) -> str:
    rows = [(" / ".join(s.keys), s.text.replace("&", "").rstrip("…")) for s in items if s.keys]
    width = max(len(k) for k, _ in rows)
    extra = [
        "",
        "Mouse:",
        "  drag the black cursor line in any time plot to move the step",
        "  drag the blue band in the strip to zoom the time plots (double-click: whole run)",
        "  mouse wheel zooms a plot, dragging pans it",
        "  click a heatmap cell to pick its channel (or layer) and step",
        "  right-click a plot to export it",
    ]
    return "\n".join(f"{k.ljust(width)}   {t}" for k, t in rows) + "\n" + "\n".join(extra)
