"""Without the viewer side (or Qt's X11 libraries) the CLI says in one line what to install."""

import os
import subprocess
import sys

import pytest

import bnviz
from bnviz import cli, viewer_deps
from bnviz.store.synthetic import write_synthetic_run

# Blocks the viewer packages as if they were not installed, then runs the CLI.
NO_QT = (
    "import sys\nsys.modules['PySide6'] = sys.modules['pyqtgraph'] = None\n"
    "from bnviz.cli import main\nsys.exit(main(sys.argv[1:]))\n"
)


def bnviz_without_qt(*args, cwd):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-c", NO_QT, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("deps") / "run.h5"
    write_synthetic_run(path, layers=2, channels=4, steps=30)
    return path


def test_info_works_without_qt(run):
    out = bnviz_without_qt("info", run, cwd=run.parent)
    assert out.returncode == 0, out.stderr
    assert "findings" in out.stdout


@pytest.mark.parametrize("view", ["drift", "channels", "distribution"])
def test_csv_export_works_without_qt_and_gives_the_same_file(run, tmp_path, view):
    out = bnviz_without_qt(
        "export", run, "--view", view, "--layer", "layer1.0.bn1", "-o", tmp_path / "a.csv", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    bnviz.export(run, tmp_path / "b.csv", layer="layer1.0.bn1", view=view)  # Qt is importable here
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert len((tmp_path / "a.csv").read_text().splitlines()) > 5


@pytest.mark.parametrize(
    "args",
    [
        ["export", "{run}", "-o", "x.png"],
        ["export", "{run}", "-o", "x.svg"],
        ["view", "{run}"],
        ["demo"],
        ["report", "{run}", "-o", "x.html"],
    ],
    ids=["png", "svg", "view", "demo", "report"],
)
def test_pictures_and_windows_without_qt_say_what_to_install_in_one_line(run, args):
    out = bnviz_without_qt(*[a.format(run=run) for a in args], cwd=run.parent)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "pip install 'bnviz[view]'" in out.stderr and "PySide6" in out.stderr
    assert not list(run.parent.glob("x.*"))


def test_a_viewer_package_that_cannot_load_its_library_is_named_with_the_package(tmp_path, monkeypatch):
    (tmp_path / "brokenqt.py").write_text(
        "raise ImportError('libEGL.so.1: cannot open shared object file: No such file or directory')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(viewer_deps, "VIEWER_MODULES", ("brokenqt",))
    with pytest.raises(
        viewer_deps.ViewerMissing, match=r"brokenqt is installed but cannot load.*apt-get install libegl1"
    ):
        viewer_deps.require_viewer("the viewer")


# Real package names (packages.debian.org), not derived from the rule under test.
@pytest.mark.parametrize(
    "soname, package",
    [
        ("libxcb-cursor.so.0", "libxcb-cursor0"),
        ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
        ("libxcb-icccm.so.4", "libxcb-icccm4"),
        ("libxcb-render-util.so.0", "libxcb-render-util0"),
        ("libEGL.so.1", "libegl1"),
        ("libGL.so.1", "libgl1"),
        ("libX11-xcb.so.1", "libx11-xcb1"),
        ("libdbus-1.so.3", "libdbus-1-3"),
        ("libfontconfig.so.1", "libfontconfig1"),
        ("libglib-2.0.so.0", "libglib2.0-0"),
        ("libxcb.so.1", "libxcb1"),
        ("libpng16.so.16", "libpng16-16"),
    ],
)
def test_debian_package_of_a_library(soname, package):
    assert viewer_deps.debian_package(soname) == package


def test_not_found_reads_ldds_report():
    text = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibQt6XcbQpa.so.6 => /x/libQt6XcbQpa.so.6 (0x7f)\n"
        "\tlibxcb-cursor.so.0 => not found\n\tlibxcb-icccm.so.4 => not found\n"
        "\tlibxcb-cursor.so.0 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x7f)\n"
    )
    assert viewer_deps.not_found(text) == ["libxcb-cursor.so.0", "libxcb-icccm.so.4"]


@pytest.mark.parametrize(
    "env, platform, expected",
    [
        ({"DISPLAY": ":0"}, "linux", True),
        ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
        ({"DISPLAY": ":0"}, "darwin", False),
        ({}, "linux", False),
    ],
)
def test_which_environments_use_the_xcb_plugin(env, platform, expected):
    assert viewer_deps.uses_xcb(env, platform) is expected


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or viewer_deps.xcb_plugin() is None,
    reason="needs Linux and PySide6's xcb plugin",
)
def test_the_library_check_agrees_with_qt_on_this_machine():
    missing = viewer_deps.missing_xcb_libraries()
    # Qt's own plugin loader, asked for xcb on a display that does not exist: it names the first
    # library it cannot load, or loads the plugin and then fails only to connect.
    out = subprocess.run(
        [sys.executable, "-c", "from PySide6 import QtWidgets; QtWidgets.QApplication([])"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "QT_QPA_PLATFORM": "xcb",
            "QT_DEBUG_PLUGINS": "1",
            "DISPLAY": ":4711",
            "WAYLAND_DISPLAY": "",
        },
    )
    assert out.returncode != 0
    if missing:
        assert "cannot open shared object file" in out.stderr
        assert any(name in out.stderr for name in missing), (missing, out.stderr[-2000:])
    else:
        assert "cannot open shared object file" not in out.stderr
        assert "could not connect to display" in out.stderr


def test_view_names_missing_xcb_libraries_and_their_packages_before_qt_starts(run, monkeypatch, capsys):
    started = []
    monkeypatch.setattr("bnviz.app.run_viewer", lambda *a, **k: started.append(a) or 0)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setattr(viewer_deps, "missing_xcb_libraries", lambda: ["libxcb-cursor.so.0", "libxkbcommon-x11.so.0"])
    assert cli.main(["view", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and started == []
    assert "libxcb-cursor.so.0" in err and "apt-get install libxcb-cursor0 libxkbcommon-x11-0" in err
