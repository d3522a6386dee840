"""bnviz's desktop viewer (PySide6 + pyqtgraph; never imports torch).

``run_viewer(paths, compare)`` is what ``bnviz view`` / ``bnviz FILE`` / ``bnviz demo`` call;
``main(argv)`` is a standalone entry (``python -m bnviz.app FILE``). Qt is imported only when
a window is made, so importing this package stays cheap for the CLI.
"""

from __future__ import annotations

import argparse


def run_viewer(paths: list[str], compare: str | None = None, settings=None, layer: str | None = None) -> int:
    """Show the window with every path open (more than one, or ``compare``: compared, layers
    matched by name), ``layer`` selected if given, and run the event loop; returns the exit status."""
    from bnviz.app.main_window import MainWindow
    from bnviz.app.render import ensure_app

    app = ensure_app()
    app.setApplicationName("bnviz")
    window = MainWindow(settings)
    window.show()
    if paths:
        window.open_files(*paths, compare, wait=True)
        if layer is not None and window.session.primary is not None:
            window.select_layer(layer)
    return int(app.exec())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bnviz view", description="Replay bnviz recordings.")
    parser.add_argument("files", nargs="*", help="recordings to open (several are compared)")
    parser.add_argument("--compare", metavar="FILE", help="one more recording shown against the others")
    args = parser.parse_args(argv)
    return run_viewer(args.files, args.compare)
