"""The ``bnviz`` command: view, demo, info, export and report (docs/cli.md).

Exit status: 0 success, 1 bad input or an unreadable file (the message says which and why),
2 a usage error (argparse), 3 ``info --fail-on`` found a finding at or above that severity.
Only ``view``/``demo``, picture exports and reports load Qt; nothing here loads torch.
"""

from __future__ import annotations

import argparse
import os
import sys

COMMANDS = ("view", "demo", "info", "export", "report")
EXIT_ERROR, EXIT_FINDINGS = 1, 3


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `bnviz FILE ...` is `bnviz view FILE ...`
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        argv.insert(0, "view")
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from bnviz.export import ExportError
    from bnviz.plaintext import printable
    from bnviz.report import ReportError
    from bnviz.store import RunFileError
    from bnviz.viewer_deps import ViewerMissing

    try:
        return args.func(args)
    except BrokenPipeError:  # `bnviz info RUN | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except (RunFileError, ExportError, ReportError, ViewerMissing, OSError) as e:
        print(f"bnviz {args.command}: error: {printable(e)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bnviz",
        description="Visual debugger for BatchNorm activation "
        "distributions: record with bnviz.record, then view, inspect or export.",
    )
    import bnviz

    p.add_argument("--version", action="version", version=f"bnviz {bnviz.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser("view", help="open recordings in the viewer (also: bnviz FILE)")
    v.add_argument("files", nargs="*", metavar="FILE", help="recordings to open (several: compared, layers by name)")
    v.add_argument("--compare", metavar="OTHER", help="open OTHER beside the files (same as one more FILE)")
    v.add_argument("--layer", metavar="NAME", help="the layer to show first (default: the first layer)")
    v.set_defaults(func=_view)

    d = sub.add_parser("demo", help="open the shipped BN-paper pair (with vs without BN) in compare mode")
    d.set_defaults(func=_demo)

    i = sub.add_parser("info", help="describe a recording and list its findings")
    i.add_argument("run", metavar="RUN")
    i.add_argument("--json", action="store_true", help="machine-readable output (docs/cli.md)")
    i.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a findings threshold (repeatable; see docs/cli.md)",
    )
    i.add_argument("--all", action="store_true", help="list every layer and finding (text output)")
    i.add_argument(
        "--fail-on",
        type=_severity,
        metavar="SEVERITY",
        help=f"exit with status {EXIT_FINDINGS} if a finding has at least this severity (0-1)",
    )
    i.set_defaults(func=_info)

    e = sub.add_parser("export", help="write a view as PNG, SVG or CSV without a screen")
    e.add_argument("run", metavar="RUN")
    e.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="file (.png/.svg/.csv); several layers go into a folder named OUT without its "
        "extension, with an index.html",
    )
    e.add_argument(
        "--layer",
        action="append",
        metavar="NAME|GLOB",
        help="layer name or glob pattern (repeatable; default: every layer)",
    )
    from bnviz.export import VIEWS

    e.add_argument("--view", default="drift", choices=VIEWS)
    e.add_argument("--steps", metavar="A:B", help="step range, either end open (100:, :500)")
    e.add_argument(
        "--compare",
        action="append",
        metavar="OTHER",
        help="another recording drawn with RUN, layers matched by name (repeatable: any number of runs)",
    )
    e.add_argument("--format", choices=("png", "svg", "csv"), help="format when OUT is a folder")
    e.add_argument(
        "--colour-limits",
        metavar="LO:HI",
        help="the heatmap's colour limits (channels, history, overview; default: 1st-99th percentiles)",
    )
    e.add_argument("--log-colours", action="store_true", help="a logarithmic colour scale for the heatmap")
    e.add_argument(
        "--log-y",
        action="append",
        type=int,
        default=[],
        metavar="N",
        help="draw plot N (from 1, top to bottom then left to right) with a log y axis (repeatable)",
    )
    e.set_defaults(func=_export)

    r = sub.add_parser(
        "report", help="write one self-contained HTML page: summary, findings with pictures, drift of every layer"
    )
    r.add_argument("run", metavar="RUN")
    r.add_argument("-o", "--output", required=True, metavar="OUT.html")
    r.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a findings threshold (repeatable; see docs/cli.md)",
    )
    r.set_defaults(func=_report)
    return p


