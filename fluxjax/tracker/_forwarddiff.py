"""Tracker's forward-mode pair: ``forward_jacobian`` and ``forwarddiff``.

``forwarddiff(f, x)`` is one recorded op whose derivative JAX takes by forward mode: a
``jax.custom_jvp`` whose rule is ``t ↦ Jᵀ t`` with ``J`` from ``jax.jacfwd``, so reverse
mode (``back_``, ``gradient``, ``jax.grad``) only transposes that product and never goes
through ``f`` backwards. Params that ``f`` reads by itself become inputs of the op (as for
any ``track``-ed function) and get their gradients by ordinary differentiation of ``f``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ._bridge import plain
from ._cell import LeafCell
from ._node import Tracked, apply


def _jacobian_of(f, x):
    """``(y, J)`` with ``J[i, j] = ∂y[j] / ∂x[i]`` over the flattened ``x`` and ``y``."""
    x = jnp.asarray(x)

    def flat(v):
        y = plain(f(v.reshape(x.shape)))
        return jnp.ravel(y), y

    J, y = jax.jacfwd(flat, has_aux=True)(jnp.ravel(x))
    return y, J.T


def _forward_call(f, x):
    """``f(x)`` as a ``custom_jvp`` op; values ``f`` closes over (a param it reads, as a
    tracer during a replay) become explicit inputs, as JAX requires of a custom rule."""
    g, consts = jax.closure_convert(lambda v: plain(f(v)), x)
    return _forward_op(g, x, consts)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _forward_op(g, x, consts):
    return g(x, *consts)


@_forward_op.defjvp
def _forward_rule(g, primals, tangents):
    (x, consts), (t, tc) = primals, tangents
    y, J = _jacobian_of(lambda v: g(v, *consts), x)
    dy = (jnp.ravel(t).astype(J.dtype) @ J).reshape(jnp.shape(y))
    if consts:  # what f reads by itself: one ordinary forward pass
        dy = dy + jax.jvp(lambda c: g(x, *c), (consts,), (tc,))[1]
    return y, dy


def _array(x):
    """A tracked value or a float array (a list or ints as floats, as ``gradient`` takes)."""
    if isinstance(x, Tracked):
        return x
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.result_type(float))


def _reaches_a_leaf(t):
    return t._in is not None and any(
        isinstance(i, LeafCell) or (isinstance(i, Tracked) and (i.is_leaf or _reaches_a_leaf(i)))
        for i in t._in
    )


def _tracked_only_if_needed(out):
    """The op's result, made plain when nothing tracked went in (as ``f`` itself gives)."""
    leaves = jax.tree_util.tree_leaves(out)
    if any(isinstance(t, Tracked) and _reaches_a_leaf(t) for t in leaves):
        return out
    return plain(out)


def forward_jacobian(f, x):
    """forward_jacobian(f, x) -> ``(y, J)``: ``y = f(x)`` and its Jacobian by forward mode.

    As Tracker.jl, ``J`` has shape ``(x.size, y.size)`` with ``J[i, j] = ∂y[j] / ∂x[i]``
    over the flattened ``x`` and ``y`` (the transpose of ``jacobian``'s), so
    ``J @ ȳ.ravel()`` is the gradient for an output sensitivity ``ȳ``. Tracked inputs
    (and params ``f`` reads) give tracked ``y`` and ``J``.

    >>> import jax.numpy as jnp
    >>> y, J = forward_jacobian(lambda x: jnp.stack([x[0] * x[1], x[1]]), jnp.array([2.0, 3.0]))
    >>> J
    Array([[3., 0.],
           [2., 1.]], dtype=float32)
    """
    return _tracked_only_if_needed(apply(_jacobian_of, (f, _array(x)), {}))


def forwarddiff(f, x):
    """forwarddiff(f, x) -> ``f(x)``, differentiated by forward mode (``jax.jacfwd``).

    Usable anywhere a tracked op is: within ``back_``, ``gradient``, ``train_``,
    ``jax.grad``/``jax.jit``; it is how to differentiate an ``f`` that reverse mode
    cannot go through (a ``jax.lax.while_loop``), or one with few inputs and many outputs.

    >>> from fluxjax import gradient
    >>> import jax.numpy as jnp
    >>> gradient(lambda x: forwarddiff(lambda v: v[0] * v[1], x), jnp.array([2.0, 3.0]))
    (Array([3., 2.], dtype=float32),)
    """
    return _tracked_only_if_needed(apply(_forward_call, (f, _array(x)), {}))
