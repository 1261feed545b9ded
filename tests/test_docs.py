"""The documentation site builds with warnings as errors, has a page for every area, and
the examples on its pages run.

The build is the one ``make docs`` runs (``mkdocs build --strict``), into a temporary
directory; it reads the stored notebooks and ``benchmarks/README.md`` and executes nothing.
"""

import doctest
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    "index.html",
    "getting-started/index.html",
    "tutorials/01_model_building_basics/index.html",
    "tutorials/02_tracker_notes/index.html",
    "tutorials/03_training_digits/index.html",
    "flux-guide/index.html",
    "tracker/index.html",
    "INTERNALS/index.html",
    "training/index.html",
    "layers/index.html",
    "saving/index.html",
    "checkpoints/index.html",
    "distributed/index.html",
    "interop/index.html",
    "performance/index.html",
    "differences/index.html",
    "API_NOTES/index.html",
    "api/fluxjax/index.html",
    "api/tracker/index.html",
    "api/layers/index.html",
    "api/train/index.html",
    "api/numpy/index.html",
]
EXAMPLE_PAGES = ["tracker.md", "layers.md", "interop.md", "checkpoints.md"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    return out


def test_every_area_has_a_page(site):
    missing = [page for page in PAGES if not (site / page).is_file()]
    assert not missing, f"pages not built: {missing}"
    assert "Training on many devices and machines" in (site / "distributed/index.html").read_text()


def test_api_reference_comes_from_the_docstrings(site):
    tracker = (site / "api/tracker/index.html").read_text()
    for name in ("back_", "gradient", "Params", "param", "track"):
        assert f'id="fluxjax.tracker.{name}"' in tracker, name
    # doctest examples are highlighted Python sessions (a prompt token), not nested quotes
    assert '<span class="gp">&gt;&gt;&gt; </span>' in tracker and "<blockquote>" not in tracker
    for page, name in [("layers", "Dense"), ("train", "train_"), ("fluxjax", "save")]:
        assert name in (site / f"api/{page}/index.html").read_text()


def test_tutorials_show_the_stored_outputs(site):
    digits = (site / "tutorials/03_training_digits/index.html").read_text()
    assert digits.count("data:image/png;base64,") == 2  # the curves and the digits grid
    assert "test accuracy: 0.9" in digits
    perf = (site / "performance/index.html").read_text()
    assert "fluxjax train_" in perf and (site / "performance-results.png").is_file()


@pytest.mark.parametrize("page", EXAMPLE_PAGES)
def test_examples_on_the_pages_run(page):
    result = doctest.testfile(
        str(ROOT / "docs" / page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert result.attempted > 0 and result.failed == 0, f"{page}: {result}"


def test_doctest_fences_wrap_examples_with_their_output():
    spec = importlib.util.spec_from_file_location("fences", ROOT / "docs/_griffe_doctest.py")
    fences = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fences)
    text = "Adds one.\n\n>>> f(1)\n2\n\nMore text.\n>>> f(2)\n3"
    assert fences.fence_doctests(text) == (
        "Adds one.\n\n```pycon\n>>> f(1)\n2\n```\n\nMore text.\n```pycon\n>>> f(2)\n3\n```"
    )
