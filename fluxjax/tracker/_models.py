"""Which leaves of ``gradient``'s arguments are ``state`` leaves: a hook the layers fill.

A treelike model flattens to plain arrays (``jax.tree_util`` unboxes its params and
state leaves), so the tracker alone cannot tell a BatchNorm's running mean from a
weight. ``fluxjax.layers`` registers, when it is imported, a *leaf finder*
(``register_leaf_finder``): ``find(xs) -> list``, for each leaf of
``jax.tree_util.tree_leaves(xs)`` the tracked leaf it was read from, or None (a plain
array, or a place the finder cannot resolve). Without a finder every leaf is
differentiated, as for plain pytrees.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._bridge import Pure, as_input, values_of
from ._node import Tracked


class LeafFinder:
    """The one slot for the finder (see the module docstring)."""

    __slots__ = ("find",)

    def __init__(self):
        self.find = None

    def register(self, find):
        """Makes ``find`` the finder ``gradient`` asks; returns it."""
        self.find = find
        return find


FINDER = LeafFinder()


def register_leaf_finder(find):
    """register_leaf_finder(find) -> find: ``find(xs)`` gives, for each leaf of
    ``jax.tree_util.tree_leaves(xs)``, the tracked leaf behind it or None. ``gradient(f,
    model)`` reads the state leaves it finds through the bridge instead of differentiating
    them (``fluxjax.layers`` registers its finder at import)."""
    return FINDER.register(find)


def _is_tracked(x) -> bool:
    return isinstance(x, Tracked)


def _is_state(x) -> bool:
    return isinstance(x, Tracked) and x.is_leaf and not x.trainable


class Split(NamedTuple):
    """The arguments ``xs`` taken apart: their ``leaves`` and ``tree`` (``jax.tree_util``
    order), ``owner[i]`` the state leaf read at position ``i`` (None: a leaf to
    differentiate), and ``states``, those state leaves, each once."""

    leaves: list
    tree: Any
    owner: list
    states: list


def split_states(xs) -> Split | None:
    """``xs`` split at its state leaves; None when it holds none (or no finder is set)."""
    leaves, tree = jax.tree_util.tree_flatten(xs, is_leaf=_is_tracked)
    found = FINDER.find(xs) if FINDER.find is not None else [None] * len(leaves)
    owner = [
        x if _is_state(x) else o if _is_state(o) else None
        for x, o in zip(leaves, found, strict=True)
    ]
    if not any(o is not None for o in owner):
        return None
    states = list({id(o): o for o in owner if o is not None}.values())
    return Split(leaves, tree, owner, states)


def filled(tree, base, at, values):
    """The tree ``tree`` over the leaves ``base``, with ``values[k]`` at place ``at[k]``."""
    leaves = list(base)
    for i, v in zip(at, values, strict=True):
        leaves[i] = v
    return jax.tree_util.tree_unflatten(tree, leaves)


def stateful_vjp(f, split, out):
    """stateful_vjp(f, split, out) -> (y, back): ``jax.vjp`` of ``out(f(*xs))`` over every
    leaf of ``xs`` but its state leaves; ``back(Δ)`` gives one gradient per argument,
    None at the state places.

    The state places hold the state leaves themselves, threaded through the bridge as in
    ``gradient(f, ps)``: ``f`` reads and writes them as eager code does (a layer used
    twice sees its first write), and what it wrote is written back once, after success.
    """
    at = [i for i, o in enumerate(split.owner) if o is None]
    pure = Pure(f, split.states, write_leaves=True)
    current = values_of(split.states)

    def g(vals):
        y, effects = pure(current, *filled(split.tree, split.owner, at, vals))
        return out(y), effects

    vals = [as_input(split.leaves[i]) for i in at]
    y, pull, effects = jax.vjp(g, vals, has_aux=True)
    pure.commit(effects)

    def back(Δ):
        (gs,) = pull(jnp.broadcast_to(jnp.asarray(Δ, y.dtype), y.shape))
        return tuple(filled(split.tree, [None] * len(split.owner), at, gs))

    return y, back
