"""``partition`` / ``combine``: a model split into its params and the rest (Equinox's
``partition``/``combine``), for plain ``jax.grad`` and optax on models with state.

A model's pytree holds its params and its state leaves (running statistics, a dropout
layer's random key, a recurrent carry) side by side. ``jax.grad`` of a loss of the
whole model differentiates the state too (and refuses an integer key unless
``allow_int=True``), and optax would then step the state. ``partition(m)`` gives two
trees shaped like ``m``: the params, with ``None`` elsewhere, and everything else, with
``None`` at the params; ``combine`` puts them back together.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._stateful import leaf_owners


def _is_none(x) -> bool:
    return x is None


def partition(model):
    """partition(m) -> (params, rest)

    Two trees shaped like ``m``: ``params`` holds each trainable param's array (``None``
    at every other place), ``rest`` everything else (``None`` at the params). Take the
    gradient over ``params`` only and put the model back together with ``combine``.

    >>> import jax, jax.numpy as jnp, optax
    >>> from fluxjax.layers import BatchNorm, Chain, Dense
    >>> m = Chain(Dense(3, 2), BatchNorm(2))
    >>> params, rest = partition(m)
    >>> loss = lambda p, x: jnp.sum(combine(p, rest)(x) ** 2)
    >>> grads = jax.grad(loss)(params, jnp.ones((4, 3)))
    >>> tx = optax.sgd(0.1)
    >>> updates, _ = tx.update(grads, tx.init(params))
    >>> m = combine(optax.apply_updates(params, updates), rest)
    >>> len(jax.tree_util.tree_leaves(params)), len(jax.tree_util.tree_leaves(rest))
    (4, 2)
    """
    leaves, tree = jax.tree_util.tree_flatten(model)
    owners = leaf_owners(model)
    trainable = [o is not None and o.trainable for o in owners]
    params = [x if t else None for x, t in zip(leaves, trainable, strict=True)]
    rest = [None if t else x for x, t in zip(leaves, trainable, strict=True)]
    return jax.tree_util.tree_unflatten(tree, params), jax.tree_util.tree_unflatten(tree, rest)


def combine(*trees):
    """combine(params, rest) -> the model: at each place the first value that is not
    ``None`` (the inverse of ``partition``).

    >>> from fluxjax.layers import Dense
    >>> d = Dense(2, 1)
    >>> combine(*partition(d)).W.shape
    (1, 2)
    """
    pick = lambda *xs: next((x for x in xs if x is not None), None)  # noqa: E731
    merged = jax.tree_util.tree_map(pick, *trees, is_leaf=_is_none)
    leaves, tree = jax.tree_util.tree_flatten(merged)
    tracer = next((x for x in leaves if isinstance(x, jax.core.Tracer)), None)
    if tracer is not None:  # inside jax.grad/jit: the state joins the trace (see _lifted)
        leaves = [_lifted(x, tracer) for x in leaves]
    return jax.tree_util.tree_unflatten(tree, leaves)


def _lifted(x, tracer):
    """``x`` as a value of ``tracer``'s trace, exactly: a layer of the combined model may
    then assign its state there (the new state is part of that pure function's trace, and
    lost unless it returns it), instead of writing a tracer into a concrete leaf."""
    if isinstance(x, jax.core.Tracer) or not hasattr(x, "dtype"):
        return x
    zero = (jnp.ravel(tracer)[0] * 0).astype(x.dtype)  # never selected: only its trace
    return jax.lax.select(jnp.zeros(x.shape, bool), jnp.broadcast_to(zero, x.shape), x)
