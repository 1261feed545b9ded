"""``back_`` and ``update_``: Flux's imperative ``back!`` and ``update!``."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ._cell import LeafCell, _as_float_array, _numeric
from ._compat import Tracer
from ._graph import backward_fn, cached, ext_sig, plan
from ._node import Tracked
from ._spec import value
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
    if not isinstance(y, Tracked):
        raise TypeError(f"back_ needs a tracked value (made from a param), got {type(y).__name__}")
    if Δ is None and y.shape != ():
        raise ValueError(
            f"back_ of a non-scalar value of shape {y.shape} needs a sensitivity Δ; "
            "reduce it to a scalar loss (e.g. .sum()) or pass Δ"
        )
    if Δ is not None and jnp.shape(Δ) != y.shape:
        raise ValueError(f"Δ has shape {jnp.shape(Δ)}, but the value has shape {y.shape}")
    if y._cell is not None:  # backpropagating into a leaf itself
        owner = y._cell.owner
        if not owner.trainable:
            raise TypeError("back_ of a state leaf: it is not trainable and has no gradient")
        if TRACE.watches:
            note(owner)
        owner._grad = owner.grad + (1 if Δ is None else _as_float_array(Δ))
        return None
    nodes, entries, ext = plan(y, full=True)
    if any(n._done for n in nodes):
        raise RuntimeError(
            "back_ was already called through this graph, which freed it; "
            "recompute the loss, or pass once=False to the first back_ to keep the graph"
        )
    y_value, cells, grads = _run_backward(entries, ext, Δ)
    if Δ is None and not isinstance(y_value, Tracer) and not np.isfinite(np.asarray(y_value)):
        raise FloatingPointError(f"loss is {float(y_value)}: gradients were not accumulated")
    if Δ is None and isinstance(y_value, Tracer):  # inside fluxjax.jit: checked after the call
        check(jnp.isfinite(y_value), "back_: the loss is not finite; nothing was changed")
    if y._value is None and not isinstance(y_value, Tracer):
        y._value = y_value
    seen = set()
    watched = TRACE.watches
    for cell, g in zip(cells, grads):
        owner = cell.owner
        if watched:
            note(owner)
        owner._grad = g if id(owner) not in seen else owner._grad + g
        seen.add(id(owner))
    if once:
        for n in nodes:
            n._done = True
    return None


def pure_backward(y, wanted, Δ=None):
    """``(y's value, [(param, gradient)])`` for the params in ``wanted`` (a dict
    id -> param) reached from the recorded ``y``: one cached compiled replay, like
    ``back_``, but no ``.grad`` changes and nothing is freed."""
    nodes, entries, ext = plan(y, full=True)
    y_value, cells, grads = _run_backward(entries, ext, Δ, wanted)
    return y_value, [(c.owner, g) for c, g in zip(cells, grads)]


def _run_backward(entries, ext, Δ, wanted=None):
    kinds, cells, consts = [], [], []
    for x in ext:  # params' cells are differentiated; state cells and the rest are constants
        k = type(x) is LeafCell and not x.owner._state
        if k and wanted is not None:
            k = id(x.owner) in wanted
        kinds.append(k)
        if k:
            cells.append(x)
        else:
            consts.append(value(x))
    kinds = tuple(kinds)
    owners = set()
    acc = []
    for c in cells:  # add to the .grad a param holds (once per param), unless pure
        first = id(c.owner) not in owners
        owners.add(id(c.owner))
        acc.append(first and wanted is None and c.owner._grad is not None)
    acc = tuple(acc)
    olds = [c.owner._grad for c, a in zip(cells, acc) if a]
    seeded = Δ is not None
    key = ("bwd", tuple(entries), tuple(ext_sig(x) for x in ext), kinds, acc, seeded)
    dy = jnp.asarray(Δ.data if isinstance(Δ, Tracked) else Δ) if seeded else None
    pend = tuple(_pending_sig(c) for c in cells)
    ins = [(c.pending[0].value, c.pending[1]) if p else c.get() for c, p in zip(cells, pend)]
    key = key + (pend,) if any(pend) else key
    fn = cached(key, lambda: backward_fn(entries, kinds, acc, seeded, pend))
    y, grads, news = fn(ins, consts, olds, dy)
    for c, v in zip((c for c, p in zip(cells, pend) if p), news):
        if not isinstance(v, Tracer):  # inside a trace the cell keeps its pending form
            c.value, c.pending = v, None
    return y, cells, grads


def _broadcasts(shape, to):
    try:
        return np.broadcast_shapes(shape, to) == to
    except ValueError:
        return False


def _pending_sig(c):
    """``(shape, dtype)`` of a pending update whose old value is known, else False."""
    if c.value is None and c.pending[0].value is not None:
        step = c.pending[1]
        return (step.shape, step.dtype, getattr(step, "weak_type", False))
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
    if step.shape != cell.aval[0] and not _broadcasts(step.shape, cell.aval[0]):
        raise ValueError(f"update_ of a param of shape {cell.aval[0]} by Δ of shape {step.shape}")
    if cell.value is None:  # two updates in a row: settle the first, keep chains short
        cell.get()
    if TRACE.watches:
        note(x)
    if isinstance(step, Tracer) or isinstance(cell.value, Tracer):
        x._cell = LeafCell((cell.get() + step).astype(cell.aval[1]), x)
    else:  # deferred: the next compiled replay (or the first read) adds it
        x._cell = LeafCell(None, x, (cell, step), cell.aval)
    x._grad = None
    return x
