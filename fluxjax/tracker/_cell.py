"""The records under every tracked value: ``Aval``, ``LeafCell`` and ``Value``.

A leaf (``param(x)``, ``state(x)``) owns a ``LeafCell`` holding its current value.
``update_`` and ``leaf.data = v`` give the leaf a fresh cell, so nodes recorded earlier
still see the value the leaf had when they were made. ``Value`` is the record behind
``Tracked``: a recorded op (its ``Op``, inputs and ``Aval``) or a leaf (its cell and
``.grad``), with everything that needs no operator (shape, ``.grad``, conversions,
printing). ``Tracked`` (``_node.py``) adds the operators, which record ops, and reading
a lazily recorded value, which replays the graph: both need the modules above this one.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._cache import Cache
from ._compat import Tracer
from ._trace import TRACE, note, note_read


class Aval(NamedTuple):
    """The abstract value of an array: what is known without computing it."""

    shape: tuple
    dtype: object
    weak: bool = False  # a weakly typed Python number (JAX's ``weak_type``)


def watch(owner, value):
    """Note a read of ``owner`` for the open ``watching()`` blocks, if ``value`` is concrete."""
    if TRACE.watches and not isinstance(value, Tracer):
        note_read(owner)


class LeafCell:
    """The value a leaf holds between two writes, and the leaf that owns it.

    ``update_`` makes a *pending* cell (``value is None``): its value is ``old``'s plus
    ``step``, added inside the next compiled replay that needs it, or on first read.
    ``sig`` is what a compiled replay is keyed on: whether it is a state leaf, and its aval.
    """

    __slots__ = ("value", "owner", "aval", "old", "step", "sig")

    def __init__(self, value, owner, aval=None, old=None, step=None):
        self.value, self.owner, self.old, self.step = value, owner, old, step
        self.aval = Aval(value.shape, value.dtype) if aval is None else aval
        self.sig = (owner._state, self.aval)

    def get(self):
        """The concrete value, computing a pending update now."""
        v = self.value
        if TRACE.watches:
            watch(self.owner, v)
        if v is None:
            v = (self.old.get() + self.step).astype(self.aval.dtype)
            if not isinstance(v, Tracer):  # settled inside a trace: never keep the tracer
                self.value, self.old, self.step = v, None, None
        return v


class Value:
    """The record behind ``Tracked``. An op node holds ``_op`` (an ``Op``: function and
    static arguments), ``_in`` (its inputs: nodes, leaf cells, arrays), ``_aval`` and, once
    computed, ``_value``; ``_done`` once ``back_`` freed it. A leaf holds ``_cell``,
    ``_grad`` and ``_state`` (True for a ``state`` leaf)."""

    __slots__ = (
        "_op",
        "_in",
        "_value",
        "_aval",
        "_cell",
        "_grad",
        "_done",
        "_state",
        "__weakref__",
    )
    __hash__ = object.__hash__  # identity: Params and Grads key on it

    # -- construction ---------------------------------------------------------------
    @classmethod
    def _leaf(cls, value, state=False):
        t = object.__new__(cls)
        t._op = t._in = t._grad = None
        t._value = None
        t._done = False
        t._state = state
        t._cell = LeafCell(value, t)
        t._aval = t._cell.aval
        return t

    @classmethod
    def _node(cls, op, inputs, aval, value=None):
        t = object.__new__(cls)
        t._op, t._in, t._aval, t._value = op, inputs, aval, value
        t._cell = t._grad = None
        t._done = t._state = False
        return t

    # -- reading --------------------------------------------------------------------
    @property
    def is_leaf(self) -> bool:
        """True for a leaf made by ``param`` or ``state``; False for an operation's result."""
        return self._cell is not None

    @property
    def trainable(self) -> bool:
        """True for a param (``param``); False for a ``state`` leaf and an operation's result."""
        return self._cell is not None and not self._state

    @property
    def grad(self):
        """The gradient accumulated by ``back_`` (zeros until then; None for a ``state``)."""
        if self._state:
            return None
        g = self._grad
        if TRACE.watches and self._cell is not None:
            watch(self, self._cell.value)
        return _zeros(self._aval) if g is None else g

    @grad.setter
    def grad(self, value):
        if self._state and value is not None:
            raise AttributeError("a state leaf has no gradient (it is not trainable)")
        if TRACE.writes and self._cell is not None:
            note(self)
        self._grad = None if value is None else jnp.asarray(value, self._aval.dtype)

    # -- in place: a leaf's value changes, the leaf stays the same object ------------
    def _inplace(self, f, other):
        if self._cell is None:
            return NotImplemented  # an operation's result: Python makes a new value
        self.data = f(self.data, other.data if isinstance(other, Value) else other)
        return self

    def __iadd__(self, other):
        return self._inplace(jnp.add, other)

    def __isub__(self, other):
        return self._inplace(jnp.subtract, other)

    def __imul__(self, other):
        return self._inplace(jnp.multiply, other)

    def __itruediv__(self, other):
        return self._inplace(jnp.true_divide, other)

    shape = property(lambda self: self._aval.shape, doc="The shape, known without computing.")
    dtype = property(lambda self: self._aval.dtype, doc="The dtype, known without computing.")
    ndim = property(lambda self: len(self._aval.shape))
    size = property(lambda self: int(np.prod(self._aval.shape, dtype=np.int64)))

    def __len__(self):
        if not self._aval.shape:
            raise TypeError("len() of a 0-d tracked value")
        first, *_ = self._aval.shape
        return first

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


_ZEROS = Cache(256, "zero gradients")


def _zeros(aval):
    key = (aval.shape, aval.dtype)
    z = _ZEROS.get(key)
    if z is None:
        with jax.ensure_compile_time_eval():  # a concrete array, even inside a trace
            z = _ZEROS[key] = jnp.zeros(aval.shape, aval.dtype)
    return z


def _numeric(x, what):
    """``x`` as a JAX or NumPy array of real numbers, else a TypeError naming ``what``."""
    if isinstance(x, Value):
        x = x.data
    a = x if isinstance(x, (jax.Array, np.ndarray, np.generic)) else np.asarray(x)
    if np.dtype(a.dtype).kind not in "biuf":
        raise TypeError(
            f"{what} must hold real numbers, got dtype {a.dtype}; convert it first "
            "(e.g. np.asarray(x, float))"
        )
    return a


def _coerce(x, aval, what):
    """``x`` as the value of a leaf of ``aval``: the leaf's shape, cast to its dtype."""
    if isinstance(x, jax.Array) and x.shape == aval.shape and x.dtype == aval.dtype:
        return x  # already right: no conversion (this runs on every write-back)
    a = _numeric(x, what)
    if a.shape != aval.shape:
        raise ValueError(f"{what} has shape {a.shape}, the leaf has shape {aval.shape}")
    return a.astype(aval.dtype) if isinstance(a, Tracer) else jnp.asarray(a, aval.dtype)


def _as_float_array(x):
    """``x`` as a new param's value: a float array (ints and bools become floats)."""
    if isinstance(x, Value):
        x = x.data
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.inexact) and not x.weak_type:
        return x  # already a definite float array (or a tracer of one): nothing to convert
    if isinstance(x, Tracer):
        return x
    a = jnp.asarray(x)
    if a.weak_type:  # from a Python number: give the param a definite dtype
        a = jnp.asarray(x, a.dtype if jnp.issubdtype(a.dtype, jnp.inexact) else float)
    if not jnp.issubdtype(a.dtype, jnp.inexact):
        a = a.astype(jnp.result_type(float))
    return a