def _severity(text: str) -> float:
    """A severity for --fail-on: findings' severities lie in [0, 1], so 2 could never fire."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a severity from 0 to 1") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(
            f"{text} is outside 0-1, where severities lie, so it could never "
            f"fire; give a severity from 0 to 1 (e.g. 0.8)"
        )
    return value


def _view(args: argparse.Namespace) -> int:
    files = [str(f) for f in args.files]
    from bnviz.store import open_run

    for i, f in enumerate(files + ([args.compare] if args.compare else [])):
        if not os.path.exists(f):
            if i == 0:  # a training run that has not started writing: the window waits for it
                print(f"bnviz view: waiting for {f} (it does not exist yet)", file=sys.stderr)
                continue
            raise FileNotFoundError(f"{f}: no such file")
        open_run(f).close()  # not a recording: say so here, not in a dialog of an opened window
    if sys.platform.startswith("linux") and not any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    ):
        print(
            "bnviz view: error: no display (DISPLAY is not set); on a server use `bnviz info` or "
            "`bnviz export`, or copy the recording to a machine with a screen",
            file=sys.stderr,
        )
        return EXIT_ERROR
    from bnviz.viewer_deps import check_window_system

    check_window_system()
    from bnviz.app import run_viewer

    return int(run_viewer(files, compare=args.compare, layer=args.layer) or 0)


def _demo(args: argparse.Namespace) -> int:
    from bnviz.demo import DEMO_LAYER, demo_paths

    first, second = demo_paths()
    return _view(argparse.Namespace(files=[str(first)], compare=str(second), layer=DEMO_LAYER))


def _thresholds(args: argparse.Namespace):
    from bnviz.analysis.findings import Thresholds

    try:
        return Thresholds.parse(args.threshold)
    except ValueError as e:
        print(f"bnviz {args.command}: error: {e}", file=sys.stderr)
        return None


def _info(args: argparse.Namespace) -> int:
    from bnviz.analysis.runinfo import describe, format_text
    from bnviz.store import open_run

    thresholds = _thresholds(args)
    if thresholds is None:
        return EXIT_ERROR
    with open_run(args.run) as run:
        info = describe(run, thresholds)
    if args.json:
        import json

        print(json.dumps(info, indent=2, allow_nan=False))
    else:
        print(format_text(info, show_all=args.all))
    if args.fail_on is not None and any(f["severity"] >= args.fail_on for f in info["findings"]):
        return EXIT_FINDINGS
    return 0


def _export(args: argparse.Namespace) -> int:
    from bnviz.export import export, stderr_progress

    written = export(
        args.run,
        args.output,
        layer=args.layer,
        view=args.view,
        steps=args.steps,
        compare=args.compare,
        fmt=args.format,
        progress=stderr_progress,
        colour_limits=_limits(args.colour_limits),
        log_colours=args.log_colours,
        log_y=tuple(args.log_y),
    )
    folder = written[0].parent
    where = written[0] if len(written) == 1 else f"{len(written)} files in {folder} (open {folder / 'index.html'})"
    print(f"wrote {where}", file=sys.stderr)
    return 0


def _limits(text: str | None) -> tuple[float, float] | None:
    from bnviz.export import ExportError

    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise ExportError(f"--colour-limits {text!r}: give LO:HI, two numbers (e.g. 0:2.5)") from None
    return lo, hi


def _report(args: argparse.Namespace) -> int:
    from bnviz.export import stderr_progress
    from bnviz.report import write_report

    thresholds = _thresholds(args)
    if thresholds is None:
        return EXIT_ERROR
    out = write_report(args.run, args.output, thresholds, progress=stderr_progress)
    print(f"wrote {out}", file=sys.stderr)
    return 0
