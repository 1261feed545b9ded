"""Functional derivatives: ``gradient``, ``forward``, ``jacobian``, ``hessian``, ``gradcheck``.

Each runs the user's function under a JAX transformation. Tracked values whose data is a
JAX tracer compute at once, so the function's tracked operations flow through
``jax.grad``; nesting, ``jax.jit`` and ``jax.vmap`` compose.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from . import _trace
from ._bridge import Pure, as_input, scalar_of
from ._cell import LeafCell
from ._graph import plan
from ._lift import track
from ._models import split_states, stateful_vjp
from ._node import Tracked, apply
from ._params import Grads, Params
from ._trace import TRACE, restore, watching


def swapped(ps, values):
    """Inside the block each param ``ps[i]`` reads ``values[i]``; restored afterwards
    (values and ``.grad``), also on error."""
    return _trace.swapped(ps, values, lambda v, p, old: LeafCell(v, p))


def _inputs(xs):
    return jax.tree_util.tree_map(as_input, xs, is_leaf=lambda x: isinstance(x, Tracked))


def gradient(f, *xs):
    """gradient(f, *xs) -> one gradient per argument; gradient(f, ps::Params) -> Grads.

    Pure: no ``.grad`` changes. Results are differentiable again, so derivatives nest.
    A model's ``state`` leaves are not differentiated: ``f`` uses them as eager code does,
    its writes land once after success, and their places in the result hold None.

    >>> f = lambda x: 3 * x**2 + 2 * x + 1
    >>> df = lambda x: gradient(f, x)[0]
    >>> d2f = lambda x: gradient(df, x)[0]
    >>> float(df(2)), float(d2f(2))
    (14.0, 6.0)
    """
    match xs:
        case (Params() as params,):
            ps = list(params)
            recorded = _recorded(f, ps)
            if recorded is None:
                return Grads(zip(ps, _pure_grad(f, (), ps, [p.data for p in ps], argnums=0)))
            y, seen = recorded
            try:
                if y.shape != ():  # known without computing y: the replay computes it once
                    raise ValueError(f"gradient needs f to return a scalar, got shape {y.shape}")
                return Grads(zip(ps, _by_param(ps, y)))
            except BaseException:
                restore(seen)
                raise
    if not xs:
        raise TypeError("gradient(f, *xs) needs arguments, or a Params for a zero-argument f")
    split = split_states(xs)
    if split is not None:  # a model holding state leaves
        y, back = stateful_vjp(f, split, scalar_of)
        return back(jnp.ones((), y.dtype))
    vals = _inputs(xs)
    return tuple(_pure_grad(f, vals, (), (), argnums=tuple(range(1, len(vals) + 1))))


def _recorded(f, ps):
    """``(y, touched)``: ``y = f()`` recorded as a graph of tracked ops, for one cached
    compiled replay (as ``back_`` does), and the leaves ``f`` touched, to put back if the
    replay fails. None, with those leaves put back, when ``y`` is not a recorded graph
    (inside a transformation, or a value that reads no param): then ``jax.grad`` runs ``f``."""
    if TRACE.swaps or not ps:
        return None
    with watching() as seen:
        try:
            y = f()
        except BaseException:
            restore(seen)
            raise
    if isinstance(y, Tracked) and y._cell is None:
        return y, seen
    restore(seen)
    return None


def _by_param(ps, y, dy=None):
    """One gradient of the recorded ``y`` per param of ``ps``, from one cached compiled
    replay (as ``back_`` runs, but no ``.grad`` changes and nothing is freed): a param's
    cells summed, zeros where ``y`` does not reach it."""
    _, cells, grads = plan(y).backward(dy, wanted={id(p): p for p in ps})
    out = {}
    for c, g in zip(cells, grads):
        k = id(c.owner)
        out[k] = out[k] + g if k in out else g
    return [out[id(p)] if id(p) in out else jnp.zeros(p.shape, p.dtype) for p in ps]


def _pure_grad(f, args, leaves, values, argnums):
    """``jax.grad`` through one bridge transaction (``Pure``): differentiates w.r.t.
    ``values`` (argnums 0) or ``args`` (argnums 1..); what ``f`` assigned to leaves is
    written back after success."""
    pure = Pure(f, leaves)

    def g(vals, *a):
        out, effects = pure(vals, *a)
        return scalar_of(out), effects

    gs, effects = jax.grad(g, argnums=argnums, has_aux=True)(list(values), *args)
    pure.commit(effects)
    return gs


def forward(f, *xs):
    """forward(f, *xs) -> (y, back): ``back(Δ)`` gives one gradient per argument (or Grads).

    State leaves are threaded as in ``gradient``, written back when ``forward`` returns.

    >>> y, back = forward(lambda a, b: a * b, 2.0, 3.0)
    >>> float(y), [float(g) for g in back(1.0)]
    (6.0, [3.0, 2.0])
    """
    match xs:
        case (Params() as params,):
            ps = list(params)
            recorded = _recorded(f, ps)
            if recorded is not None:
                y, _ = recorded
                return y.data, lambda Δ: Grads(zip(ps, _by_param(ps, y, _like(y, Δ))))
            y, back = _pure_vjp(f, (), ps, [p.data for p in ps])
            return y, lambda Δ: Grads(zip(ps, back(Δ)))
    split = split_states(xs)
    if split is not None:
        return stateful_vjp(f, split, as_input)
    return _pure_vjp(f, _inputs(xs), (), ())


def _like(y, Δ):
    return jnp.broadcast_to(jnp.asarray(Δ, y.dtype), y.shape)


def _pure_vjp(f, args, leaves, values):
    """``(y, back)``: ``jax.vjp`` through one bridge transaction (``Pure``); ``back(Δ)``
    gives the gradients of the ``leaves`` if there are any, else of the ``args``.
    Assigned leaves are written back when it returns."""
    pure = Pure(f, leaves)

    def g(vals, *a):
        out, effects = pure(vals, *a)
        return as_input(out), effects

    y, pull, effects = jax.vjp(g, list(values), *args, has_aux=True)
    pure.commit(effects)

    def back(Δ):
        leaf_grads, *arg_grads = pull(jnp.asarray(Δ, y.dtype))
        return leaf_grads if leaves else tuple(arg_grads)

    return y, back


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _hooked(f, x):
    """``x``; ``f`` applied to its gradient. ``f`` is a static argument of the op: one op
    for every ``f``, and the caches hold ``f`` weakly (``_spec.py::weak_op``)."""
    return x


_hooked.defvjp(lambda f, x: (x, None), lambda f, _, g: (f(g),))


def hook(f, x):
    """hook(f, x) -> ``x`` going forward; ``f`` applied to the gradient flowing back.

    >>> from fluxjax import param, back_, grad
    >>> W = param(1.0)
    >>> back_(hook(lambda g: -g, W * 2))
    >>> grad(W)
    Array(-2., dtype=float32)
    """
    return track(_hooked)(f, x)


def checkpoint(f, *xs):
    """checkpoint(f, *xs) -> ``f(*xs)``, recomputed during the backward pass instead of stored.

    Gradients reach every param ``f`` reads: its tracked arguments, and the params it
    reads by itself (a closure, a model's fields: ``checkpoint(model, x)``).

    >>> import jax.numpy as jnp
    >>> from fluxjax import param, back_, grad
    >>> x = param(2.0)
    >>> back_(checkpoint(jnp.sin, x))
    >>> bool(jnp.isclose(grad(x), jnp.cos(2.0)))
    True
    """
    y = apply(f, xs, {}, remat=True)
    if isinstance(y, Tracked) and y._in is not None and not _reaches_a_leaf(y):
        return y.data  # nothing tracked went in: a plain value, as f itself gives
    return y


def _reaches_a_leaf(y):
    return any(isinstance(x, (LeafCell, Tracked)) for x in y._in)
