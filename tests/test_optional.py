"""A missing optional dependency gives an ImportError naming the pip extra that installs it.

Each test simulates the missing package with ``sys.modules[name] = None`` (Python then
raises ImportError on import), so nothing is uninstalled.
"""

import sys

import numpy as np
import pytest

from fluxjax import demo
from fluxjax._io import load, save
from fluxjax._optional import require
from fluxjax.layers import Dense
from fluxjax.tracker import Params, param
from fluxjax.train import Descent, mse, train_


def missing(monkeypatch, *names):
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def test_save_and_load_without_safetensors_name_the_io_extra(monkeypatch, tmp_path):
    path = tmp_path / "m.safetensors"
    save(path, Dense(2, 2))
    missing(monkeypatch, "safetensors", "safetensors.numpy")
    with pytest.raises(ImportError, match=r"save.*safetensors.*pip install 'fluxjax\[io\]'"):
        save(tmp_path / "other.safetensors", Dense(2, 2))
    with pytest.raises(ImportError, match=r"load.*pip install 'fluxjax\[io\]'"):
        load(path, Dense(2, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_the_demo_without_sklearn_or_matplotlib_names_the_demo_extra(monkeypatch, tmp_path):
    missing(monkeypatch, "sklearn", "sklearn.datasets")
    with pytest.raises(ImportError, match=r"sklearn.*pip install 'fluxjax\[demo\]'"):
        demo.load_digits_split()
    missing(monkeypatch, "matplotlib", "matplotlib.figure", "matplotlib.ticker")
    with pytest.raises(ImportError, match=r"matplotlib.*pip install 'fluxjax\[demo\]'"):
        demo.plot(tmp_path / "f.png", np.zeros(2), [], 1, None, None, None)


def test_require_names_the_feature_and_keeps_the_cause(monkeypatch):
    missing(monkeypatch, "tqdm")
    with pytest.raises(ImportError, match=r"train_\(progress=True\).*fluxjax\[progress\]") as e:
        require("tqdm", "progress", "train_(progress=True)")
    assert isinstance(e.value.__cause__, ImportError)


def test_train_progress_without_tqdm_names_the_progress_extra(monkeypatch):
    W = param(2.0)
    missing(monkeypatch, "tqdm", "tqdm.auto")
    with pytest.raises(ImportError, match=r"train_\(progress=True\).*fluxjax\[progress\]"):
        train_(lambda: mse(W, 1.0), Params([W]), [()] * 3, Descent(0.1), progress=True)
    assert float(W.data) == 2.0  # refused before any step
    losses = train_(lambda: mse(W, 1.0), Params([W]), [()] * 3, Descent(0.1))
    assert len(losses) == 3  # progress=None: no bar, no error
