"""The one model walk, as Flux v0.9's ``children``/``mapchildren``.

``children(x)`` lists what sits just below ``x``; ``mapchildren(f, x, memo)`` rebuilds
``x`` with ``f`` applied to each of them. Every model walker is a short use of the two:
``walk`` (``params``, ``states``, ``testmode_``, ``reset_``, ``save``/``load``, a
checkpoint's names), ``fmap`` (``gpu``, ``f32``...) and ``at_path`` (the tracker's leaf
finder, ``leaf_owners``).

A model tree is made of treelike objects, lists, tuples, dicts, ``Params``, other JAX
pytrees, functions (whose attributes and closure cells are visited, so the seed's
closure ``linear(in, out)`` exposes its params) and bound methods (their object). Each
value met is a ``Found`` record: its path of names from the root (``("0", "W")``), the
value, and where it sits (``name`` in ``owner``, reached ``how``), so that ``load`` can replace a
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
from ._opaque import ATOMS, holds_model, unregistered
from ._treelike import items, rebuilt


class Found(NamedTuple):
    """One value met by ``walk``: what it is called, where it sits, how to replace it.

    ``name`` is the attribute, position, dict key or closure variable that holds it in
    ``owner``; ``parent`` is the ``Found`` of the object above it (None at the top), so
    ``path_of(found)`` names it from the root. ``how`` is ``"attr"`` (``owner.<name>``),
    ``"item"`` (``owner[name]``), ``"cell"`` (``owner`` is a closure cell) or ``None`` (an
    immutable place: a tuple, a pytree).
    """

    value: Any
    name: Any = None
    owner: Any = None
    how: str | None = None
    parent: Found | None = None


def path_of(found: Found) -> tuple[str, ...]:
    """The names from the root down to ``found``: ``("0", "W")``."""
    names = []
    while found is not None and found.name is not None:
        names.append(str(found.name))
        found = found.parent
    return tuple(reversed(names))


def is_filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
        return True
    except ValueError:  # an empty cell
        return False


def _function_children(f, at):
    out = [Found(v, name, f, "attr", at) for name, v in vars(f).items()]
    for name, cell in zip(f.__code__.co_freevars, f.__closure__ or (), strict=True):
        if is_filled(cell):
            out.append(Found(cell.cell_contents, name, cell, "cell", at))
    return out


def _pytree_children(x, at):
    pairs = jax.tree_util.tree_flatten_with_path(x, is_leaf=lambda y: y is not x)[0]
    if len(pairs) == 1 and pairs[0][1] is x:
        return []
    names = [getattr(k, "name", getattr(k, "idx", getattr(k, "key", None))) for (k,), _ in pairs]
    return [Found(v, n, None, None, at) for n, (_, v) in zip(names, pairs, strict=True)]


def children(x, at: Found | None = None) -> list[Found]:
    """children(x, at=None) -> [Found]: the values a walk visits just below ``x`` (found
    at ``at``), in order, each with its name and place (Flux's ``children``).

    >>> from fluxjax.layers import Dense
    >>> [(f.name, f.how) for f in children(Dense(2, 3))]
    [('W', 'attr'), ('b', 'attr'), ('σ', 'attr')]
    """
    pairs = items(x)
    if pairs is not None:  # a Chain's positions cannot be assigned; fields can
        return [Found(v, n, x, "attr" if type(n) is str else None, at) for n, v in pairs]
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return [Found(v, n, x, None, at) for n, v in zip(x._fields, x, strict=True)]
    if isinstance(x, list):
        return [Found(v, i, x, "item", at) for i, v in enumerate(x)]
    if isinstance(x, (tuple, set, frozenset, Params)):
        return [Found(v, i, x, None, at) for i, v in enumerate(x)]
    if isinstance(x, dict):
        return [Found(v, k, x, "item", at) for k, v in x.items()]
    if isinstance(x, types.FunctionType):
        return _function_children(x, at)
    if isinstance(x, types.MethodType):  # model.forward: the model it is bound to
        return [Found(x.__self__, "__self__", x, None, at)]
    return _pytree_children(x, at)


def mapchildren(f, x, memo: dict):
    """mapchildren(f, x, memo) -> a copy of ``x`` with ``f`` applied to each of its
    ``children`` (Flux's ``mapchildren``); ``memo[id(x)]`` gets the copy, before the
    children for the kinds that may reach themselves (treelike objects, lists, functions).
    Sets, ``Params`` and other leaves of JAX are kept as they are.

    >>> mapchildren(lambda v: v * 10, {"a": 1, "b": [2]}, {})
    {'a': 10, 'b': [2, 2, 2, 2, 2, 2, 2, 2, 2, 2]}
    """
    if items(x) is not None:
        return rebuilt(x, f, memo)
    if isinstance(x, list):
        new = memo[id(x)] = []
        new.extend(map(f, x))
        return new
    if isinstance(x, types.FunctionType):
        return _rebuilt_function(x, f, memo)
    if isinstance(x, tuple):
        new = type(x)(*map(f, x)) if hasattr(x, "_fields") else tuple(map(f, x))
    elif isinstance(x, dict):
        new = type(x)((k, f(v)) for k, v in x.items())
    elif isinstance(x, types.MethodType):
        new = types.MethodType(x.__func__, f(x.__self__))
    else:
        kids, tree = jax.tree_util.tree_flatten(x, is_leaf=lambda y: y is not x)
        new = x if len(kids) == 1 and kids[0] is x else tree.unflatten(map(f, kids))
    memo[id(x)] = new
    return new


def _rebuilt_function(fn, f, memo):
    """A copy of ``fn`` whose closure cells and attributes hold ``f`` of their values."""
    cells = tuple(types.CellType() for _ in fn.__closure__ or ())
    new = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, cells)
    memo[id(fn)] = new  # before the values: a closure may reach itself
    for cell, old in zip(cells, fn.__closure__ or (), strict=True):
        if is_filled(old):
            cell.cell_contents = f(old.cell_contents)
    new.__kwdefaults__, new.__qualname__ = fn.__kwdefaults__, fn.__qualname__
    new.__doc__, new.__module__ = fn.__doc__, fn.__module__
    new.__dict__.update({k: f(v) for k, v in vars(fn).items()})
    return new


_NAMED_KEYS = (jax.tree_util.GetAttrKey, jax.tree_util.SequenceKey, jax.tree_util.DictKey)
_NOWHERE = object()


def at_path(x, path):
    """at_path(x, path) -> the value a ``jax.tree_util`` key ``path`` reaches from ``x``,
    following ``children`` (a tracked leaf ends it: the ``.data`` of a boxed param); None
    where no child matches.

    >>> import jax
    >>> from fluxjax.layers import Chain, Dense
    >>> m = Chain(Dense(2, 3))
    >>> path = jax.tree_util.tree_flatten_with_path(m)[0][0][0]
    >>> jax.tree_util.keystr(path), at_path(m, path) is m[0].W
    ('[0].W', True)
    """
    for key in path:
        if isinstance(x, Tracked):
            break
        name = getattr(key, "name", getattr(key, "idx", getattr(key, "key", None)))
        name = name if isinstance(key, _NAMED_KEYS) else _NOWHERE  # a flattened index
        x = next((f.value for f in children(x) if f.name == name), _NOWHERE)
        if x is _NOWHERE:
            return None
    return x


def walk(*models) -> Iterator[Found]:
    """Every value in ``models``, depth first, each object once (the first path wins).

    Arrays and params are yielded and not entered; atoms (numbers, strings, classes,
    modules) and ``None`` are skipped. A plain object holding layers or params raises
    ``TypeError`` naming ``fj.treelike`` (it would otherwise be missed silently).
    """
    seen = set()
    several = len(models) > 1
    stack = [Found(m, i if several else None) for i, m in reversed(list(enumerate(models)))]
    while stack:
        found = stack.pop()
        x = found.value
        if id(x) in seen or x is None or isinstance(x, ATOMS):
            continue
        seen.add(id(x))
        if holds_model(x):
            raise unregistered(x, ".".join(path_of(found)))
        yield found
        if not isinstance(x, (Tracked, jax.Array, np.ndarray)):
            stack.extend(reversed(children(x, found)))


def is_tracked_leaf(x) -> bool:
    """A param, or a non-trainable tracked leaf (state): what ``save``/``load`` keep."""
    return isinstance(x, Tracked) and x.is_leaf


def is_param(x) -> bool:
    """A trainable tracked leaf: what ``params`` collects (state leaves are not params)."""
    return isinstance(x, Tracked) and x.is_leaf and getattr(x, "trainable", True)


def is_state(x) -> bool:
    """A non-trainable tracked leaf (``fluxjax.state``): what ``states`` collects."""
    return isinstance(x, Tracked) and x.is_leaf and not getattr(x, "trainable", True)


def is_transient(found: Found) -> bool:
    """True for a value held (directly or inside a tuple) by a field its layer lists in
    ``_transient``: a recurrent carry, which ``save`` never writes."""
    while found is not None:
        if isinstance(found.name, str) and found.name in getattr(
            type(found.owner), "_transient", ()
        ):
            return True
        found = found.parent
    return False


def put(found: Found, new) -> None:
    """Puts ``new`` where ``found`` was (a tracked leaf keeps its identity: its data changes)."""
    if is_tracked_leaf(found.value):
        found.value.data = new
    elif found.how == "attr":
        object.__setattr__(found.owner, found.name, new)
    elif found.how == "item":
        found.owner[found.name] = new
    elif found.how == "cell":
        found.owner.cell_contents = new
    else:
        raise ValueError(f"cannot replace the array at {'.'.join(path_of(found))} in place")
