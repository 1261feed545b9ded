"""``docs/INTERNALS.md`` cannot rot: every ``file.py::symbol`` it cites names something that
exists, and any ``file.py:line`` points at a ``def`` or ``class``.

A path is under ``fluxjax/``; a bare file name stands for the one file of that name.
A symbol is a top-level name or ``Class.attribute`` (a method, a nested def).
Files are read with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import fluxjax

PACKAGE = Path(fluxjax.__file__).parent
DOC = PACKAGE.parent / "docs" / "INTERNALS.md"
SYMBOL = re.compile(r"([\w/]+\.py)::([\w.]+)")
LINE = re.compile(r"([\w/]+\.py):(\d+)")


def resolve(path: str, package: Path = PACKAGE) -> Path:
    """The one file under ``package`` whose path ends with ``path``."""
    found = [p for p in package.rglob("*.py") if p.as_posix().endswith("/" + path)]
    assert len(found) == 1, f"{path} names {len(found)} files under fluxjax/: {found}"
    return found[0]


def defined(tree: ast.AST) -> dict[str, ast.AST]:
    """Every name a module defines at top level, and ``Outer.inner`` for defs inside them."""
    out: dict[str, ast.AST] = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                out[prefix + child.name] = child
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.Assign | ast.AnnAssign) and not prefix:
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            out[n.id] = child

    visit(tree, "")
    return out


def citations(text: str):
    return SYMBOL.findall(text), LINE.findall(text)


def problems(text: str, package: Path = PACKAGE) -> list[str]:
    symbols, lines = citations(text)
    out = []
    for path, symbol in symbols:
        names = defined(ast.parse(resolve(path, package).read_text()))
        if symbol not in names:
            out.append(f"{path}::{symbol} does not exist")
    for path, line in lines:
        source = resolve(path, package).read_text().splitlines()
        n = int(line)
        text_at = source[n - 1].strip() if 0 < n <= len(source) else ""
        if not text_at.startswith(("def ", "class ", "async def ")):
            out.append(f"{path}:{line} is not a def or class: {text_at!r}")
    return out


def test_every_cited_symbol_exists():
    text = DOC.read_text()
    symbols, _ = citations(text)
    assert len(symbols) >= 20  # the doc cites symbols, and the pattern finds them
    assert problems(text) == []


def test_the_checker_catches_a_wrong_symbol_and_a_wrong_line(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "sub" / "_m.py").write_text("X = 1\n\n\nclass A:\n    def f(self):\n        pass\n")
    good = "`sub/_m.py::A.f`, `_m.py::X`, `_m.py:4`"
    assert problems(good, pkg) == []
    bad = "`_m.py::A.g` and `_m.py::B` and `_m.py:2`"
    assert len(problems(bad, pkg)) == 3
