"""Issue 19, item 4: no function in ``fluxjax/`` is over 40 lines (docstring included),
so each reads on one screen; a longer one is split into named helpers."""

import ast
from pathlib import Path

import fluxjax

LIMIT = 40


def _functions(root: Path):
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield f"{path.relative_to(root.parent)}::{node.name}", node


def test_no_function_is_over_40_lines():
    root = Path(fluxjax.__file__).parent
    long = {
        name: node.end_lineno - node.lineno + 1
        for name, node in _functions(root)
        if node.end_lineno - node.lineno + 1 > LIMIT
    }
    assert not long, f"functions over {LIMIT} lines (split them): {long}"


def test_the_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n")
    [(name, node)] = list(_functions(tmp_path))
    assert name.endswith("m.py::f") and node.end_lineno - node.lineno + 1 == LIMIT + 1
