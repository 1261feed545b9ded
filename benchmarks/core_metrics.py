"""How much a reader must hold to follow the core: counted with ``ast`` and a call profiler.

    python -m benchmarks.core_metrics [--root DIR]

- **records**: classes defined in ``fluxjax/tracker/`` plus its module-level ``Cache``s
  (a proxy for the concepts a reader meets; ``docs/INTERNALS.md`` lists them by hand).
- **index sites**: ``x[0]``, ``x[-1]``, ``key[2:]``: subscripts whose index is a constant
  int or a slice of constants, in ``fluxjax/tracker/`` and in ``fluxjax/``.
- **warm call paths**: the distinct functions (and files) inside fluxjax entered during
  one warm ``back_(l)`` and one warm ``gradient(lambda: loss, ps)`` (``sys.setprofile``;
  comprehensions are not counted as functions).
- **longest function** in ``fluxjax/tracker/`` and in ``fluxjax/`` (lines, docstring
  included), and **lines per package**.

``--root`` measures another checkout (its ``fluxjax`` is imported from there).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def _trees(package: Path):
    for path in sorted(package.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def _is_const_index(node) -> bool:
    s = node.slice
    if isinstance(s, ast.UnaryOp) and isinstance(s.operand, ast.Constant):
        s = s.operand
    if isinstance(s, ast.Constant):
        return type(s.value) is int
    if isinstance(s, ast.Slice):
        parts = [p for p in (s.lower, s.upper, s.step) if p is not None]
        return all(
            isinstance(p, ast.Constant)
            or (isinstance(p, ast.UnaryOp) and isinstance(p.operand, ast.Constant))
            for p in parts
        )
    return False


def index_sites(package: Path) -> int:
    return sum(
        isinstance(n, ast.Subscript) and _is_const_index(n)
        for _, tree in _trees(package)
        for n in ast.walk(tree)
    )


def longest_function(package: Path) -> tuple[int, str]:
    best = (0, "")
    for path, tree in _trees(package):
        for n in ast.walk(tree):
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
                best = max(best, (n.end_lineno - n.lineno + 1, f"{path.name}::{n.name}"))
    return best


def records(package: Path) -> list[str]:
    out = []
    for path, tree in _trees(package):
        for n in tree.body:
            if isinstance(n, ast.ClassDef):
                out.append(n.name)
            elif isinstance(n, ast.Assign) and isinstance(n.value, ast.Call):
                f = n.value.func
                if getattr(f, "id", None) == "Cache":
                    out.append(f"{path.stem}.{n.targets[0].id}")
    return out


def lines_per_package(package: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for path in package.rglob("*.py"):
        rel = path.relative_to(package.parent)
        key = str(rel.parent) if len(rel.parts) > 2 else "fluxjax (top)"
        out[key] = out.get(key, 0) + len(path.read_text().splitlines())
    out["total"] = sum(out.values())
    return dict(sorted(out.items()))


_COMPS = {"<genexpr>", "<listcomp>", "<dictcomp>", "<setcomp>"}  # a loop, not a function


def call_path(fn, package: Path) -> tuple[int, int, list[str]]:
    """Distinct fluxjax functions and files entered while ``fn()`` runs."""
    root = str(package)
    seen: dict[str, None] = {}

    def prof(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_filename.startswith(root) and code.co_name not in _COMPS:
            seen[f"{Path(code.co_filename).name}::{code.co_qualname}"] = None

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    names = list(seen)
    return len(names), len({n.split("::")[0] for n in names}), names


def warm_paths(package: Path) -> dict[str, tuple]:
    import jax.numpy as jnp
    import numpy as np

    import fluxjax as fj

    rng = np.random.default_rng(0)
    W, b = fj.param(rng.normal(size=(4, 8))), fj.param(np.zeros(4))
    x, y = jnp.asarray(rng.normal(size=(8, 16))), jnp.asarray(rng.normal(size=(4, 16)))

    def loss():
        return ((fj.numpy.tanh(W @ x) + b[:, None] - y) ** 2).mean()

    for _ in range(3):  # warm: compiled and cached
        fj.back_(loss())
        fj.gradient(loss, fj.Params([W, b]))
    ps = fj.Params([W, b])
    l = loss()
    out = {"back_(l)": call_path(lambda: fj.back_(l), package)}
    out["gradient(lambda: loss, ps)"] = call_path(lambda: fj.gradient(loss, ps), package)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="a checkout holding fluxjax/")
    parser.add_argument("--names", action="store_true", help="list the functions entered")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    sys.path.insert(0, str(root))
    package, tracker = root / "fluxjax", root / "fluxjax" / "tracker"
    rec = records(tracker)
    print(f"records in tracker/ (classes + caches): {len(rec)}: {', '.join(rec)}")
    print(f"index sites: tracker/ {index_sites(tracker)}, fluxjax/ {index_sites(package)}")
    n, where = longest_function(tracker)
    m, where_all = longest_function(package)
    print(f"longest function: tracker/ {n} ({where}), fluxjax/ {m} ({where_all})")
    for name, (funcs, files, names) in warm_paths(package).items():
        print(f"warm {name}: {funcs} functions in {files} files")
        if args.names:
            print("    " + "\n    ".join(names))
    print("lines: " + ", ".join(f"{k} {v}" for k, v in lines_per_package(package).items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
