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

import types
import weakref
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
    """``op`` as a cache key keeps it: its function, and functions among its static
    arguments (``hook``'s), held weakly (``gone`` runs when one dies), so no cache owns a
    user's function or what its closure holds."""
    t, items = op.args
    if any(callable(a) and type(a) is not type for a in items):
        items = tuple([hold_weakly(a, gone) if _is_function(a) else a for a in items])
    return op._replace(fn=hold_weakly(op.fn, gone), args=(t, items))


def _is_function(a):
    return isinstance(a, (types.FunctionType, types.MethodType, Reader))


_AVALS = Cache(1024, "op output shapes", holds=lambda k, gone: (weak_op(k[0], gone), k[1]))


_new = tuple.__new__  # a NamedTuple from a tuple, without its Python-level __new__


def _alive(refs):
    return tuple([r() for r in refs])


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
    sigs = tuple(  # each input's Aval (an array's as a plain ``(shape, dtype, weak)``, equal
        [  # to its Aval and quicker to make), inlined: this runs for every recorded op
            x.aval
            if type(x) is LeafCell
            else x._aval
            if isinstance(x, Value)
            else (x.shape, x.dtype, getattr(x, "weak_type", False))
            for x in dyn
        ]
    )
    try:
        entry = _AVALS.get((op, sigs))
    except TypeError as e:
        raise TypeError(f"unhashable static argument to {op.fn!r}: {e}") from None
    if entry is not None:
        return entry if not entry.reads else _new(OutAval, (*entry[:2], _alive(entry.reads)))
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
    held = lambda _, gone: OutAval(aval, kind, tuple(weakref.ref(p, gone) for p in reads))  # noqa: E731
    _AVALS.store((op, sigs), held)  # the leaves held weakly: the entry goes with one
    return OutAval(aval, kind, reads)


class Reader:
    """Reader(fn, leaves, remat) -> ``fn`` with the leaves it reads by itself as leading
    arguments: ``reader(*values, *args)`` runs ``fn(*args)`` with ``leaves[i]`` reading
    ``values[i]`` (under ``jax.checkpoint`` if ``remat``). Equal by value (``fn``, the
    leaves' identities, ``remat``), so a new one is the same graph key; as a cache key
    (``held_weakly``) it holds ``fn`` and the leaves weakly.

    >>> import jax.numpy as jnp
    >>> from fluxjax import param, data
    >>> w = param(2.0)
    >>> f = lambda x: x * data(w)
    >>> r = Reader(f, [w], remat=False)
    >>> float(r(jnp.float32(3.0), 1.5)), r == Reader(f, [w], False), float(w)
    (4.5, True, 2.0)
    """

    __slots__ = ("fn", "leaves", "ids", "remat", "weak", "_hash", "__weakref__")

    def __init__(self, fn, leaves, remat, ids=None, weak=False):
        self.fn, self.leaves, self.remat, self.weak = fn, tuple(leaves), remat, weak
        self.ids = tuple(map(id, leaves)) if ids is None else ids
        self._hash = hash((fn, self.ids, remat))

    @property
    def __name__(self):
        return getattr(self.fn, "__name__", "reader")

    def held_weakly(self, gone):
        """The same reader holding ``fn`` and the leaves weakly (``gone`` when one dies)."""
        leaves = [weakref.ref(p, gone) for p in self.leaves]
        return Reader(hold_weakly(self.fn, gone), leaves, self.remat, self.ids, weak=True)

    def __call__(self, *args, **kwargs):
        fn, k = self.fn, len(self.ids)
        leaves = [r() for r in self.leaves] if self.weak else self.leaves

        def read(*args, **kwargs):
            with swapped(leaves, args[:k], lambda v, p, old: LeafCell(v, p)):
                return fn(*args[k:], **kwargs)

        return (jax.checkpoint(read) if self.remat else read)(*args, **kwargs)

    def __eq__(self, other):
        return (
            type(other) is Reader
            and self.ids == other.ids
            and self.remat == other.remat
            and self.fn == other.fn
        )

    def __hash__(self):
        return self._hash


def with_reads(op: Op, dyn, reads, remat):
    """``op`` rewritten to take the leaves its function reads as inputs of the graph."""
    _, items = op.args  # (tuple, the positional arguments' specs)
    args = (tuple, (_SLOT,) * len(reads) + items)
    return op._replace(fn=Reader(op.fn, reads, remat), args=args), [p._cell for p in reads] + dyn
