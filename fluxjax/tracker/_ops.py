"""The plain JAX functions behind ``Tracked``'s indexing and shape methods."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._compat import Tracer


def getitem(x, index):
    return x[index]


def static_masks(index):
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


def astype(x, dtype):
    return x.astype(dtype)


def reshape(x, shape):
    return jnp.reshape(x, shape)


def shape_arg(args):
    """``t.reshape(2, 3)`` and ``t.reshape((2, 3))`` alike (``t.transpose`` too)."""
    match args:
        case (first,) if not isinstance(first, int):
            return first
    return args or None
