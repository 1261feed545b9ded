"""The package's import graph has no cycles (imports at any depth, relative ones resolved).

Imports hidden inside functions count: they hide a cycle, they do not remove it. The test
parses every module with ``ast`` (nothing is imported) and reports every cycle it finds.
"""

import ast
from pathlib import Path

import fluxjax

ROOT = Path(fluxjax.__file__).parent
PACKAGE = "fluxjax"


def module_name(path: Path, root: Path, package: str) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path, package: str) -> dict[str, Path]:
    return {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}


def imported(name: str, path: Path, known, package_root: str) -> set[str]:
    """The package modules that module ``name`` imports, anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:  # `from . import _x` imports the module _x
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    # `import a.b.c` also runs a and a.b: keep the deepest package module named
    inside = {m for m in found if m.split(".")[0] == package_root}
    return {_deepest_known(m, known) for m in inside} - {name, None}


def _deepest_known(module: str, known):
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in known:
            return ".".join(parts[:k])
    return None


def graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    mods = modules(root, package)
    return {name: imported(name, path, mods, package) for name, path in mods.items()}


def cycles(g) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan's algorithm)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_known_cycle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(g) == [["a", "b", "c"]]


def test_the_parser_sees_imports_inside_functions_and_relative_ones(tmp_path):
    files = {
        "__init__.py": "from .x import f\n",
        "x.py": "def f():\n    from . import y\n    return y\n",
        "sub/__init__.py": "",
        "sub/z.py": "import json\nfrom ..y import g\n",
        "y.py": "import pkg.sub.z\n\ndef g():\n    from .x import f\n",
    }
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    g = graph(tmp_path / "pkg", "pkg")
    assert g == {
        "pkg": {"pkg.x"},
        "pkg.x": {"pkg.y"},
        "pkg.y": {"pkg.sub.z", "pkg.x"},
        "pkg.sub": set(),
        "pkg.sub.z": {"pkg.y"},
    }
    assert cycles(g) == [["pkg.sub.z", "pkg.x", "pkg.y"]]
    assert len(graph()) >= 20  # the real package parses


def test_no_import_cycles_between_modules():
    found = cycles(graph())
    report = "\n".join(" <-> ".join(c) for c in found)
    assert not found, f"import cycles in the package:\n{report}"


def test_the_package_imports_one_way_tracker_then_layers_then_train():
    """tracker <- layers <- train: a lower layer never imports a higher one."""
    order = ["fluxjax.tracker", "fluxjax.layers", "fluxjax.train"]
    for module, deps in graph().items():
        for level, prefix in enumerate(order):
            if module == prefix or module.startswith(prefix + "."):
                above = [d for d in deps if any(d.startswith(p) for p in order[level + 1 :])]
                assert not above, f"{module} imports {above}, above it"
