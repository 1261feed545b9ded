"""The one walk over a model tree, shared by ``params`` and by ``save``/``load``.

A model tree is made of treelike objects, lists, tuples, dicts, ``Params``, other JAX
pytrees, functions (whose attributes and closure cells are visited, so the seed's
closure ``linear(in, out)`` exposes its params) and bound methods (their object). Each
value met is a ``Found`` record: its path of names from the root (``("0", "W")``), the
value, and where it sits (``owner``, ``how``, ``key``), so that ``load`` can replace a
plain array in place. Every object is visited once, by identity: shared leaves keep
their first path and self-references end the walk.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any, NamedTuple

import jax
import numpy as np

from ..tracker import Params, Tracked
from ._treelike import items

ATOMS = (str, bytes, int, float, complex, bool, type, types.ModuleType)


class Found(NamedTuple):
    """One value met by ``walk``: where it is and how to put another value there.

    ``how`` is ``"attr"`` (``owner.<name>``), ``"item"`` (``owner[key]``), ``"cell"``
    (``owner`` is a closure cell) or ``None`` (an immutable place: a tuple, a pytree).
    """

    path: tuple
    value: Any
    owner: Any = None
    how: str | None = None
    key: Any = None


def is_filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
        return True
    except ValueError:  # an empty cell
        return False


def _function_children(f, path):
    for name, v in vars(f).items():
        yield Found((*path, name), v, f, "attr", name)
    names = f.__code__.co_freevars
    for name, cell in zip(names, f.__closure__ or (), strict=True):
        if is_filled(cell):
            yield Found((*path, name), cell.cell_contents, cell, "cell")


def _pytree_children(x, path):
    pairs = jax.tree_util.tree_flatten_with_path(x, is_leaf=lambda y: y is not x)[0]
    if len(pairs) == 1 and pairs[0][1] is x:
        return
    for keypath, v in pairs:
        k = keypath[0]
        name = getattr(k, "name", getattr(k, "idx", getattr(k, "key", None)))
        yield Found((*path, str(name)), v)


def children(x, path=()) -> Iterator[Found]:
    """The values a walk visits just below ``x``, in order, as ``Found`` records."""
    pairs = items(x)
    if pairs is not None:
        for name, v in pairs:
            how = "attr" if isinstance(name, str) else None  # a Chain's positions are not
            yield Found((*path, str(name)), v, x, how, name)
    elif isinstance(x, tuple) and hasattr(x, "_fields"):
        yield from (Found((*path, n), v) for n, v in zip(x._fields, x, strict=True))
    elif isinstance(x, (list, tuple, set, frozenset, Params)):
        how = "item" if isinstance(x, list) else None
        yield from (Found((*path, str(i)), v, x, how, i) for i, v in enumerate(x))
    elif isinstance(x, dict):
        yield from (Found((*path, str(k)), v, x, "item", k) for k, v in x.items())
    elif isinstance(x, types.FunctionType):
        yield from _function_children(x, path)
    elif isinstance(x, types.MethodType):  # model.forward: the model it is bound to
        yield Found((*path, "__self__"), x.__self__)
    else:
        yield from _pytree_children(x, path)


def walk(*models) -> Iterator[Found]:
    """Every value in ``models``, depth first, each object once (the first path wins).

    Arrays and params are yielded and not entered; atoms (numbers, strings, classes,
    modules) and ``None`` are skipped.
    """
    seen = set()
    stack = [Found((str(i),) if len(models) > 1 else (), m) for i, m in enumerate(models)]
    stack.reverse()
    while stack:
        found = stack.pop()
        x = found.value
        if id(x) in seen or x is None or isinstance(x, ATOMS):
            continue
        seen.add(id(x))
        yield found
        if not isinstance(x, (Tracked, jax.Array, np.ndarray)):
            stack.extend(reversed(list(children(x, found.path))))


def is_param(x) -> bool:
    return isinstance(x, Tracked) and x.is_leaf


def is_opaque(x) -> bool:
    """A plain object the walk cannot see inside (not treelike, not a pytree, no closure)."""
    if isinstance(x, (Tracked, jax.Array, np.ndarray, types.FunctionType, types.MethodType)):
        return False
    if items(x) is not None or isinstance(x, (list, tuple, dict, set, frozenset, Params)):
        return False
    return next(iter(_pytree_children(x, ())), None) is None


def put(found: Found, new) -> None:
    """Puts ``new`` where ``found`` was (a param keeps its identity: its data changes)."""
    if is_param(found.value):
        found.value.data = new
    elif found.how == "attr":
        object.__setattr__(found.owner, found.key, new)
    elif found.how == "item":
        found.owner[found.key] = new
    elif found.how == "cell":
        found.owner.cell_contents = new
    else:
        raise ValueError(f"cannot replace the array at {'.'.join(found.path)} in place")
