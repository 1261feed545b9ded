"""fluxjax: Flux.jl's model-building experience, in Python on JAX.

>>> import fluxjax as fj
>>> W = fj.param([[1.0, 2.0]])
>>> l = (W @ fj.numpy.array([3.0, 4.0])).sum()
>>> fj.back_(l)
>>> fj.grad(W)
Array([[3., 4.]], dtype=float32)
"""

from . import numpy, tracker
from .tracker import (
    Grads,
    Params,
    Tracked,
    TrackedArray,
    TrackedReal,
    back_,
    checkpoint,
    data,
    forward,
    grad,
    gradcheck,
    gradient,
    hessian,
    hook,
    jacobian,
    param,
    track,
    update_,
)

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
    "jacobian",
    "numpy",
    "param",
    "track",
    "tracker",
    "update_",
]
