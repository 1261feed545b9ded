"""Every pointer into the code on the docs pages points at something that exists.

A pointer is ``path.py:NNN`` (a line), ``path.py:symbol`` or ``path.py::symbol`` (a name
defined in that file, ``Class.method`` allowed), or a bare ``dir/path.py``. Paths are read
from the repository root or from ``fluxjax/``; a bare file name with no symbol or line
(``train.py``) is a user's script, not a pointer. ``docs/INTERNALS.md`` has its own check.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POINTER = re.compile(
    r"(?<![\w/.-])(?P<path>(?:[\w.-]+/)*[\w-]+\.py)"
    r"(?:(?P<sep>::?)(?P<target>\d+\b|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*))?"
)
SKIPPED = {"INTERNALS.md"}


def resolve(path: str) -> Path | None:
    """The file ``path`` names: from the root, from ``fluxjax/``, or a unique file name."""
    for base in (ROOT, ROOT / "fluxjax"):
        if (base / path).is_file():
            return base / path
    if "/" not in path:
        found = [p for p in (ROOT / "fluxjax").rglob(path) if "__pycache__" not in p.parts]
        return found[0] if len(found) == 1 else None
    return None


def defines(tree: ast.AST, dotted: str) -> bool:
    """Whether ``dotted`` (``f``, ``Class.method``) is defined at module or class level."""
    body = tree.body
    for part in dotted.split("."):
        match = [node for node in body if part in _names(node)]
        if not match:
            return False
        body = getattr(match[0], "body", [])
    return True


def _names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, (ast.If, ast.Try)):  # definitions under `if TYPE_CHECKING` and such
        return {name for child in node.body for name in _names(child)}
    return set()


def broken(markdown: str) -> list[str]:
    """The pointers in ``markdown`` that name no file, line or symbol, each with the cause."""
    found = []
    for m in POINTER.finditer(markdown):
        path, target = m["path"], m["target"]
        if "/" not in path and target is None:
            continue  # a script's name
        file = resolve(path)
        if file is None:
            found.append(f"{m[0]}: no file {path}")
        elif target and target.isdigit():
            lines = file.read_text(encoding="utf-8").splitlines()
            if not 1 <= int(target) <= len(lines) or not lines[int(target) - 1].strip():
                found.append(f"{m[0]}: {path} has no line {target}")
        elif target and not defines(ast.parse(file.read_text(encoding="utf-8")), target):
            found.append(f"{m[0]}: {path} defines no {target}")
    return found


def pages() -> list[Path]:
    return [p for p in sorted((ROOT / "docs").rglob("*.md")) if p.name not in SKIPPED]


def test_the_checker_finds_each_kind_of_broken_pointer():
    text = (
        "`fluxjax/_jit.py:jit` `tracker/_back.py::back_` `_config.py:configure` "
        "`fluxjax/_jit.py:1` `layers/_tree.py` `train.py` `python two_procs.py 0`\n"
        "`fluxjax/_jit.py:no_such` `tracker/_nope.py` `fluxjax/_jit.py:99999` "
        "`tracker/_back.py::back_.nope`"
    )
    assert broken(text) == [
        "fluxjax/_jit.py:no_such: fluxjax/_jit.py defines no no_such",
        "tracker/_nope.py: no file tracker/_nope.py",
        "fluxjax/_jit.py:99999: fluxjax/_jit.py has no line 99999",
        "tracker/_back.py::back_.nope: tracker/_back.py defines no back_.nope",
    ]


def test_every_pointer_on_the_docs_pages_exists():
    problems = {
        str(page.relative_to(ROOT)): found
        for page in pages()
        if (found := broken(page.read_text(encoding="utf-8")))
    }
    assert not problems, f"pointers to code that is not there (page: pointers): {problems}"
    checked = sum(len(POINTER.findall(page.read_text(encoding="utf-8"))) for page in pages())
    assert checked > 0  # the pages do point into the code, so the check is not empty
