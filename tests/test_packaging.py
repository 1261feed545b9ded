"""What README, Makefile, pyproject.toml and uv.lock promise about installing agrees, and
holds here."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def _lock() -> dict:
    return tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))


def _requirements() -> dict[str, list[Requirement]]:
    """pyproject's requirements by extra; the core ones under ``""``."""
    project = _pyproject()["project"]
    groups = {"": project["dependencies"], **project["optional-dependencies"]}
    return {extra: [Requirement(r) for r in reqs] for extra, reqs in groups.items()}


def test_the_lock_pins_one_version_of_every_package_each_extra_needs():
    """Every core and extra requirement has one locked version, inside pyproject's range."""
    versions: dict[str, list[str]] = {}
    for package in _lock()["package"]:
        versions.setdefault(canonicalize_name(package["name"]), []).append(package["version"])
    assert all(len(v) == 1 for v in versions.values()), {
        name: v for name, v in versions.items() if len(v) > 1
    }  # fork-strategy "fewest": the same versions on every Python
    for extra, requirements in _requirements().items():
        for req in requirements:
            (version,) = versions.get(canonicalize_name(req.name), [None])
            assert version is not None, f"uv.lock lacks {req.name} ({extra or 'core'})"
            assert req.specifier.contains(version), f"uv.lock: {req.name}=={version} not {req}"


def test_the_lock_was_made_from_this_pyproject():
    """What uv.lock recorded of pyproject.toml is what it says now (else: ``make lock``)."""
    (fluxjax,) = [p for p in _lock()["package"] if p["name"] == "fluxjax"]
    locked = {
        (r["name"], tuple(r.get("extras", ())), r.get("specifier", ""), r.get("marker", ""))
        for r in fluxjax["metadata"]["requires-dist"]
    }
    now = {
        (
            req.name,
            tuple(sorted(req.extras)),
            str(req.specifier),
            f"extra == '{extra}'" * bool(extra),
        )
        for extra, reqs in _requirements().items()
        for req in reqs
    }
    assert locked == now, f"uv.lock is stale; run make lock: {locked ^ now}"
    assert fluxjax["metadata"]["provides-extras"] == list(_requirements())[1:]


def test_the_makefile_installs_from_the_lock():
    """One pinned uv, a sync that refuses a stale lock, and no unpinned installs."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    uv = re.search(r"^UV_VERSION := (\S+)$", makefile, re.M).group(1)
    assert _pyproject()["tool"]["uv"]["required-version"] == f"=={uv}"
    assert re.search(r"^SYNC := \$\(UV\) sync --locked --inexact --extra test$", makefile, re.M)
    assert re.search(r"^lock: .*\n\t\$\(UV\) lock ", makefile, re.M)
    joined = re.sub(r"\\\n\s*", " ", makefile)  # continuation lines
    installs = re.findall(r"pip install (.*)", joined)
    assert len(installs) == 2, installs  # uv itself, and torch for make bench
    assert installs[0].endswith("uv==$(UV_VERSION)")
    assert installs[1].endswith("-c $(VENV)/constraints.txt torch==$(TORCH_VERSION)")
    assert re.search(r"^TORCH_VERSION := \d+\.\d+\.\d+$", makefile, re.M)


def test_the_test_extra_covers_what_demo_docs_and_notebooks_need():
    """make demo, docs and notebooks run in the environment ``--extra test`` installs."""
    names = {
        extra: {canonicalize_name(r.name) for r in reqs} for extra, reqs in _requirements().items()
    }
    for extra in ("progress", "io", "demo", "notebooks", "docs"):
        assert names[extra] <= names["test"], f"test extra lacks {names[extra] - names['test']}"


def test_readme_says_how_to_upgrade_the_lock():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "uv.lock" in readme and "make lock ARGS=--upgrade" in readme
