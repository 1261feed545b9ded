"""Making leaves and reading tracked values: ``param``, ``state``, ``data``, ``grad``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._cell import _as_float_array, _numeric
from ._compat import Tracer
from ._node import Tracked, tracked_type


def param(x) -> Tracked:
    """param(x) -> a trainable leaf: ``TrackedReal`` for a number, ``TrackedArray`` otherwise.

    Integers become floats; the gradient starts at zeros.

    >>> W = param([[1, 2], [3, 4]])
    >>> W.shape, W.dtype
    ((2, 2), dtype('float32'))
    >>> param(2)
    2.0 (tracked)
    """
    value = _as_float_array(x)
    if jnp.issubdtype(value.dtype, jnp.complexfloating):
        raise TypeError(f"param holds real floats, got {value.dtype}: use two params (re, im)")
    return tracked_type(value.shape)._leaf(value)


def state(x) -> Tracked:
    """state(x) -> a non-trainable leaf holding ``x`` (running statistics, a PRNG key, a count).

    It keeps ``x``'s dtype (float, int, uint32...). ``s.data`` reads it and ``s.data = v``
    writes it (same shape, cast to its dtype). ``back_`` treats it as a constant, it has
    no ``.grad``, and ``Params`` refuses it; every gradient and compiled path (``gradient``,
    ``train_``, ``fluxjax.jit``) reads it as an input and writes back what the code
    assigned to it, after the step succeeded.

    >>> n = state(0)
    >>> n.data = n.data + 1
    >>> n.data, n.trainable, n.is_leaf
    (Array(1, dtype=int32), False, True)
    """
    if isinstance(x, Tracked):
        x = x.data
    value = _numeric(x, "a state's value")
    concrete = isinstance(value, jax.Array) and not isinstance(value, Tracer)
    if not (concrete and not value.weak_type):  # a definite concrete array is kept as it is
        value = jnp.asarray(value, jnp.asarray(value).dtype)  # a definite dtype, never weak
    return tracked_type(value.shape)._leaf(value, state=True)


def data(x):
    """data(x) -> the plain JAX value of a tracked ``x``; ``x`` itself otherwise.

    >>> data(param(3.0)) + 1
    Array(4., dtype=float32)
    """
    return x.data if isinstance(x, Tracked) else x


def grad(x):
    """grad(x) -> the gradient ``back_`` accumulated in ``x``; ``None`` if ``x`` is untracked.

    >>> from fluxjax import back_
    >>> W = param(2.0)
    >>> back_(W * 3)
    >>> grad(W)
    Array(3., dtype=float32)
    """
    return x.grad if isinstance(x, Tracked) else None


def is_tracked(x) -> bool:
    return isinstance(x, Tracked)
