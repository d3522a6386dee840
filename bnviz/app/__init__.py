"""bnviz's desktop viewer (PySide6 + pyqtgraph; never imports torch).

``run_viewer(paths, compare)`` is what ``bnviz view`` / ``bnviz FILE`` / ``bnviz demo`` call;
``main(argv)`` is a standalone entry (``python -m bnviz.app FILE``). Qt is imported only when
a window is made, so importing this package stays cheap for the CLI.
"""

from __future__ import annotations

import argparse


def run_viewer(paths: list[str], compare: str | None = None, settings=None, layer: str | None = None) -> int:
    """Show the window with ``paths[0]`` open (a second path, or ``compare``, opens as the run
    to compare), ``layer`` selected if given, and run the event loop; returns the exit status."""
    from bnviz.app.main_window import MainWindow
    from bnviz.app.render import ensure_app

    app = ensure_app()
    app.setApplicationName("bnviz")
    window = MainWindow(settings)
    window.show()
    if paths:
        window.open_files(paths[0], compare or (paths[1] if len(paths) > 1 else None), wait=True)
        if layer is not None and window.session.primary is not None:
            window.select_layer(layer)
    return int(app.exec())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bnviz view", description="Replay bnviz recordings.")
    parser.add_argument("files", nargs="*", help="recording to open (a second one opens for comparison)")
    parser.add_argument("--compare", metavar="FILE", help="a second recording shown against the first")
    args = parser.parse_args(argv)
    if len(args.files) > 2 or (len(args.files) == 2 and args.compare):
        parser.error("give at most two recordings: FILE [OTHER] or FILE --compare OTHER")
    return run_viewer(args.files, args.compare)
