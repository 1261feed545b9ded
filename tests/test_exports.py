"""Each public name is declared once, in its subpackage's list; the top level and the API
pages are made from those lists.

The lists: ``fluxjax.tracker.__all__``, ``fluxjax.layers.__all__``, ``fluxjax.train.__all__``
(all re-exported at the top level), ``fluxjax.tracker.TRACKER_ONLY`` and
``fluxjax.distributed.__all__`` (their own modules only), and the top level's own few names
(the list literal ``__all__ = [...]`` in ``fluxjax/__init__.py``).
"""

import ast
import doctest
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_docs import build, warnings

import fluxjax as fj

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = [fj.tracker, fj.layers, fj.train]  # re-exported at the top level
PAGES = {"fluxjax.tracker": "tracker", "fluxjax.layers": "layers", "fluxjax.train": "train"}


def own_names() -> list[str]:
    """The top level's own names: the list literal ``__all__ = [...]`` in its source."""
    tree = ast.parse((ROOT / "fluxjax/__init__.py").read_text(encoding="utf-8"))
    (node,) = [n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__all__"]
    return ast.literal_eval(node.value)


def namespaces() -> dict[str, dict[str, list[str]]]:
    """Each public namespace and the lists that declare its names."""
    top = {"fluxjax (own names)": own_names()}
    top.update({f"{m.__name__}.__all__": list(m.__all__) for m in SUBPACKAGES})
    tracker = {"fluxjax.tracker.__all__": list(fj.tracker.__all__)}
    tracker["fluxjax.tracker.TRACKER_ONLY"] = list(fj.tracker.TRACKER_ONLY)
    distributed = {"fluxjax.distributed.__all__": list(fj.distributed.__all__)}
    return {"fluxjax": top, "fluxjax.tracker": tracker, "fluxjax.distributed": distributed}


def hooks():
    spec = importlib.util.spec_from_file_location("hooks", ROOT / "docs/_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_subpackage_name_is_the_same_object_at_the_top_level():
    for module in SUBPACKAGES:
        wrong = [n for n in module.__all__ if getattr(fj, n, None) is not getattr(module, n)]
        assert not wrong, f"{module.__name__}.__all__ names not re-exported as they are: {wrong}"
    assert fj.update_ is fj.train.update_  # the optimiser-aware one, as before
    assert all(hasattr(fj, n) for n in own_names())
    namespace = {}
    exec("from fluxjax import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(fj.__all__)
    exec("from fluxjax import σ, logσ, train_, Dense, param", namespace)


def test_the_top_level_all_is_its_own_names_then_each_subpackage_list():
    expected = own_names() + [n for m in SUBPACKAGES for n in m.__all__]
    assert fj.__all__ == expected


def test_no_name_is_declared_twice():
    for namespace, lists in namespaces().items():
        seen: dict[str, list[str]] = {}
        for where, names in lists.items():
            for name in names:
                seen.setdefault(name, []).append(where)
        twice = {name: where for name, where in seen.items() if len(where) > 1}
        assert not twice, f"{namespace}: names declared more than once: {twice}"
    for module in [*SUBPACKAGES, fj.distributed]:  # each names something in its module
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"{module.__name__}.__all__ names nothing for {missing}"
    assert all(hasattr(fj.tracker, n) for n in fj.tracker.TRACKER_ONLY)


def test_the_top_level_source_names_no_subpackage_name():
    """``fluxjax/__init__.py`` repeats none of its subpackages' names (star imports only)."""
    tree = ast.parse((ROOT / "fluxjax/__init__.py").read_text(encoding="utf-8"))
    written = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    written |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    written |= {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }
    repeated = sorted(written & {n for m in SUBPACKAGES for n in m.__all__})
    assert not repeated, f"fluxjax/__init__.py writes subpackage names again: {repeated}"


def test_the_api_pages_take_their_members_from_the_lists():
    module = hooks()
    assert doctest.testmod(module).failed == 0  # the hook's own examples
    fill = module.with_members
    for module, page in [*PAGES.items(), ("fluxjax.distributed", "distributed")]:
        text = (ROOT / f"docs/api/{page}.md").read_text(encoding="utf-8")
        assert f"members: {module}.__all__" in text, page
        assert f"members: [{', '.join(sys.modules[module].__all__)}]" in fill(text), page
    tracker = fill((ROOT / "docs/api/tracker.md").read_text(encoding="utf-8"))
    assert all(f"::: fluxjax.tracker.{n}\n" in tracker + "\n" for n in fj.tracker.TRACKER_ONLY)


def documented(site: Path) -> dict[str, set[str]]:
    """The ``id="..."`` anchors of each built API page."""
    found = {}
    for page in (site / "api").glob("*/index.html"):
        text = page.read_text(encoding="utf-8")
        found[page.parent.name] = set(part.split('"')[0] for part in text.split(' id="')[1:])
    return found


def expected_entries() -> list[tuple[str, str]]:
    """(API page, anchor) for each public name: ``("layers", "fluxjax.layers.Dense")``; for a
    submodule, its own page: ``("numpy", None)``."""
    lists = [(m, m.__all__) for m in [*SUBPACKAGES, fj.distributed]]
    lists += [(fj.tracker, fj.tracker.TRACKER_ONLY)]
    entries = [(m.__name__.split(".")[1], f"{m.__name__}.{n}") for m, names in lists for n in names]
    for name in own_names():  # a submodule is a page of its own
        module = isinstance(getattr(fj, name), type(fj))
        entries.append((name, None) if module else ("fluxjax", f"fluxjax.{name}"))
    return entries


NEW_NAME = '''

def brand_new(x):
    """brand_new(x) -> x, a name added once, to ``fluxjax.layers.__all__``."""
    return x
'''


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the package and docs with one more name, added to one list and nowhere else:
    ``brand_new``, in ``fluxjax.layers.__all__``."""
    root = tmp_path_factory.mktemp("tree")
    shutil.copytree(ROOT / "fluxjax", root / "fluxjax", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copytree(ROOT / "docs", root / "docs")
    shutil.copy(ROOT / "mkdocs.yml", root)
    for name in ("notebooks", "benchmarks"):
        (root / name).symlink_to(ROOT / name)
    layers = root / "fluxjax/layers/__init__.py"
    text = layers.read_text(encoding="utf-8").replace("\n]\n", '\n    "brand_new",\n]\n', 1)
    layers.write_text(text + NEW_NAME, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def site(tree) -> Path:
    """The strict docs build of ``tree``."""
    run = build(tree, tree / "site")
    assert run.returncode == 0 and not warnings(run), f"{run.stdout}\n{run.stderr}"
    return tree / "site"


def test_every_public_name_is_on_its_api_page(site):
    ids = documented(site)
    missing = [a for page, a in expected_entries() if a and a not in ids.get(page, ())]
    pages = [page for page, _ in expected_entries() if page not in ids]
    assert not missing and not pages, f"not on the API pages: {missing}, no page: {pages}"


def test_a_new_name_needs_one_edit(tree, site):
    """A function added to one list is a top-level name and on its API page."""
    code = "import fluxjax as fj; assert fj.brand_new(3) == 3 and 'brand_new' in fj.__all__"
    imported = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True)
    assert imported.returncode == 0, imported.stderr.decode()
    assert "fluxjax.layers.brand_new" in documented(site)["layers"]
