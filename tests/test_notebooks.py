"""Every notebook runs top to bottom on the ``python3`` kernel and shows what its text claims.

The notebooks are built from their sources ``notebooks/NN_*.py`` (jupytext percent format)
by ``python -m notebooks.build``; the stored ``.ipynb`` files must hold exactly the cells
the sources give (so a review of the scripts is a review of the notebooks).
"""

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _builder():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _builder()
NAMES = [source.with_suffix(".ipynb").name for source in BUILD.sources()]


def _run(name):
    """Execute the stored notebook ``name`` (in memory; the file is not rewritten)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    return nb


def _texts(cell):
    """Everything a code cell printed or displayed as text."""
    out = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            out.append(o.text)
        elif o.output_type in ("execute_result", "display_data"):
            out.append(o.data.get("text/plain", ""))
        elif o.output_type == "error":
            out.append(f"{o.ename}: {o.evalue}")
    return "\n".join(out)


def _cell(nb, marker):
    """The one code cell whose source contains ``marker``."""
    cells = [c for c in nb.cells if c.cell_type == "code" and marker in c.source]
    assert len(cells) == 1, f"expected one cell containing {marker!r}, found {len(cells)}"
    return cells[0]


@pytest.fixture(scope="module")
def executed():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _run(name)
        return cache[name]

    return get


def test_stored_notebooks_match_their_scripts():
    assert NAMES[:3] == [
        "01_model_building_basics.ipynb",
        "02_tracker_notes.ipynb",
        "03_training_digits.ipynb",
    ]
    for source in BUILD.sources():
        stored = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
        assert [(c.cell_type, c.source) for c in stored.cells] == [
            (c.cell_type, c.source) for c in BUILD.notebook(source).cells
        ], f"{source.name} changed: run python -m notebooks.build {source.stem[:2]}"
        assert stored.metadata.kernelspec.name == "python3"


def test_stored_outputs_hold_no_progress_bar_chunks():
    for name in NAMES:
        stored = nbformat.read(NOTEBOOKS / name, as_version=4)
        streams = [o for c in stored.cells for o in c.get("outputs", []) if "text" in o]
        assert not [o for o in streams if o.name == "stderr"], f"{name} stores stderr output"
        assert not any("\r" in o.text for o in streams), f"{name} stores a progress bar"


@pytest.mark.parametrize("name", NAMES)
def test_runs_without_error(executed, name):
    nb = executed(name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]


def test_basics_outputs(executed):
    nb = executed("01_model_building_basics.ipynb")
    assert "(tracked)" in _texts(_cell(nb, "back_(l)"))
    assert _texts(_cell(nb, "m = Chain(lambda")).strip() == "26"
    assert "Dense(10, 5, σ)" in _texts(_cell(nb, "d = Dense(10, 5, σ)"))
    assert "Chain(Dense(10, 5, σ), Dense(5, 2), softmax)" in _texts(_cell(nb, "print(model2)"))
    assert "(3, 5)" in _texts(_cell(nb, "linear1.W.shape, linear1.b.shape"))
    assert "Params([5×10, 5])" in _texts(_cell(nb, "fj.params(a)"))

    # The loss went down after one update_ step, as the text says.
    before = float(re.search(r"\((\d+\.\d+)\)", _texts(_cell(nb, "x, y = rng.random(5)"))).group(1))
    after = float(_texts(_cell(nb, "update_(W, -0.1 * Δ)")).split()[0])
    assert after < before


def test_tracker_notes_outputs(executed):
    nb = executed("02_tracker_notes.ipynb")
    assert "14" in _texts(_cell(nb, "df(2)  #"))
    assert "6" in _texts(_cell(nb, "d2f(2)  #"))
    grads = _texts(_cell(nb, 'print("grads[W] ="'))
    assert "grads[W] = 4.0" in grads and "grads[b] = 1.0" in grads
    assert _texts(_cell(nb, "grads[linear1.W].shape")).strip() == "(3, 5)"
    assert _texts(_cell(nb, "fj.back_(loss(x, y))")).strip() == "True"


def test_training_outputs(executed):
    nb = executed("03_training_digits.ipynb")
    trained = _texts(_cell(nb, "losses = train_("))
    accuracy = float(re.search(r"test accuracy: (\d\.\d+)", trained).group(1))
    assert accuracy >= 0.97
    pictures = [
        o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(pictures) == 2  # the curves and the grid of digits
    reload = _texts(_cell(nb, "fj.save(path, model)"))
    assert "same predictions as the trained model: True" in reload
