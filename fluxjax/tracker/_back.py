"""``back_`` and ``update_``: Flux's imperative ``back!`` and ``update!``."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ._cell import LeafCell, _as_float_array, _numeric
from ._compat import Tracer
from ._graph import plan
from ._node import Tracked
from ._trace import TRACE, check, note


def back_(y, Δ=None, *, once=True):
    """back_(y, Δ=None, *, once=True): backpropagate from ``y`` into every param's ``.grad``.

    A scalar ``y`` uses ``Δ = 1``; otherwise pass ``Δ`` of ``y``'s shape. ``once=True``
    frees the graph, as Flux does: a second ``back_`` through it raises. A NaN or infinite
    loss raises ``FloatingPointError`` before any gradient is touched.

    >>> from fluxjax import param, grad
    >>> W = param([1.0, 2.0])
    >>> back_((W * W).sum())
    >>> grad(W)
    Array([2., 4.], dtype=float32)
    """
    dy = _seed(y, Δ)
    if y._cell is not None:  # backpropagating into a leaf itself
        return _into_leaf(y._cell.owner, 1 if Δ is None else dy)
    tape = plan(y)
    if any(n._done for n in tape.nodes):
        raise RuntimeError(
            "back_ was already called through this graph, which freed it; "
            "recompute the loss, or pass once=False to the first back_ to keep the graph"
        )
    value, cells, grads = tape.backward(dy)
    concrete = not isinstance(value, Tracer)
    if Δ is None and concrete and not np.isfinite(np.asarray(value)):
        raise FloatingPointError(f"loss is {float(value)}: gradients were not accumulated")
    if Δ is None and not concrete:  # inside fluxjax.jit: checked after the call
        check(jnp.isfinite(value), "back_: the loss is not finite; nothing was changed")
    if concrete and y._value is None:
        y._value = value
    added, noting = set(), TRACE.writes  # a param read through several cells adds them up
    for cell, g in zip(cells, grads):
        p = cell.owner
        if noting:
            note(p)
        p._grad = p._grad + g if id(p) in added else g
        added.add(id(p))
    if once:
        for n in tape.nodes:
            n._done = True


def _seed(y, Δ):
    """``Δ`` as a JAX array (None for a scalar ``y``), after checking ``y`` and ``Δ``."""
    if not isinstance(y, Tracked):
        raise TypeError(f"back_ needs a tracked value (made from a param), got {type(y).__name__}")
    if Δ is None and y._aval.shape != ():
        raise ValueError(
            f"back_ of a non-scalar value of shape {y.shape} needs a sensitivity Δ; "
            "reduce it to a scalar loss (e.g. .sum()) or pass Δ"
        )
    if Δ is None:
        return None
    if jnp.shape(Δ) != y.shape:
        raise ValueError(f"Δ has shape {jnp.shape(Δ)}, but the value has shape {y.shape}")
    return jnp.asarray(Δ.data if isinstance(Δ, Tracked) else Δ)


def _into_leaf(owner, dy):
    """``back_`` of a leaf itself: ``dy`` is added to its ``.grad``."""
    if not owner.trainable:
        raise TypeError("back_ of a state leaf: it is not trainable and has no gradient")
    if TRACE.writes:
        note(owner)
    owner._grad = owner.grad + (dy if isinstance(dy, int) else _as_float_array(dy))


def _broadcasts(shape, to):
    try:
        return np.broadcast_shapes(shape, to) == to
    except ValueError:
        return False


def update_(x, Δ):
    """update_(x, Δ): ``x.data += data(Δ)``, then reset ``x.grad`` to zeros; returns ``x``.

    >>> from fluxjax import param
    >>> W = param([1.0, 2.0])
    >>> update_(W, [0.5, 0.5]).data
    Array([1.5, 2.5], dtype=float32)
    """
    if not isinstance(x, Tracked) or x._cell is None:
        raise TypeError(f"update_ needs a param (made by param), got {type(x).__name__}")
    step = Δ.data if isinstance(Δ, Tracked) else Δ
    cell = x._cell
    if x._state:
        raise TypeError("update_ needs a param; a state leaf is written with s.data = value")
    step = _numeric(step, "update_'s Δ")
    if isinstance(step, np.ndarray | np.generic):
        step = jnp.asarray(step)
    if step.shape != cell.aval.shape and not _broadcasts(step.shape, cell.aval.shape):
        raise ValueError(
            f"update_ of a param of shape {cell.aval.shape} by Δ of shape {step.shape}"
        )
    if cell.value is None:  # two updates in a row: settle the first, keep chains short
        cell.get()
    if TRACE.writes:
        note(x)
    if isinstance(step, Tracer) or isinstance(cell.value, Tracer):
        x._cell = LeafCell((cell.get() + step).astype(cell.aval.dtype), x)
    else:  # deferred: the next compiled replay (or the first read) adds it
        x._cell = LeafCell(None, x, cell.aval, old=cell, step=step)
    x._grad = None
    return x
