"""Boxing params held in the list, tuple and dict fields of a treelike object.

A bare tracked value is a JAX leaf that plain JAX refuses (see docs/INTERNALS.md), so
while a model is flattened the params inside its containers are put in a ``_ParamSlot``,
a pytree node whose one child is the param's array.
"""

from __future__ import annotations

import jax
import numpy as np

from ..tracker import Tracked, param, state


def is_concrete(c) -> bool:
    """A real array (not a tracer, not a placeholder, not the ``float0`` "gradient" of an
    integer leaf): what a fresh ``param`` or ``state`` can hold."""
    if not isinstance(c, (jax.Array, np.ndarray)) or isinstance(c, jax.core.Tracer):
        return False
    return c.dtype != jax.dtypes.float0


class _ParamSlot:
    """A param inside a list, tuple or dict field: JAX sees its array (key ``.data``).

    Unflattening the box gives a fresh ``param`` (or ``state`` leaf, for a non-trainable
    one) for a concrete array and the raw value (a tracer, say) otherwise.
    """

    __slots__ = ("array", "trainable")

    def __init__(self, array, trainable=True):
        self.array, self.trainable = array, trainable


def _unbox(trainable, children):
    (c,) = children
    return (param if trainable else state)(c) if is_concrete(c) else c


jax.tree_util.register_pytree_with_keys(
    _ParamSlot,
    lambda s: (((jax.tree_util.GetAttrKey("data"), s.array),), s.trainable),
    _unbox,
    lambda s: ((s.array,), s.trainable),
)


def boxed(v):
    """``v`` with the params in its lists, tuples and dicts boxed (nothing else copied)."""
    t = type(v)
    if t is list or t is tuple:
        return t(map(_boxed_item, v)) if any(map(_needs_box, v)) else v
    if t is dict:
        return {k: _boxed_item(e) for k, e in v.items()} if any(map(_needs_box, v.values())) else v
    return v


def _boxed_item(v):
    if isinstance(v, Tracked) and v.is_leaf:
        return _ParamSlot(v.data, v.trainable)
    return boxed(v)


def _needs_box(v) -> bool:
    t = type(v)
    if t is list or t is tuple:
        return any(map(_needs_box, v))
    if t is dict:
        return any(map(_needs_box, v.values()))
    return isinstance(v, Tracked) and v.is_leaf
