"""fluxjax.tracker: tracked values and imperative gradients, with JAX doing the calculus."""

from ._back import back_, update_
from ._gradient import checkpoint, forward, gradcheck, gradient, hessian, hook, jacobian, swapped
from ._interop import install as _install_interop
from ._lift import track
from ._node import Tracked, TrackedArray, TrackedReal, data, grad, is_tracked, param
from ._ops import install as _install_ops
from ._params import Grads, Params

_install_ops()
_install_interop(Tracked)

__all__ = [
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
    "swapped",
    "track",
    "update_",
]
