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

from ._trace import TRACE, note

Tracer = jax.core.Tracer

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


class Tracked(metaclass=_TrackedMeta):
    """Base of ``TrackedArray`` and ``TrackedReal``: a value that records how it was made."""

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
    def data(self):
        """The plain JAX value (computed now if it was recorded lazily)."""
        cell = self._cell
        if cell is not None:
            return cell.get()
        if self._value is None:
            from ._graph import evaluate

            return evaluate(self)
        return self._value

    @data.setter
    def data(self, value):
        cell = self._cell
        if cell is None:
            raise AttributeError("only a leaf's data can be set; this is an operation's result")
        new = _coerce(value, cell.aval, "the new data")
        if TRACE.watches:
            note(self)
        elif isinstance(new, Tracer) and not TRACE.swaps:
            raise RuntimeError(
                "a JAX tracer was assigned to a leaf outside fluxjax's own transformations "
                "(inside jax.jit/jax.grad?): the leaf would keep it after the trace. Use "
                "fluxjax.jit, gradient or train_, which thread leaves through the trace"
            )
        self._cell = LeafCell(new, self, aval=cell.aval)

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
        self.data = f(self.data, other.data if isinstance(other, Tracked) else other)
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
        with jax.ensure_compile_time_eval():  # a concrete array, even inside a trace
            z = _ZEROS[key] = jnp.zeros(aval[0], aval[1])
    return z


def _numeric(x, what):
    """``x`` as a JAX or NumPy array of real numbers, else a TypeError naming ``what``."""
    if isinstance(x, Tracked):
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
    if isinstance(x, Tracked):
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


def state(x) -> Tracked:
    """state(x) -> a non-trainable leaf holding ``x`` (running statistics, a PRNG key, a count).

    It keeps ``x``'s dtype (float, int, uint32...). ``s.data`` reads it and ``s.data = v``
    writes it (same shape, cast to its dtype). ``back_`` treats it as a constant, it has
    no ``.grad``, and ``Params`` refuses it; every gradient and compiled path (``gradient``,
    ``train_``, ``fluxjax.jit``) reads it as an input and writes back what the code
    assigned to it, after the step succeeded.

    >>> n = state(0)
    >>> n.data = n.data + 1
    >>> n.data, n.trainable, n.is_leaf
    (Array(1, dtype=int32), False, True)
    """
    if isinstance(x, Tracked):
        x = x.data
    value = _numeric(x, "a state's value")
    value = jnp.asarray(value, jnp.asarray(value).dtype)  # a definite dtype, never weak
    return tracked_type(value.shape)._leaf(value, state=True)


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


def _register_with_jax():
    """Plain JAX functions given a tracked value raise a TypeError naming fluxjax.numpy."""
    try:
        from jax._src import core as _core

        def reject(x):
            raise TypeError(f"{type(x).__name__} is {_WRONG_API}")

        for cls in (TrackedArray, TrackedReal):
            _core.pytype_aval_mappings[cls] = reject
    except Exception:  # pragma: no cover - newer JAX: the metaclass repr still names us
        pass


_register_with_jax()
