"""Operators and array methods of tracked values: one table, each entry lifted by ``track``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._lift import apply, track
from ._node import Tracer, Tracked

_BINARY = {
    "add": jnp.add,
    "sub": jnp.subtract,
    "mul": jnp.multiply,
    "truediv": jnp.true_divide,
    "floordiv": jnp.floor_divide,
    "mod": jnp.mod,
    "pow": jnp.power,
    "matmul": jnp.matmul,
}
_UNARY = {"neg": jnp.negative, "pos": jnp.positive, "abs": jnp.abs}
_COMPARE = {
    "lt": jnp.less,
    "le": jnp.less_equal,
    "gt": jnp.greater,
    "ge": jnp.greater_equal,
    "eq": jnp.equal,
    "ne": jnp.not_equal,
}
_METHODS = {
    name: getattr(jnp, name)
    for name in (
        "sum mean max min prod std var cumsum argmax argmin squeeze ravel "
        "clip dot conj round exp log sqrt"
    ).split()
}


def _getitem(x, index):
    return x[index]


def _static_masks(index):
    """NumPy boolean masks as integer indices: a mask's result shape depends on its values,
    which must be known when the op is recorded."""
    parts = index if type(index) is tuple else (index,)
    if not any(_is_mask(i) for i in parts):
        return index
    out = []
    for i in parts:
        out.extend(np.nonzero(np.asarray(i)) if _is_mask(i) else (i,))
    return tuple(out)


def _is_mask(i):
    return isinstance(i, (np.ndarray, jax.Array)) and i.dtype == bool and not isinstance(i, Tracer)


def _astype(x, dtype):
    return x.astype(dtype)


def _reshape(x, shape):
    return jnp.reshape(x, shape)


def _binary(f):
    return (lambda self, other: apply(f, (self, other), {})), (
        lambda self, other: apply(f, (other, self), {})
    )


def _method(f):
    return lambda self, *args, **kwargs: apply(f, (self, *args), kwargs)


def _compare(f):
    return lambda self, other: f(self.data, other.data if isinstance(other, Tracked) else other)


def install():
    """Attach every operator and method to ``Tracked``."""
    for name, f in _BINARY.items():
        fwd, rev = _binary(f)
        setattr(Tracked, f"__{name}__", fwd)
        setattr(Tracked, f"__r{name}__", rev)
    for name, f in _UNARY.items():
        setattr(Tracked, f"__{name}__", _method(f))
    for name, f in _COMPARE.items():
        setattr(Tracked, f"__{name}__", _compare(f))
    for name, f in _METHODS.items():
        setattr(Tracked, name, _method(f))
    getitem, astype, reshape = track(_getitem), track(_astype), track(_reshape)
    Tracked.__getitem__ = lambda self, index: getitem(self, _static_masks(index))
    Tracked.astype = lambda self, dtype: astype(self, dtype)
    Tracked.reshape = lambda self, *shape: reshape(
        self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape
    )
    Tracked.flatten = lambda self: reshape(self, (-1,))
    transpose = track(jnp.transpose)
    Tracked.transpose = lambda self, *axes: transpose(
        self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else (axes or None)
    )
    Tracked.T = property(lambda self: self.transpose())
