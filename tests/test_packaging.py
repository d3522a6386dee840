"""The packaging lists every subpackage: an editable install finds them anyway, a wheel would not."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_directory_is_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "bnviz").rglob("__init__.py")}
    found |= {"bnviz.hooks" + "".join("." + part for part in p.parent.relative_to(ROOT / "hooks").parts)
              for p in (ROOT / "hooks").rglob("__init__.py")}
    assert found == listed
    assert config["package-dir"] == {"bnviz": "bnviz", "bnviz.hooks": "hooks"}
