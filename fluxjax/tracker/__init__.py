"""fluxjax.tracker: tracked values and imperative gradients, with JAX doing the calculus.

Besides the user's API (``__all__``), a small seam for the compiled paths (``train_``,
``fluxjax.jit``), listed in ``TRACKER_ONLY``:
``Pure`` (one bridge transaction: imperative code over leaves run as a pure function of
arrays, then checked and written back; over ``run``), ``retracing`` (the one retrace loop),
``Retrace``, ``check``/``raise_failed``/``refuse_tracers``,
``values_of``/``grads_of``/``assign``/``write_back``, and ``Cache``. Nothing outside the
tracker touches a leaf's cell or ``_grad``.
"""

from ._back import back_, update_
from ._bridge import (
    Effects,
    Guarded,
    Pure,
    Retrace,
    Run,
    assign,
    grads_of,
    is_freed,
    plain,
    raise_failed,
    refuse_tracers,
    resize,
    retracing,
    run,
    transaction,
    values_of,
    write_back,
)
from ._cache import Cache, Guards, cache_sizes, clear_caches, noting_statics, static
from ._derivatives import gradcheck, hessian, jacobian
from ._forwarddiff import forward_jacobian, forwarddiff
from ._gradient import checkpoint, forward, gradient, hook, swapped
from ._graph import warn_user
from ._interop import Hint, TrackedTypeError
from ._interop import install as _install_interop
from ._leaves import data, grad, is_tracked, param, state
from ._lift import track
from ._models import register_leaf_finder
from ._node import Tracked, TrackedArray, TrackedReal
from ._params import Grads, Params
from ._trace import check

_install_interop(Tracked)  # NumPy protocols, plain-JAX errors, PyTorch habits

# The user's API: every name here is also a top-level name (`fluxjax/__init__.py` star-imports
# this list and appends it to its own `__all__`), and docs/api/tracker.md documents it.
__all__ = [
    "Grads", "Params", "Tracked", "TrackedArray", "TrackedReal", "back_", "checkpoint", "data",
    "forward", "grad", "gradcheck", "gradient", "hessian", "hook", "jacobian", "param", "state",
    "track", "clear_caches", "forward_jacobian", "forwarddiff",
]  # fmt: skip

# Names only ``fluxjax.tracker.NAME`` gives (documented on the same page): a few user names
# the top level leaves out (its ``update_`` is ``fluxjax.train``'s, which extends this one),
# then the seam for compiled paths (train_, fluxjax.jit): see docs/INTERNALS.md.
TRACKER_ONLY = [
    "is_tracked", "swapped", "update_", "TrackedTypeError", "Hint",
    "Cache", "Retrace", "Run", "assign", "cache_sizes", "check", "grads_of", "plain",
    "raise_failed", "register_leaf_finder", "run", "values_of", "warn_user", "write_back",
    "is_freed", "resize", "transaction", "Guards", "noting_statics", "static",
    "Pure", "Effects", "retracing", "Guarded", "refuse_tracers",
]  # fmt: skip
