"""Objects the model walk cannot see inside, and the error that names ``fj.treelike``.

A plain object (not treelike, not a pytree, not a function) whose attributes hold layers
or params would be missed silently by ``params``, ``testmode_``, ``save``... so the walk
(``_walk.py``) and the leaf finder raise ``UnregisteredModelError`` on meeting one.
"""

from __future__ import annotations

import types

import jax
import numpy as np

from ..tracker import Params, Tracked
from ._treelike import items

ATOMS = (str, bytes, int, float, complex, bool, type, types.ModuleType)
_SEEN_INTO = (types.FunctionType, types.MethodType, list, tuple, dict, set, frozenset, Params)
_SEEN = (Tracked, jax.Array, np.ndarray, *_SEEN_INTO)  # leaves, or entered by the walk


class UnregisteredModelError(TypeError, ValueError):
    """A plain object holding layers or params that no walk can see inside."""


def is_opaque(x) -> bool:
    """is_opaque(x) -> True for a plain object the walk cannot see inside (not treelike,
    not a container, not a pytree node, not a function).

    >>> is_opaque(object()), is_opaque([1]), is_opaque(lambda: 0)
    (True, False, False)
    """
    if isinstance(x, _SEEN) or items(x) is not None:
        return False
    kids = jax.tree_util.tree_leaves(x, is_leaf=lambda y: y is not x)
    return not kids or (len(kids) == 1 and kids[0] is x)


def _model_like(v, depth=1) -> bool:
    if isinstance(v, Tracked) and v.is_leaf or items(v) is not None:
        return True
    if depth and isinstance(v, (list, tuple, dict)):
        values = v.values() if isinstance(v, dict) else v
        return any(_model_like(u, depth - 1) for u in values)
    return False


def holds_model(x) -> bool:
    """holds_model(x) -> True for a plain object (see ``is_opaque``) whose attributes hold
    layers or params, directly or in a list, tuple or dict.

    >>> from fluxjax.layers import Dense
    >>> class Net:
    ...     def __init__(self):
    ...         self.layers = [Dense(2, 1)]
    >>> holds_model(Net()), holds_model(Dense(2, 1))
    (True, False)
    """
    if isinstance(x, ATOMS) or not is_opaque(x):
        return False
    attrs = getattr(x, "__dict__", None)
    values = list(attrs.values()) if isinstance(attrs, dict) else []
    values += [getattr(x, n) for n in getattr(type(x), "__slots__", ()) if hasattr(x, n)]
    return any(_model_like(v) for v in values)


def unregistered(x, where="") -> UnregisteredModelError:
    """unregistered(x, where="") -> the error for a plain object ``x`` holding layers or
    params (see ``holds_model``), naming ``fj.treelike``.

    >>> e = unregistered(object(), "0.net")
    >>> isinstance(e, TypeError), str(e).split(" holds")[0], "fj.treelike(object)" in str(e)
    (True, 'the object at 0.net', True)
    """
    name = type(x).__name__
    at = f" at {where}" if where else ""
    return UnregisteredModelError(
        f"the {name}{at} holds layers or params that fluxjax cannot see inside (params, "
        f"setup, testmode_, gradient, save would miss them): register its class with "
        f"fj.treelike({name}), or write @fj.treelike above its class statement"
    )
