"""Tracked values: the nodes of the recorded graph.

A param (``param(x)``) is a *leaf*: it owns a ``LeafCell`` holding its current value.
Every operation on tracked values makes an *op node* that records the JAX function it
called and its inputs (other op nodes, leaf cells, plain arrays). Values are computed
lazily, on first read, by one compiled replay of the graph (see ``_graph.py``).

``update_`` gives a param a fresh cell, so nodes recorded earlier still see the value
the param had when they were made: reading them later shows what they were.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Tracer = jax.core.Tracer

SWAPS: dict = {}
"""While params are swapped for tracers: id(the cell a param had) -> the cell it reads now."""

KEEP_GRAPH: list = []
"""Non-empty while ``fluxjax.jit`` traces: ops on tracers still record a graph for ``back_``."""

WATCH: list = []
"""While ``fluxjax.jit`` traces: a dict of every param read as a constant, with its state
(cell, grad) before the trace touched it, so an abandoned trace can put it back."""


def watch(owner, value):
    if WATCH and not isinstance(value, Tracer):
        WATCH[-1].setdefault(id(owner), (owner, owner._cell, owner._grad))


class LeafCell:
    """The value a param holds between two updates, and the param that owns it.

    ``update_`` makes a *pending* cell (``value is None``, ``pending = (cell, Δ)``): the
    addition runs inside the next compiled replay that needs it, or on first read.
    """

    __slots__ = ("value", "owner", "aval", "pending")

    def __init__(self, value, owner, pending=None, aval=None):
        self.value = value
        self.owner = owner
        self.pending = pending
        self.aval = (value.shape, value.dtype, False) if aval is None else aval

    def get(self):
        """The concrete value, computing a pending update now."""
        v = self.value
        if WATCH:
            watch(self.owner, v)
        if v is None:
            old, step = self.pending
            v = self.value = (old.get() + step).astype(self.aval[1])
            self.pending = None
        return v


class Tracked:
    """Base of ``TrackedArray`` and ``TrackedReal``: a value that records how it was made."""

    __slots__ = ("_op", "_in", "_value", "_aval", "_cell", "_grad", "_done", "__weakref__")
    __hash__ = object.__hash__  # identity: Params and Grads key on it

    # -- construction ---------------------------------------------------------------
    @classmethod
    def _leaf(cls, value):
        t = object.__new__(cls)
        t._op = t._in = t._grad = None
        t._value = None
        t._done = False
        t._cell = LeafCell(value, t)
        t._aval = t._cell.aval
        return t

    @classmethod
    def _node(cls, op, inputs, aval, value=None):
        t = object.__new__(cls)
        t._op, t._in, t._aval, t._value = op, inputs, aval, value
        t._cell = t._grad = None
        t._done = False
        return t

    # -- reading --------------------------------------------------------------------
    @property
    def is_leaf(self) -> bool:
        """True for a param made by ``param``; False for the result of an operation."""
        return self._cell is not None

    @property
    def data(self):
        """The plain JAX value (computed now if it was recorded lazily)."""
        cell = self._cell
        if cell is not None:
            return cell.get()
        if self._value is None:
            from ._graph import evaluate

            evaluate(self)
        return self._value

    @data.setter
    def data(self, value):
        if self._cell is None:
            raise AttributeError("only a param's data can be set; this is an operation's result")
        cell = self._cell
        like = cell.value if cell.value is not None else cell.get()
        self._cell = LeafCell(_as_float_array(value, like=like), self, aval=cell.aval)

    @property
    def grad(self):
        """The gradient accumulated by ``back_`` (zeros until then)."""
        g = self._grad
        if WATCH and self._cell is not None:
            watch(self, self._cell.value)
        return _zeros(self._aval) if g is None else g

    @grad.setter
    def grad(self, value):
        self._grad = None if value is None else jnp.asarray(value, self._aval[1])

    shape = property(lambda self: self._aval[0], doc="The shape, known without computing.")
    dtype = property(lambda self: self._aval[1], doc="The dtype, known without computing.")
    ndim = property(lambda self: len(self._aval[0]))
    size = property(lambda self: int(np.prod(self._aval[0], dtype=np.int64)))

    def __len__(self):
        if not self._aval[0]:
            raise TypeError("len() of a 0-d tracked value")
        return self._aval[0][0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.data, dtype=dtype)

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def __bool__(self):
        return bool(self.data)

    def item(self):
        return self.data.item()

    def tolist(self):
        return np.asarray(self.data).tolist()

    def __format__(self, spec):
        return format(np.asarray(self.data)[()] if self.ndim == 0 else np.asarray(self.data), spec)

    def __repr__(self):
        if not self.shape:
            return f"{np.asarray(self.data)[()]!s} (tracked)"
        dims = "×".join(str(d) for d in self.shape)
        body = np.array2string(np.asarray(self.data), separator=" ", precision=6)
        return f"Tracked {dims} {self.dtype}:\n{body}"

    __str__ = __repr__

    def _repr_html_(self):
        return "<pre>" + repr(self).replace("&", "&amp;").replace("<", "&lt;") + "</pre>"


class TrackedArray(Tracked):
    """A tracked array (``param(rand(2, 5))`` or any operation on one)."""

    __slots__ = ()


class TrackedReal(Tracked):
    """A tracked 0-d value (``param(2)``, or a loss)."""

    __slots__ = ()


def tracked_type(shape):
    return TrackedReal if shape == () else TrackedArray


_ZEROS: dict = {}


def _zeros(aval):
    key = (aval[0], aval[1])
    z = _ZEROS.get(key)
    if z is None:
        z = _ZEROS[key] = jnp.zeros(aval[0], aval[1])
    return z


def _as_float_array(x, like=None):
    if isinstance(x, Tracked):
        x = x.data
    if (
        like is None
        and isinstance(x, jax.Array)
        and not isinstance(x, Tracer)
        and jnp.issubdtype(x.dtype, jnp.inexact)
        and not x.weak_type
    ):
        return x  # already a definite float array: nothing to convert
    if like is not None and isinstance(x, jax.Array) and x.dtype == like.dtype:
        if x.shape != like.shape:
            raise ValueError(f"new value has shape {x.shape}, the param has shape {like.shape}")
        return x  # already right: no conversion (this runs on every write-back)
    if isinstance(x, Tracer):
        return x if like is None else x.astype(like.dtype)
    a = jnp.asarray(x)
    if a.weak_type:  # from a Python number: give the param a definite dtype
        a = jnp.asarray(x, a.dtype if jnp.issubdtype(a.dtype, jnp.inexact) else float)
    if like is not None:
        if a.shape != like.shape:
            raise ValueError(f"new value has shape {a.shape}, the param has shape {like.shape}")
        return a.astype(like.dtype)
    if not jnp.issubdtype(a.dtype, jnp.inexact):
        a = a.astype(jnp.result_type(float))
    return a


def param(x) -> Tracked:
    """param(x) -> a trainable leaf: ``TrackedReal`` for a number, ``TrackedArray`` otherwise.

    Integers become floats; the gradient starts at zeros.

    >>> W = param([[1, 2], [3, 4]])
    >>> W.shape, W.dtype
    ((2, 2), dtype('float32'))
    >>> param(2)
    2.0 (tracked)
    """
    value = _as_float_array(x)
    return tracked_type(value.shape)._leaf(value)


def data(x):
    """data(x) -> the plain JAX value of a tracked ``x``; ``x`` itself otherwise.

    >>> data(param(3.0)) + 1
    Array(4., dtype=float32)
    """
    return x.data if isinstance(x, Tracked) else x


def grad(x):
    """grad(x) -> the gradient ``back_`` accumulated in ``x``; ``None`` if ``x`` is untracked.

    >>> from fluxjax import back_
    >>> W = param(2.0)
    >>> back_(W * 3)
    >>> grad(W)
    Array(3., dtype=float32)
    """
    return x.grad if isinstance(x, Tracked) else None


def is_tracked(x) -> bool:
    return isinstance(x, Tracked)
