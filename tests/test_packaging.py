"""What README and pyproject.toml promise about installing agrees, and holds here."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_readme_and_pyproject_name_the_same_python():
    readme = re.search(r"Python (\d+)\.(\d+)\+", (ROOT / "README.md").read_text())
    pyproject = re.fullmatch(r">=(\d+)\.(\d+)", _pyproject()["project"]["requires-python"])
    assert readme and pyproject, "README says 'Python X.Y+' and pyproject '>=X.Y'"
    assert readme.groups() == pyproject.groups()
    target = _pyproject()["tool"]["ruff"]["target-version"]
    assert target == "py" + "".join(pyproject.groups())


def test_this_interpreter_is_one_the_project_claims():
    low = tuple(int(v) for v in _pyproject()["project"]["requires-python"][2:].split("."))
    assert sys.version_info[:2] >= low


def test_license_is_an_spdx_string():
    """A string, not the deprecated ``{ text = ... }`` table that makes installs warn."""
    assert _pyproject()["project"]["license"] == "MIT"
    build = _pyproject()["build-system"]["requires"]
    assert any(r.startswith("setuptools>=77") for r in build)  # first to read SPDX strings
