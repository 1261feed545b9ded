"""Tracked values and how an operation on them is recorded.

``Tracked`` adds the operators to ``Value`` (``_cell.py``): every operator and array
method records one op node through ``apply``, which holds the JAX function, a hashable
spec of its static arguments, and its inputs (other nodes, leaf cells, plain arrays).
Recording costs a few microseconds: the output's shape and dtype come from
``jax.eval_shape``, cached per op and input signature, so a shape error is raised at the
line that caused it, while the value is computed later by one compiled replay of the
graph (``_graph.py``), on first read or in ``back_``.

When an input is a JAX tracer (inside ``gradient``, ``train_``, ``jax.jit``...), or
while leaves are swapped for tracers, the op runs at once. Its result is then a plain
JAX value, as any JAX code would give, except inside ``fluxjax.jit``, where it stays
tracked so that ``back_`` can run in the compiled step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import _ops
from ._cell import LeafCell, Value, _coerce
from ._compat import Tracer
from ._graph import evaluate, live_value, value
from ._spec import (
    _MULTI,
    _NOKW,
    _NONFLOAT,
    _SINGLE,
    _SLOT,
    Op,
    _closure_key,
    _flat_spec,
    _spec,
    call,
    out_aval,
    with_reads,
)
from ._trace import TRACE, note

_NO: dict = {}  # no keyword arguments (never written)
_new = tuple.__new__  # makes a NamedTuple from a tuple without its Python-level __new__


def _op(f):
    return lambda self, *args, **kwargs: apply(f, (self, *args), kwargs)


class Tracked(Value):
    """A value that records how it was made: ``TrackedArray`` or ``TrackedReal``."""

    __slots__ = ()

    @property
    def data(self):
        """The plain JAX value (computed now if it was recorded lazily)."""
        cell = self._cell
        if cell is not None:
            return cell.get()
        if self._value is None:
            return evaluate(self)
        return self._value

    @data.setter
    def data(self, value):
        cell = self._cell
        if cell is None:
            raise AttributeError("only a leaf's data can be set; this is an operation's result")
        new = _coerce(value, cell.aval, "the new data")
        if isinstance(new, Tracer) and not TRACE.watches and not TRACE.swaps:
            raise RuntimeError(
                "a JAX tracer was assigned to a leaf outside fluxjax's own transformations "
                "(inside jax.jit/jax.grad?): the leaf would keep it after the trace. Use "
                "fluxjax.jit, gradient or train_, which thread leaves through the trace"
            )
        if TRACE.writes:
            note(self)
        self._cell = LeafCell(new, self, aval=cell.aval)

    # -- operators: each records one op (comparisons give plain boolean arrays) -------
    def __add__(self, other):
        return apply(jnp.add, (self, other), _NO)

    def __radd__(self, other):
        return apply(jnp.add, (other, self), _NO)

    def __sub__(self, other):
        return apply(jnp.subtract, (self, other), _NO)

    def __rsub__(self, other):
        return apply(jnp.subtract, (other, self), _NO)

    def __mul__(self, other):
        return apply(jnp.multiply, (self, other), _NO)

    def __rmul__(self, other):
        return apply(jnp.multiply, (other, self), _NO)

    def __truediv__(self, other):
        return apply(jnp.true_divide, (self, other), _NO)

    def __rtruediv__(self, other):
        return apply(jnp.true_divide, (other, self), _NO)

    def __floordiv__(self, other):
        return apply(jnp.floor_divide, (self, other), _NO)

    def __rfloordiv__(self, other):
        return apply(jnp.floor_divide, (other, self), _NO)

    def __mod__(self, other):
        return apply(jnp.mod, (self, other), _NO)

    def __rmod__(self, other):
        return apply(jnp.mod, (other, self), _NO)

    def __pow__(self, other):
        return apply(jnp.power, (self, other), _NO)

    def __rpow__(self, other):
        return apply(jnp.power, (other, self), _NO)

    def __matmul__(self, other):
        return apply(jnp.matmul, (self, other), _NO)

    def __rmatmul__(self, other):
        return apply(jnp.matmul, (other, self), _NO)

    def __neg__(self):
        return apply(jnp.negative, (self,), _NO)

    def __pos__(self):
        return apply(jnp.positive, (self,), _NO)

    def __abs__(self):
        return apply(jnp.abs, (self,), _NO)

    def __lt__(self, other):
        return jnp.less(self.data, other.data if isinstance(other, Value) else other)

    def __le__(self, other):
        return jnp.less_equal(self.data, other.data if isinstance(other, Value) else other)

    def __gt__(self, other):
        return jnp.greater(self.data, other.data if isinstance(other, Value) else other)

    def __ge__(self, other):
        return jnp.greater_equal(self.data, other.data if isinstance(other, Value) else other)

    def __eq__(self, other):
        return jnp.equal(self.data, other.data if isinstance(other, Value) else other)

    def __ne__(self, other):
        return jnp.not_equal(self.data, other.data if isinstance(other, Value) else other)

    __hash__ = Value.__hash__  # defining __eq__ would otherwise remove it

    # -- array methods ------------------------------------------------------------------
    sum, mean, max, min, prod = map(_op, (jnp.sum, jnp.mean, jnp.max, jnp.min, jnp.prod))
    std, var, cumsum = map(_op, (jnp.std, jnp.var, jnp.cumsum))
    argmax, argmin, squeeze, ravel = map(_op, (jnp.argmax, jnp.argmin, jnp.squeeze, jnp.ravel))
    clip, dot, conj, round = map(_op, (jnp.clip, jnp.dot, jnp.conj, jnp.round))
    exp, log, sqrt = map(_op, (jnp.exp, jnp.log, jnp.sqrt))

    def __getitem__(self, index):
        return apply(_ops.getitem, (self, _ops.static_masks(index)), _NO)

    def astype(self, dtype):
        return apply(_ops.astype, (self, dtype), _NO)

    def reshape(self, *shape):
        return apply(_ops.reshape, (self, _ops.shape_arg(shape)), _NO)

    def flatten(self):
        return apply(_ops.reshape, (self, (-1,)), _NO)

    def transpose(self, *axes):
        return apply(jnp.transpose, (self, _ops.shape_arg(axes)), _NO)

    T = property(lambda self: self.transpose())


class TrackedArray(Tracked):
    """A tracked array (``param(rand(2, 5))`` or any operation on one)."""

    __slots__ = ()


class TrackedReal(Tracked):
    """A tracked 0-d value (``param(2)``, or a loss)."""

    __slots__ = ()


def tracked_type(shape):
    return TrackedReal if shape == () else TrackedArray


def apply(fn, args, kwargs, remat=False):
    """Record ``fn(*args, **kwargs)`` as a node; returns tracked output(s).

    ``remat=True`` runs ``fn`` under ``jax.checkpoint`` (recomputed in the backward pass).
    """
    dyn: list = []
    cells = getattr(fn, "__closure__", None)
    kspec = _spec(kwargs, dyn) if kwargs else _NOKW
    closure = _closure_key(cells) if cells else ()
    op = _new(Op, (fn, _flat_spec(args, dyn), kspec, closure))  # Op(...), per op: quicker
    aval, kind, reads = out_aval(op, dyn)
    if TRACE.swaps or _any_tracer(dyn):
        if remat:  # a fresh wrapper: JAX caches a checkpoint's trace, closed-over values too
            op = op._replace(fn=jax.checkpoint(fn))
        return _eager(op, tuple(dyn), aval, kind)
    if reads or remat:
        op, dyn = with_reads(op, dyn, reads, remat)
    if kind == _SINGLE:
        return (TrackedReal if aval.shape == () else TrackedArray)._node(op, tuple(dyn), aval)
    if kind == _MULTI:
        return _multi(op, tuple(dyn), aval, None)
    return call(op, [value(x) for x in dyn])


def _any_tracer(dyn):
    for x in dyn:
        v = x.value if type(x) is LeafCell else x._value if isinstance(x, Tracked) else x
        if isinstance(v, Tracer):
            return True
    return False


def _eager(op, dyn, aval, kind):
    out = call(op, [live_value(x) for x in dyn])
    if not TRACE.keep_graph or kind == _NONFLOAT:  # plain JAX, unless fluxjax.jit needs a graph
        return out
    if kind == _MULTI:
        return _multi(op, dyn, aval, out)
    return (TrackedReal if aval.shape == () else TrackedArray)._node(op, dyn, aval, out)


def _leaf(tree, i):
    return jax.tree_util.tree_leaves(tree)[i]


def _multi(op, dyn, aval, computed):
    """An op with several outputs: one hidden node, one projection node per output."""
    treedef, avals = aval
    whole = Tracked._node(op, dyn, aval, computed)
    values = [None] * len(avals) if computed is None else jax.tree_util.tree_leaves(computed)
    outs = []
    for i, (a, v) in enumerate(zip(avals, values)):
        if not np.issubdtype(a.dtype, np.inexact):
            outs.append(_leaf(whole.data, i) if v is None else v)
            continue
        proj = Op(_leaf, (tuple, (_SLOT, (int, i))), _NOKW)
        outs.append(tracked_type(a.shape)._node(proj, (whole,), a, v))
    return jax.tree_util.tree_unflatten(treedef, outs)
