"""Every command of the window with its keys: the menus, the key bindings and the F1 cheatsheet
are built from this one table, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bnviz.app.state import VIEW_TITLES, VIEWS


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
    se = w.session
    items = [
        Shortcut("open", "&Open…", ("Ctrl+O",), w.files.open_dialog, "&File"),
        Shortcut("add_run", "&Add runs to compare…", ("Ctrl+Shift+O",), w.runs.add_dialog, "&File"),
        Shortcut("reload", "&Reload (keeps the view)", ("Ctrl+R", "F5"), w.files.reload, "&File"),
        Shortcut("remove_run", "Remove the run selected in the run list", (), w.runs.remove_current, "&File"),
        Shortcut("info", "Run &information…", ("Ctrl+I",), w.show_run_info, "&File"),
        Shortcut("save_layout", "&Save layout…", ("Ctrl+S",), w.files.save_layout, "&File"),
        Shortcut("load_layout", "&Load layout…", ("Ctrl+L",), w.files.load_layout, "&File"),
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
        Shortcut("whole_run", "Show the &whole run", ("A",), lambda: se.zoom(None), "&View"),
        Shortcut(
            "x_axis",
            "Time axis: steps ⟷ elapsed wall time",
            ("T",),
            lambda: st.update(x_axis="time" if st.x_axis == "step" else "step"),
            "&View",
        ),
        Shortcut(
            "crosshair",
            "&Hover readout: crosshair and values (on / off)",
            ("H",),
            lambda: st.update(crosshair=not st.crosshair),
            "&View",
        ),
        Shortcut(
            "log_y",
            "&Log y axis of the plot under the mouse (on / off)",
            ("L",),
            lambda: w.current_view().toggle_log_y(),
            "&View",
        ),
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
        Shortcut("prev", "Previous step", ("Left",), lambda: se.step_rows(-1), "&Go"),
        Shortcut("next", "Next step", ("Right",), lambda: se.step_rows(1), "&Go"),
        Shortcut("back", "Jump back 5%", ("Shift+Left",), lambda: se.jump(-1), "&Go"),
        Shortcut("forward", "Jump forward 5%", ("Shift+Right",), lambda: se.jump(1), "&Go"),
        Shortcut("first", "First step", ("Home",), lambda: se.go_row(0), "&Go"),
        Shortcut("last", "Last step (a live run: follow it)", ("End",), lambda: se.go_row(-1), "&Go"),
        Shortcut("pin", "Pin &reference step", ("R",), se.pin_reference, "&Go"),
        Shortcut("unpin", "Clear reference step", ("Shift+R",), lambda: st.update(reference_step=None), "&Go"),
        Shortcut("follow", "&Follow the live run (on / off)", ("F",), lambda: se.follow(not st.follow_latest), "&Go"),
        Shortcut("go_to_step", "&Go to step…", ("Ctrl+G",), w.go_to_step_dialog, "&Go"),
        Shortcut("bookmark", "&Bookmark the step (on / off)", ("B",), se.toggle_bookmark, "&Go"),
        Shortcut("next_bookmark", "Next bookmark", (".",), lambda: se.go_bookmark(1), "&Go"),
        Shortcut("prev_bookmark", "Previous bookmark", (",",), lambda: se.go_bookmark(-1), "&Go"),
        Shortcut("next_layer", "Next layer", ("]",), lambda: se.next_layer(1), "&Go"),
        Shortcut("prev_layer", "Previous layer", ("[",), lambda: se.next_layer(-1), "&Go"),
        Shortcut("next_finding", "Next finding", ("N",), lambda: w.findings.step(1), "&Go"),
        Shortcut("prev_finding", "Previous finding", ("Shift+N",), lambda: w.findings.step(-1), "&Go"),
        Shortcut("filter_layers", "&Filter layers…", ("Ctrl+F",), lambda: w.tree.filter_box.setFocus(), "&View"),
        Shortcut("copy", "&Copy the view as a picture", ("Ctrl+Shift+C",), w.copy_view, "&File"),
        Shortcut("next_reference", "Next run as the reference", ("Ctrl+]",), lambda: se.cycle_reference(1), "&Go"),
        Shortcut("toggle_others", "Show only the reference run ⟷ every run", ("O",), se.toggle_others, "&View"),
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
        "  run list: tick a run to show it, double-click it to make it the reference",
        "  drop recordings on the window to open them, on the run list to add them",
        "  right-click a plot to export it, or for its own log axis (Plot Options > Transforms; L does the same)",
        "  hover a line plot: a crosshair and every series' value (H turns it off)",
    ]
    return "\n".join(f"{k.ljust(width)}   {t}" for k, t in rows) + "\n" + "\n".join(extra)
