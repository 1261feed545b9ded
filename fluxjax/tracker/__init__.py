"""fluxjax.tracker: tracked values and imperative gradients, with JAX doing the calculus."""

from ._back import back_, update_
from ._bridge import Retrace, Run, assign, grads_of, plain, raise_failed, run, values_of, write_back
from ._cache import Cache, cache_sizes, clear_caches
from ._gradient import checkpoint, forward, gradcheck, gradient, hessian, hook, jacobian, swapped
from ._leaves import data, grad, is_tracked, param, state
from ._lift import track
from ._node import Tracked, TrackedArray, TrackedReal
from ._params import Grads, Params
from ._trace import check

__all__ = [
    "Cache",
    "cache_sizes",
    "clear_caches",
    "Retrace",
    "Run",
    "assign",
    "grads_of",
    "plain",
    "raise_failed",
    "check",
    "run",
    "values_of",
    "write_back",
    "Grads",
    "Params",
    "Tracked",
    "TrackedArray",
    "TrackedReal",
    "back_",
    "checkpoint",
    "data",
    "forward",
    "grad",
    "gradcheck",
    "gradient",
    "hessian",
    "hook",
    "is_tracked",
    "jacobian",
    "param",
    "state",
    "swapped",
    "track",
    "update_",
]
