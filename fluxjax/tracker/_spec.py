"""Recording an op: its arguments' spec, its output's shape, the leaves it reads itself.

Arguments are split into *dynamic* inputs (tracked values and arrays, fed to the graph)
and a hashable *spec* of everything else (numbers, strings, axes, slices), which is part
of the op's identity (``Op``). ``call`` runs a recorded op on plain values, as the replay
does.
``out_aval`` works out the output's shape and dtype once per op and input signature
(``jax.eval_shape``) and notes the leaves the function reads by itself (a closure, a
model's fields): ``with_reads`` makes those inputs of the op, so gradients reach them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

from ._cache import Cache, hold_weakly
from ._cell import Aval, LeafCell, Value
from ._trace import restore, swapped, watching

_SLOT = object()  # marks where a dynamic input goes back into the arguments


class Op(NamedTuple):
    """What a recorded op computes, without its inputs: hashable, part of a graph's key.

    ``args`` and ``kwargs`` are the static spec of the arguments (``_SLOT`` where a
    dynamic input goes back in); ``closure`` the values ``fn`` reads from its closure.
    """

    fn: Callable
    args: tuple
    kwargs: tuple
    closure: tuple = ()


def _spec(x, dyn):
    if isinstance(x, Value):
        dyn.append(x._cell if x._cell is not None else x)
        return _SLOT
    if isinstance(x, jax.Array):
        dyn.append(x)
        return _SLOT
    if isinstance(x, np.ndarray):
        dyn.append(x.copy())  # NumPy arrays are mutable: keep the value it has now
        return _SLOT
    if isinstance(x, np.generic):
        if isinstance(x, (np.integer, np.bool_)):  # axes, sizes, slice bounds: static
            return (int if isinstance(x, np.integer) else bool, x.item())
        dyn.append(x)
        return _SLOT
    t = type(x)
    if t is int or t is bool:
        return (t, x)
    if t is float:  # hex tells 0.0 from -0.0 and makes NaN equal to itself
        return (float, x.hex())
    if t is tuple or t is list:
        return (t, tuple([_spec(e, dyn) for e in x]))
    if t is slice:
        return (slice, _spec(x.start, dyn), _spec(x.stop, dyn), _spec(x.step, dyn))
    if t is dict:
        return (dict, tuple((k, _spec(v, dyn)) for k, v in x.items()))
    if t is complex:
        return (complex, repr(x))
    return x


def _fill(spec, it):
    """The argument ``spec`` stands for, with the values of ``it`` in its slots."""
    if spec is _SLOT:
        return next(it)
    if type(spec) is not tuple or not spec:
        return spec
    t, *parts = spec
    if t is slice:
        return slice(*[_fill(p, it) for p in parts])
    (x,) = parts
    if t is tuple or t is list:
        return t(_fill(e, it) for e in x)
    if t is dict:
        return {k: _fill(v, it) for k, v in x}
    return float.fromhex(x) if t is float else complex(x) if t is complex else x


def call(op: Op, values):
    """Run a recorded op on plain values (in its slots' order), as the replay does."""
    fn = op.fn
    it = iter(values)
    out = fn(*_fill(op.args, it), **_fill(op.kwargs, it))
    if any(isinstance(o, Value) for o in jax.tree_util.tree_leaves(out)):
        name = getattr(fn, "__name__", repr(fn))
        raise TypeError(
            f"{name} returned a tracked value while being replayed: it uses a param it was "
            "not given as an argument (a closure?). Pass every tracked value it needs as an "
            "argument, so gradients reach it and its value is never baked in."
        )
    return out


def sig(x):
    """The ``Aval`` of a graph input: a leaf cell's, a node's; an array's as a plain
    ``(shape, dtype, weak)`` (equal to its ``Aval``, and quicker to make)."""
    if type(x) is LeafCell:
        return x.aval
    if isinstance(x, Value):
        return x._aval
    return (x.shape, x.dtype, getattr(x, "weak_type", False))


_NOKW = (dict, ())


def _flat_spec(args, dyn):
    out = []
    for a in args:
        if isinstance(a, Value):
            dyn.append(a._cell if a._cell is not None else a)
            out.append(_SLOT)
        elif isinstance(a, jax.Array):
            dyn.append(a)
            out.append(_SLOT)
        else:
            out.append(_spec(a, dyn))
    return (tuple, tuple(out))


def _closure_key(cells):
    """The numbers, strings, arrays and leaves a function reads from its closure, as of now.

    Part of the op's identity, so a compiled replay never reuses a value that changed.
    (Globals are read when the graph is compiled, as with ``jax.jit``.)
    """
    out = []
    for c in cells:
        try:
            v = c.cell_contents
        except ValueError:  # an unbound cell
            continue
        if isinstance(v, (jax.Array, np.ndarray, Value)):
            out.append(("array", id(v)))
        elif v is None or type(v) in (int, float, bool, complex, str):
            out.append(_spec(v, None))
    return tuple(out)


_SINGLE, _NONFLOAT, _MULTI = 0, 1, 2  # an op's output: one float array, non-float, several


def weak_op(op: Op, gone) -> Op:
    """``op`` as a cache key keeps it: its function held weakly (``gone`` runs when it
    dies), so no cache owns a user's function or what its closure holds."""
    return op._replace(fn=hold_weakly(op.fn, gone))


_AVALS = Cache(1024, "op output shapes", holds=lambda k, gone: (weak_op(k[0], gone), k[1]))
_READERS = Cache(256, "functions that read leaves themselves")


def _aval_of(s):
    return Aval(s.shape, s.dtype, s.weak_type)


class OutAval(NamedTuple):
    """An op's output: ``aval`` (an ``Aval``, or ``(treedef, avals)`` for several outputs),
    its ``kind``, and the leaves (``reads``) the function reads by itself, from its
    closure or an object's fields, rather than from its arguments."""

    aval: tuple
    kind: int
    reads: tuple


def out_aval(op: Op, dyn) -> OutAval:
    """The output of ``op`` on inputs like ``dyn``, from ``jax.eval_shape``, cached."""
    sigs = tuple([sig(x) for x in dyn])
    try:
        entry = _AVALS.get((op, sigs))
    except TypeError as e:
        raise TypeError(f"unhashable static argument to {op.fn!r}: {e}") from None
    if entry is not None:
        return entry
    shapes = [jax.ShapeDtypeStruct(shape, dtype, weak_type=weak) for shape, dtype, weak in sigs]
    with watching() as seen:
        try:
            out = jax.eval_shape(lambda *v: call(op, v), *shapes)
        finally:  # working out a shape never changes a leaf
            restore(seen)
    reads = tuple(b.leaf for b in seen.values())
    if isinstance(out, jax.ShapeDtypeStruct):
        aval = _aval_of(out)
        kind = _SINGLE if np.issubdtype(out.dtype, np.inexact) else _NONFLOAT
    else:
        leaves, treedef = jax.tree_util.tree_flatten(out)
        avals = tuple(_aval_of(s) for s in leaves)  # no float output (a shape): run plainly
        kind = _MULTI if any(np.issubdtype(a.dtype, np.inexact) for a in avals) else _NONFLOAT
        aval = (treedef, avals)
    _AVALS[(op, sigs)] = entry = OutAval(aval, kind, reads)
    return entry


def _reader(fn, leaves, remat):
    """``fn`` with the leaves it reads by itself as leading arguments: ``reader(*values,
    *args)`` runs ``fn(*args)`` with ``leaves[i]`` reading ``values[i]`` (under
    ``jax.checkpoint`` if ``remat``). One object per (fn, leaves), so recorded graphs keep
    their cache key."""
    key = (fn, tuple(map(id, leaves)), remat)
    known, hit = _READERS.get(key, ((), None))
    if hit is not None and all(a is b for a, b in zip(known, leaves)):
        return hit
    k = len(leaves)

    def reader(*args, **kwargs):
        with swapped(leaves, args[:k], lambda v, p, old: LeafCell(v, p)):
            return fn(*args[k:], **kwargs)

    reader.__name__ = getattr(fn, "__name__", "reader")
    if remat:
        reader = jax.checkpoint(reader)
    _READERS[key] = (leaves, reader)
    return reader


def with_reads(op: Op, dyn, reads, remat):
    """``op`` rewritten to take the leaves its function reads as inputs of the graph."""
    _, items = op.args  # (tuple, the positional arguments' specs)
    args = (tuple, (_SLOT,) * len(reads) + items)
    return op._replace(fn=_reader(op.fn, reads, remat), args=args), [p._cell for p in reads] + dyn
