"""The tracker's import graph has no cycles, not even through imports inside functions,
and the package imports one way: tracker <- layers <- train."""

import ast
import pathlib

import fluxjax

PACKAGE = pathlib.Path(fluxjax.__file__).parent


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}


def imports(path):
    """Every fluxjax module ``path`` imports, at any depth of its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[: len(up) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:  # a submodule if there is one, else the module itself
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in MODULES else base)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


def graph(prefix):
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        m: {d for d in imports(p) if d in files and d != m and d.startswith(prefix)}
        for m, p in files.items()
        if m.startswith(prefix)
    }


def cycles(g):
    """Every module that can reach itself again."""
    found = []
    for start in g:
        stack, seen = list(g[start]), set()
        while stack:
            m = stack.pop()
            if m == start:
                found.append(start)
                break
            if m not in seen:
                seen.add(m)
                stack.extend(g.get(m, ()))
    return found


def test_the_tracker_has_no_import_cycles():
    g = graph("fluxjax.tracker.")
    assert cycles(g) == []


def test_train_and_jit_have_no_import_cycles():
    for prefix in ("fluxjax.train.", "fluxjax._jit"):
        assert cycles(graph(prefix)) == []


def test_the_tracker_imports_nothing_above_it():
    for m, deps in graph("fluxjax.").items():
        if m.startswith("fluxjax.tracker"):
            assert not {d for d in deps if d.startswith(("fluxjax.layers", "fluxjax.train"))}, m
