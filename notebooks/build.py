"""Turns each notebook source ``notebooks/NN_*.py`` into an executed ``NN_*.ipynb``.

    python -m notebooks.build              # every notebook: read, run, store outputs
    python -m notebooks.build 03 04        # only the notebooks whose names contain these
    python -m notebooks.build --no-execute # cells only, no outputs (fast, for a review)

The sources are plain Python in jupytext's percent format (``# %%`` starts a code cell,
``# %% [markdown]`` a text cell whose lines are comments), linted and formatted by ruff
like the package. Edit them, never the ``.ipynb`` files; ``make notebooks`` runs this.
Execution uses the ``python3`` kernel (``make demo`` or ``make test`` installs one into
``.venv``) with this folder as the working directory.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent
KERNEL = "python3"
CELL_TIMEOUT = 120  # seconds


def sources() -> list[Path]:
    """Every notebook source, in order: ``notebooks/NN_name.py``."""
    return sorted(HERE.glob("[0-9][0-9]_*.py"))


def notebook(source: Path) -> nbformat.NotebookNode:
    """The cells of ``source`` as a notebook without outputs, with stable cell ids."""
    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata = {
        "kernelspec": {"name": KERNEL, "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # a rebuild changes only what really changed
        cell.metadata = {}
    return nb


def execute(nb: nbformat.NotebookNode, workdir: Path = HERE) -> nbformat.NotebookNode:
    """Run ``nb`` top to bottom in place; raises ``CellExecutionError`` on any error."""
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(workdir)}},
        record_timing=False,
    )
    client.execute()
    return nb


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-execute", action="store_true", help="write cells without outputs")
    p.add_argument("names", nargs="*", help="only notebooks whose names contain these")
    args = p.parse_args(argv)
    for source in sources():
        if args.names and not any(n in source.name for n in args.names):
            continue
        nb = notebook(source)
        if not args.no_execute:
            start = time.perf_counter()
            execute(nb)
            took = time.perf_counter() - start
            print(f"{source.stem}: executed in {took:.1f} s", file=sys.stderr)
        nbformat.validate(nb)
        target = source.with_suffix(".ipynb")
        nbformat.write(nb, target)
        print(f"wrote {target.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
