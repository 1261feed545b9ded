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
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._cell import LeafCell, Value
from ._trace import check, checking, keeping_graph, note, restore, swapped, watching


class Run(NamedTuple):
    """What ``run`` gives back.

    ``out``: ``f``'s result, tracked values made plain. ``values`` / ``grads``: each
    threaded leaf's value and ``.grad`` (None: zeros) after ``f``. ``touched``: the other
    leaves ``f`` read or wrote; ``written``: for each, the value ``f`` assigned (None if
    it only read it). ``checks``: the traced ``(ok, message)`` of ``check`` calls, to
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


@contextlib.contextmanager
def transaction():
    """Inside the block, every leaf touched while concrete is noted; if the block raises,
    each is put back as it was (value and ``.grad``): a refused eager step changes
    nothing, running statistics and recurrent carries included."""
    with watching() as seen:
        try:
            yield
        except BaseException:
            restore(seen)
            raise


def raise_failed(oks, messages):
    """After a compiled call: raise ``FloatingPointError`` for the first check that failed."""
    for ok, message in zip(oks, messages):
        check(ok, message)


def write_back(leaves, values):
    """After success: ``leaf.data = value`` for every value that is not None."""
    for p, v in zip(leaves, values, strict=True):
        if v is not None:
            p.data = v


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
    """After success: each leaf holds ``values[i]`` (and ``.grad`` ``grads[i]``)."""
    for i, p in enumerate(leaves):
        p._cell = LeafCell(values[i], p, aval=p._cell.aval)
        if grads is not None:
            p._grad = grads[i]
