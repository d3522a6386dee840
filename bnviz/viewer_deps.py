"""Can the viewer side run here? Checked before Qt starts, so a missing piece is one clear line.

Two things can be missing: the Python packages (PySide6, pyqtgraph: ``pip install 'bnviz[view]'``)
and, for a window on X11, the system libraries of Qt's xcb platform plugin, which fresh
Debian/Ubuntu images lack (libxcb-cursor0 and friends). Qt itself would abort with a long
message naming the plugin, not the library. Standard library only; nothing here imports Qt.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

INSTALL_HINT = "pip install 'bnviz[view]'"
VIEWER_MODULES = ("PySide6", "pyqtgraph")
# Debian/Ubuntu packages whose names do not follow the soname rule (see debian_package)
_PACKAGE_EXCEPTIONS = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libstdc++.so.6": "libstdc++6",
}


class ViewerMissing(ImportError):
    """The viewer side cannot run here; the message says what to install."""


def require_viewer(what: str) -> None:
    """Raise ViewerMissing naming ``what`` (e.g. "PNG export") if PySide6 or pyqtgraph is not
    installed, or is installed but cannot load (a system library missing)."""
    missing = []
    for name in VIEWER_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is not None and e.name.split(".")[0] != name:
                raise ViewerMissing(f"{what}: {name} cannot load: {e}") from e
            missing.append(name)
        except ImportError as e:  # installed, but a shared library it needs is not
            lib = re.search(r"(lib[\w.+-]+\.so[\w.]*)", str(e))
            hint = f" (on Debian/Ubuntu: apt-get install {debian_package(lib.group(1))})" if lib else ""
            raise ViewerMissing(f"{what}: {name} is installed but cannot load: {e}{hint}") from e
    if missing:
        raise ViewerMissing(f"{what} needs {' and '.join(missing)}, not installed here: {INSTALL_HINT}")


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships a library, by Debian's naming rule: libfoo.so.N is in
    libfooN, libfoo2.so.N (a name ending in a digit) in libfoo2-N."""
    if soname in _PACKAGE_EXCEPTIONS:
        return _PACKAGE_EXCEPTIONS[soname]
    m = re.fullmatch(r"(lib.+?)\.so\.(\d+)(?:\.\d+)*", soname)
    if not m:
        return soname
    name, major = m.group(1).lower(), m.group(2)
    return f"{name}-{major}" if name[-1].isdigit() else f"{name}{major}"


def not_found(ldd_output: str) -> list[str]:
    """The sonames ``ldd`` reports as ``=> not found``, in its order, each once."""
    names = re.findall(r"^\s*(\S+)\s+=>\s+not found", ldd_output, flags=re.MULTILINE)
    return list(dict.fromkeys(names))


def xcb_plugin() -> Path | None:
    """Qt's xcb platform plugin inside the installed PySide6, if there is one."""
    try:
        import PySide6
    except ImportError:
        return None
    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_xcb_libraries(plugin: Path | None = None) -> list[str]:
    """The shared libraries the xcb plugin needs that this system lacks ([] if none, or if
    ``ldd`` is not there to tell)."""
    plugin = plugin or xcb_plugin()
    if plugin is None:
        return []
    try:
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return not_found(out.stdout)


def uses_xcb(environ=os.environ, platform: str = sys.platform) -> bool:
    """Whether Qt will pick its xcb (X11) platform plugin: on Linux, asked for by name, or by
    default where an X display is set and no Wayland one."""
    if not platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":")[0].split(";")[0] == "xcb"
    return bool(environ.get("DISPLAY")) and not environ.get("WAYLAND_DISPLAY")


def xcb_problem(missing: list[str]) -> str:
    """One line naming the missing libraries and the packages that ship them."""
    packages = " ".join(dict.fromkeys(debian_package(s) for s in missing))
    return (
        f"Qt's X11 (xcb) platform plugin needs {', '.join(missing)}, missing on this system; on "
        f"Debian/Ubuntu: sudo apt-get install {packages} (or set QT_QPA_PLATFORM=wayland on Wayland)"
    )


def check_window_system() -> None:
    """Raise ViewerMissing if a window cannot open here for want of a package or a library."""
    require_viewer("the viewer")
    if uses_xcb():
        missing = missing_xcb_libraries()
        if missing:
            raise ViewerMissing(xcb_problem(missing))
