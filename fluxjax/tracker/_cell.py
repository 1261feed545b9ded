"""Leaves and the base of every tracked value: the data a value carries, without operators.

A leaf (``param(x)``, ``state(x)``) owns a ``LeafCell`` holding its current value.
``update_`` and ``leaf.data = v`` give the leaf a fresh cell, so nodes recorded earlier
still see the value the leaf had when they were made. ``Value`` is the base class of
``Tracked``: construction, shape and dtype, ``.grad``, conversions and printing. The
operators, and reading a lazily recorded value, are in ``_node.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._cache import Cache
from ._compat import Tracer
from ._trace import TRACE, note

_WRONG_API = (
    "a fluxjax tracked value: plain jax.numpy cannot see the tracking. Call the same "
    "function from fluxjax.numpy to keep it, or pass data(x) to drop it on purpose"
)


class _TrackedMeta(type):
    """Makes JAX's own "cannot interpret argument" errors name fluxjax.numpy."""

    def __repr__(cls):
        return f"<class 'fluxjax.{cls.__name__}'> (tracked: use fluxjax.numpy, not jax.numpy)"


def watch(owner, value):
    """Note a read of ``owner`` for the open ``watching()`` blocks, if ``value`` is concrete."""
    if TRACE.watches and not isinstance(value, Tracer):
        note(owner)


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
        if TRACE.watches:
            watch(self.owner, v)
        if v is None:
            old, step = self.pending
            v = (old.get() + step).astype(self.aval[1])
            if not isinstance(v, Tracer):  # settled inside a trace: never keep the tracer
                self.value, self.pending = v, None
        return v


class Value(metaclass=_TrackedMeta):
    """Base of ``Tracked``: what a tracked value holds (``_op``/``_in`` for an op node,
    ``_cell`` for a leaf), and everything that needs no operator."""

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
    __array_ufunc__ = None  # NumPy defers to our reflected operators
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
        if TRACE.watches and self._cell is not None:
            note(self)
        self._grad = None if value is None else jnp.asarray(value, self._aval[1])

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


_ZEROS = Cache(256, "zero gradients")


def _zeros(aval):
    key = (aval[0], aval[1])
    z = _ZEROS.get(key)
    if z is None:
        with jax.ensure_compile_time_eval():  # a concrete array, even inside a trace
            z = _ZEROS[key] = jnp.zeros(aval[0], aval[1])
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
    if isinstance(x, jax.Array) and x.shape == aval[0] and x.dtype == aval[1]:
        return x  # already right: no conversion (this runs on every write-back)
    a = _numeric(x, what)
    if a.shape != aval[0]:
        raise ValueError(f"{what} has shape {a.shape}, the leaf has shape {aval[0]}")
    return a.astype(aval[1]) if isinstance(a, Tracer) else jnp.asarray(a, aval[1])


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
