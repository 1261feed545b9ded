"""``track``: the one mechanism that lifts any JAX function to tracked inputs.

A lifted function called with a tracked input records itself (``_node.apply``); with
plain inputs it is the function itself.
"""

from __future__ import annotations

import functools

from ._node import Tracked, apply


def _has_tracked(args):
    for a in args:
        if isinstance(a, Tracked):
            return True
        t = type(a)
        if (t is list or t is tuple) and _has_tracked(a):
            return True
        if t is dict and _has_tracked(a.values()):
            return True
    return False


def track(fn):
    """track(fn) -> ``fn`` lifted so it accepts tracked inputs (and records itself).

    ``fn`` is any JAX-traceable function, ``jax.custom_vjp`` ones included (that is how
    to write a custom gradient). With plain inputs the lifted function is ``fn`` itself.

    >>> from fluxjax import param, back_, grad
    >>> cube = track(lambda x: x ** 3)
    >>> x = param(2.0)
    >>> back_(cube(x))
    >>> grad(x)
    Array(12., dtype=float32)
    """
    fn = getattr(fn, "_fluxjax_fn", fn)

    @functools.wraps(fn)
    def lifted(*args, **kwargs):
        if _has_tracked(args) or (kwargs and _has_tracked(kwargs.values())):
            return apply(fn, args, kwargs)
        return fn(*args, **kwargs)

    lifted._fluxjax_fn = fn
    return lifted
