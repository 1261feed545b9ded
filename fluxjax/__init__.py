"""fluxjax: Flux.jl's model-building experience, in Python on JAX.

>>> import fluxjax as fj
>>> W = fj.param([[1.0, 2.0]])
>>> l = (W @ fj.numpy.array([3.0, 4.0])).sum()
>>> fj.back_(l)
>>> fj.grad(W)
Array([[3., 4.]], dtype=float32)
"""

from . import _config  # noqa: F401, I001  (first: settles JAX's CPU dispatch before anything runs)
from . import distributed, layers, numpy, tracker, train
from ._io import load, save
from ._jit import jit
from .layers import *  # noqa: F403  (each subpackage's __all__ is declared once, there)
from .tracker import *  # noqa: F403
from .train import *  # noqa: F403

__version__ = "0.1.0"

# The top level's own names; then every name of each subpackage's ``__all__`` (star-imported
# above). A new public name goes in its subpackage's ``__all__`` only: it is then a top-level
# name and on its API page (docs/api/, generated from the same lists by docs/_hooks.py).
__all__ = ["distributed", "numpy", "tracker", "jit", "load", "save"]
__all__ += tracker.__all__
__all__ += layers.__all__
__all__ += train.__all__
