"""The bridge: imperative code over leaves, run as a pure function of arrays, and back.

``run(f, args, leaves, values)`` is the one place where tracked code becomes pure: each
leaf in ``leaves`` (params and ``state`` leaves) reads ``values[i]`` (tracers, under a JAX
transformation), ``f(*args)`` runs, and what ``f`` left in those leaves comes back as
arrays. Every other leaf ``f`` touches is *watched*: its value and ``.grad`` are put back
exactly as they were, and ``Run`` says which ones were touched and what ``f`` assigned to
them. ``gradient``, ``forward``, ``train_`` and ``fluxjax.jit`` all call ``run``: the
uncompiled paths hand the assigned values out as auxiliary results and write them back
after success (``write_back``); the compiled paths retrace with the touched leaves as
inputs (``Retrace``), so no leaf's value is ever baked into a compiled step.

Writes happen only after the transformation returned: an exception anywhere leaves
every leaf (value and ``.grad``) as it was.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._cache import noting_statics
from ._cell import LeafCell, Value
from ._compat import Tracer
from ._trace import (
    TRACE,
    Transaction,
    check,
    checking,
    keeping_graph,
    note,
    restore,
    swapped,
    watching,
)


class Run(NamedTuple):
    """What ``run`` gives back.

    ``out``: ``f``'s result, tracked values made plain. ``values`` / ``grads``: each
    threaded leaf's value and ``.grad`` (None: zeros) after ``f``. ``touched``: the other
    leaves ``f`` read or wrote; ``written``: for each, the value ``f`` assigned (None if
    it only read it). ``checks``: the traced ``(ok, message, error)`` of ``check`` calls, to
    return from the compiled step and test after it (``raise_failed``).
    """

    out: object
    values: list
    grads: list | None
    touched: list
    written: list
    checks: list


class Retrace(Exception):
    """Raised inside a compiled trace that must be redone after ``prepare()`` (more leaves
    as inputs, or an optimiser state to create outside the trace)."""

    def __init__(self, leaves=(), setup=None):
        super().__init__("the trace must be redone")
        self.leaves, self.setup = list(leaves), setup


def plain(tree):
    """``tree`` with every tracked value replaced by its plain JAX value."""
    return jax.tree_util.tree_map(
        lambda x: x.data if isinstance(x, Value) else x,
        tree,
        is_leaf=lambda x: isinstance(x, Value),
    )


def scalar_of(out, what="gradient"):
    """``out`` (``f``'s result) as a plain scalar array; ValueError for any other shape."""
    v = out.data if isinstance(out, Value) else jnp.asarray(out)
    if v.shape != ():
        raise ValueError(f"{what} needs f to return a scalar, got shape {v.shape}")
    return v


def as_input(x):
    """An argument as a transformation takes it: a tracked value's data, an integer or
    bool as a float (the default float dtype); anything else as it is."""
    if isinstance(x, Value):
        return x.data
    if isinstance(x, (bool, int)) or (isinstance(x, np.ndarray) and x.dtype.kind in "biu"):
        return jnp.asarray(x, jnp.result_type(float))
    return x


def _cell(value, leaf, old):
    return LeafCell(value, leaf)


def run(f, args, leaves, values, grads=None, *, keep_graph=False) -> Run:
    """Call ``f(*args)`` with ``leaves[i]`` reading ``values[i]`` (and ``.grad`` reading
    ``grads[i]``, when given); put every leaf back as it was afterwards, also on error."""
    own = {id(p) for p in leaves}
    with watching() as seen, checking() as checks:
        try:
            with swapped(leaves, values, _cell):
                if grads is not None:
                    for p, g in zip(leaves, grads, strict=True):
                        p._grad = g
                with keeping_graph() if keep_graph else contextlib.nullcontext():
                    out = plain(f(*args))
                new_values = [p._cell.get() for p in leaves]
                new_grads = [p._grad for p in leaves] if grads is not None else None
            touched = [b for k, b in seen.items() if k not in own]
            written = [b.leaf._cell.get() if b.leaf._cell is not b.cell else None for b in touched]
        finally:
            restore(seen, own)
    return Run(out, new_values, new_grads, [b.leaf for b in touched], written, checks)


class Effects(NamedTuple):
    """What one pure run of ``f`` hands out of a JAX transformation, to take effect only
    after the transformation returned (``Pure.commit``).

    ``oks``: the traced flag of each ``check`` call (the messages stay with the ``Pure``).
    ``written``: for each leaf ``f`` touched outside ``leaves``, the value it assigned
    (None: only read). ``values``: each threaded leaf's value after ``f`` (None where
    ``f`` left it as it came in), when the commit writes them (``write_leaves``).
    ``grads``: each threaded leaf's ``.grad`` after ``f``, when grads were passed in."""

    oks: list
    written: list
    values: list | None
    grads: list | None


class Pure:
    """One bridge transaction: ``f`` over ``leaves`` as a pure function of their arrays.

    ``pure(values, *args, grads=None) -> (out, Effects)`` runs ``f(*args)`` through ``run``
    inside the caller's transformation (``jax.grad``, ``jax.vjp``, ``jax.jit``); every leaf
    is put back as it was. After the transformation returned, ``commit(effects)`` raises
    for the first failed ``check`` (nothing written yet, so the call changes nothing),
    then writes back what ``f`` assigned: the touched leaves', and the threaded leaves'
    with ``write_leaves``. An exception anywhere before ``commit`` is the roll back: no
    leaf was written.

    ``compiled=True`` (``fluxjax.jit``, ``train_``): a leaf outside ``leaves`` that ``f``
    touches would be baked into the compiled code, so the trace is abandoned
    (``Retrace``) and redone with that leaf threaded (``retracing``).

    >>> import jax, jax.numpy as jnp
    >>> from fluxjax.tracker import param, state
    >>> w, n = param(3.0), state(0.0)
    >>> def f():
    ...     n.data = n.data + 1
    ...     return w * w
    >>> pure = Pure(f, [w])
    >>> g, effects = jax.grad(pure, has_aux=True)([jnp.float32(3.0)])
    >>> pure.commit(effects)
    >>> float(g[0]), float(n.data)
    (6.0, 1.0)
    """

    def __init__(self, f, leaves, *, compiled=False, keep_graph=False, write_leaves=False):
        self.f, self.leaves = f, list(leaves)
        self.compiled, self.keep_graph, self.write_leaves = compiled, keep_graph, write_leaves
        self.touched: list = []
        self.messages: list = []
        self.errors: list = []

    def __call__(self, values, *args, grads=None):
        r = run(self.f, args, self.leaves, values, grads, keep_graph=self.keep_graph)
        if self.compiled and r.touched:
            raise Retrace(r.touched)
        self.touched, self.messages = r.touched, [m for _, m, _ in r.checks]
        self.errors = [e for *_, e in r.checks]  # the type each check raises
        changed = None
        if self.write_leaves:  # None where f left the leaf as it came in: nothing to write
            changed = [v if v is not old else None for v, old in zip(r.values, values)]
        return r.out, Effects([ok for ok, *_ in r.checks], r.written, changed, r.grads)

    def commit(self, effects: Effects):
        """After the transformation returned: check, then write back (see the class)."""
        raise_failed(effects.oks, self.messages, self.errors)
        write_back(self.touched, effects.written)
        if effects.values is None:
            return
        if self.compiled:  # every threaded leaf is the compiled call's: set it directly
            assign(self.leaves, effects.values, effects.grads)
        else:
            write_back(self.leaves, effects.values)


class Guarded:
    """Guarded(fn): ``fn`` to hand to ``jax.jit``/``jax.make_jaxpr``. Inside
    ``tracing(trace, *args)`` an exception that ``fn`` raises while traced (``Retrace``
    above all) is kept, the trace ends normally (returning None), and it is raised again
    outside the trace: JAX 0.10 keeps the constants of a trace an exception left for good
    (a finalizer holds the trace), so the arrays a first trace found would never die.
    Outside ``tracing`` (a compiled call that traces again) it raises as usual: a trace
    that returned None would run, and consume donated buffers.

    >>> g = Guarded(lambda x: 1 / x)
    >>> g.tracing(g, 0)
    Traceback (most recent call last):
    ZeroDivisionError: division by zero
    >>> g.tracing(g, 4)
    0.25
    """

    def __init__(self, fn):
        self.fn, self._here = fn, threading.local()  # per thread: what its trace caught
        self.__name__ = getattr(fn, "__name__", "pure")

    def __call__(self, *args, **kwargs):
        try:
            return self.fn(*args, **kwargs)
        except BaseException as e:
            caught = getattr(self._here, "caught", None)
            if caught is None:  # not inside ``tracing``: raise as usual
                raise
            caught.append(e)  # raised again, outside the trace, by tracing()
            return None

    def tracing(self, trace, *args):
        """``trace(*args)`` (e.g. ``jax.make_jaxpr(g)``, ``jax.jit(g).trace``), with an
        exception of ``fn`` during it raised after it returns."""
        self._here.caught = caught = []
        try:
            out = trace(*args)
        finally:
            self._here.caught = None
        if caught:  # the first; popped, so this frame (in its traceback) does not hold it
            del caught[1:]
            raise caught.pop()
        return out

    def jaxpr(self, *args):
        """``jax.make_jaxpr(fn, return_shape=True)(*args)`` through ``tracing``, traced anew
        each time (a fresh function: JAX must not hand back a trace that ended early)."""
        return self.tracing(jax.make_jaxpr(lambda *a: self(*a), return_shape=True), *args)


class Traced(NamedTuple):
    """What ``retracing`` gives back: ``attempt()``'s result and the static reads
    (``Read``) its trace made, for the caller's ``Guards``."""

    out: object
    reads: list


def retracing(attempt, prepare, *, limit=None, what="the step") -> Traced:
    """Calls ``attempt()`` (which traces, or runs compiled code) until it finishes without
    ``Retrace``; after each ``Retrace`` ``r``, ``prepare(r)`` threads ``r.leaves`` and runs
    ``r.setup``, and ``attempt`` traces again. ``RuntimeError`` after ``limit`` tries."""
    for _ in itertools.count() if limit is None else range(limit):
        try:
            with noting_statics() as reads:
                return Traced(attempt(), reads)
        except Retrace as r:
            prepare(r)
    raise RuntimeError(f"{what} kept touching new leaves after {limit} traces")


def transaction():
    """Inside the block, every leaf written is noted; if the block raises, each is put back
    as it was (value and ``.grad``): a refused eager step changes nothing, running
    statistics and recurrent carries included. Reads cost nothing (``Transaction``)."""
    return Transaction()


def raise_failed(oks, messages, errors=None):
    """After a compiled call: raise for the first check that failed (``errors[i]``, by
    default ``FloatingPointError``, with ``messages[i]``)."""
    for i, (ok, message) in enumerate(zip(oks, messages)):
        check(ok, message, FloatingPointError if errors is None else errors[i])


def write_back(leaves, values):
    """After success: ``leaf.data = value`` for every value that is not None."""
    for p, v in zip(leaves, values, strict=True):
        if v is not None:
            p.data = v


def refuse_tracers(values, grads=None):
    """Before a compiled call's results are written to leaves: ``RuntimeError`` if one is
    a JAX tracer of a transformation fluxjax did not open (``jax.jit`` around a
    ``fluxjax.jit`` step): the leaf would keep it after that trace.

    >>> refuse_tracers([jnp.ones(2), None], [None, None])
    """
    if TRACE.swaps or TRACE.watches:  # inside fluxjax's own: its leaves are put back
        return
    if any(isinstance(x, Tracer) for x in (*values, *(grads or ()))):
        raise RuntimeError(
            "a fluxjax.jit step that writes params or state (values or .grad) ran inside "
            "jax.jit/jax.grad/jax.vmap: the leaves would keep JAX tracers after that trace. "
            "Call the step outside it, or compile the outer function with fluxjax.jit"
        )


def values_of(leaves):
    """Each leaf's current concrete value (a pending ``update_`` is settled now)."""
    return [p._cell.get() for p in leaves]


def grads_of(leaves):
    """Each leaf's accumulated ``.grad``; None where it reads as zeros."""
    return [p._grad for p in leaves]


def resize(leaf, value):
    """A ``state`` leaf takes ``value`` of another shape, keeping its identity (a
    recurrent carry meeting its first batch, or a batch of another size). Outside a trace
    only: a compiled step that threads ``leaf`` sees the new shape and traces again."""
    if leaf.trainable:
        raise TypeError("resize: only a state leaf may change its shape, not a param")
    note(leaf)
    leaf._cell = LeafCell(value, leaf)
    leaf._aval = leaf._cell.aval


def is_freed(x) -> bool:
    """True when ``x`` is a recorded value whose graph ``back_`` has freed (``once=True``)."""
    return isinstance(x, Value) and x._cell is None and bool(x._done)


def assign(leaves, values, grads=None):
    """After success: each leaf holds ``values[i]`` (None: keeps its value), and ``.grad``
    ``grads[i]`` when given."""
    for i, p in enumerate(leaves):
        if values[i] is not None:
            p._cell = LeafCell(values[i], p, aval=p._cell.aval)
        if grads is not None:
            p._grad = grads[i]
