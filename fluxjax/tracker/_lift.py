"""``track``: the one mechanism that lifts any JAX function to tracked inputs.

Arguments are split into *dynamic* inputs (tracked values and arrays, fed to the graph)
and a hashable *spec* of everything else (numbers, strings, axes, slices), which is part
of the op's identity. Recording costs a few microseconds: the output's shape and dtype
come from ``jax.eval_shape``, cached per op and input signature, so a shape error is
raised at the line that caused it while the value itself is computed later.

When an input is a JAX tracer (inside ``gradient``, ``train_``, ``jax.jit``...), or
while params are swapped for tracers, the op runs at once. Its result is then a plain
JAX value, as any JAX code would give, except inside ``fluxjax.jit``, where it stays
tracked so that ``back_`` can run in the compiled step.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from ._node import LeafCell, Tracer, Tracked, TrackedArray, TrackedReal
from ._trace import TRACE

_SLOT = object()  # marks where a dynamic input goes back into the arguments
_AVALS: dict = {}


def _spec(x, dyn):
    if isinstance(x, Tracked):
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
    if spec is _SLOT:
        return next(it)
    if type(spec) is tuple and spec:
        t = spec[0]
        if t is tuple or t is list:
            return t(_fill(s, it) for s in spec[1])
        if t is int or t is bool:
            return spec[1]
        if t is float:
            return float.fromhex(spec[1])
        if t is slice:
            return slice(_fill(spec[1], it), _fill(spec[2], it), _fill(spec[3], it))
        if t is dict:
            return {k: _fill(v, it) for k, v in spec[1]}
        if t is complex:
            return complex(spec[1])
    return spec


def call(op, values):
    """Run a recorded op ``(fn, spec[, closure])`` on plain values, as the replay does."""
    fn, (aspec, kspec) = op[0], op[1]
    it = iter(values)
    out = fn(*_fill(aspec, it), **_fill(kspec, it))
    if any(isinstance(o, Tracked) for o in jax.tree_util.tree_leaves(out)):
        name = getattr(fn, "__name__", repr(fn))
        raise TypeError(
            f"{name} returned a tracked value while being replayed: it uses a param it was "
            "not given as an argument (a closure?). Pass every tracked value it needs as an "
            "argument, so gradients reach it and its value is never baked in."
        )
    return out


def sig(x):
    """``(shape, dtype, weak_type)`` of a graph input."""
    if type(x) is LeafCell:
        return x.aval
    if isinstance(x, Tracked):
        return x._aval
    weak = getattr(x, "weak_type", None)
    if weak is None:
        weak = getattr(getattr(x, "aval", None), "weak_type", False)
    return (x.shape, x.dtype, weak)


def value(x):
    """The plain value of a graph input: a leaf cell's, a node's (computed if lazy), an array."""
    if type(x) is LeafCell:
        return x.get()
    if isinstance(x, Tracked):
        return x._value if x._value is not None else x.data
    return x


_SINGLE, _NONFLOAT, _MULTI = 0, 1, 2


def _aval_of(s):
    return (s.shape, s.dtype, s.weak_type)


def _out_aval(op, dyn):
    """``(aval, kind)`` of an op's output, from ``jax.eval_shape`` cached per signature.

    A single output's aval is ``(shape, dtype, weak_type)``; several outputs give
    ``(treedef, (aval, ...))``.
    """
    key = (op, tuple([sig(x) for x in dyn]))
    try:
        return _AVALS[key]
    except KeyError:
        pass
    except TypeError as e:
        raise TypeError(f"unhashable static argument to {op[0]!r}: {e}") from None
    shapes = [jax.ShapeDtypeStruct(s[0], s[1], weak_type=s[2]) for s in key[1]]
    out = jax.eval_shape(lambda *v: call(op, v), *shapes)
    if isinstance(out, jax.ShapeDtypeStruct):
        aval = _aval_of(out)
        kind = _SINGLE if np.issubdtype(out.dtype, np.inexact) else _NONFLOAT
    else:
        leaves, treedef = jax.tree_util.tree_flatten(out)
        aval, kind = (treedef, tuple(_aval_of(s) for s in leaves)), _MULTI
    _AVALS[key] = entry = (aval, kind)
    return entry


_NOKW = (dict, ())


def _flat_spec(args, dyn):
    out = []
    for a in args:
        if isinstance(a, Tracked):
            dyn.append(a._cell if a._cell is not None else a)
            out.append(_SLOT)
        elif isinstance(a, jax.Array):
            dyn.append(a)
            out.append(_SLOT)
        else:
            out.append(_spec(a, dyn))
    return (tuple, tuple(out))


def _closure_key(cells):
    """The numbers, strings and arrays a function reads from its closure, as of now.

    Part of the op's identity, so a compiled replay never reuses a value that changed.
    (Globals are read when the graph is compiled, as with ``jax.jit``.)
    """
    out = []
    for c in cells:
        try:
            v = c.cell_contents
        except ValueError:  # an unbound cell
            continue
        if isinstance(v, (jax.Array, np.ndarray)):
            out.append(("array", id(v)))
        elif v is None or type(v) in (int, float, bool, complex, str):
            out.append(_spec(v, None))
    return tuple(out)


def apply(fn, args, kwargs):
    """Record ``fn(*args, **kwargs)`` as a node; returns tracked output(s)."""
    dyn: list = []
    op = (fn, (_flat_spec(args, dyn), _spec(kwargs, dyn) if kwargs else _NOKW))
    cells = getattr(fn, "__closure__", None)
    if cells:
        op = op + (_closure_key(cells),)
    aval, kind = _out_aval(op, dyn)
    if TRACE.swaps or _any_tracer(dyn):
        return _eager(op, tuple(dyn), aval, kind)
    if kind == _SINGLE:
        return (TrackedReal if aval[0] == () else TrackedArray)._node(op, tuple(dyn), aval)
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
    from ._graph import live_value

    out = call(op, [live_value(x) for x in dyn])
    if not TRACE.keep_graph or kind == _NONFLOAT:  # plain JAX, unless fluxjax.jit needs a graph
        return out
    if kind == _MULTI:
        return _multi(op, dyn, aval, out)
    return (TrackedReal if aval[0] == () else TrackedArray)._node(op, dyn, aval, out)


def _leaf(tree, i):
    return jax.tree_util.tree_leaves(tree)[i]


def _multi(op, dyn, aval, computed):
    """An op with several outputs: one hidden node, one projection node per output."""
    treedef, leaves = aval
    whole = Tracked._node(op, dyn, aval, computed)
    values = None if computed is None else jax.tree_util.tree_leaves(computed)
    outs = []
    for i, a in enumerate(leaves):
        if not np.issubdtype(a[1], np.inexact):
            outs.append(_leaf(whole.data, i) if values is None else values[i])
            continue
        proj = (_leaf, ((tuple, (_SLOT, (int, i))), _NOKW))
        v = None if values is None else values[i]
        outs.append((TrackedReal if a[0] == () else TrackedArray)._node(proj, (whole,), a, v))
    return jax.tree_util.tree_unflatten(treedef, outs)


def _has_tracked(args):
    for a in args:
        if isinstance(a, Tracked):
            return True
        t = type(a)
        if (t is list or t is tuple) and _has_tracked(a):
            return True
        if t is dict and _has_tracked(a.values()):
            return True
    return False


def track(fn):
    """track(fn) -> ``fn`` lifted so it accepts tracked inputs (and records itself).

    ``fn`` is any JAX-traceable function, ``jax.custom_vjp`` ones included (that is how
    to write a custom gradient). With plain inputs the lifted function is ``fn`` itself.

    >>> from fluxjax import param, back_, grad
    >>> cube = track(lambda x: x ** 3)
    >>> x = param(2.0)
    >>> back_(cube(x))
    >>> grad(x)
    Array(12., dtype=float32)
    """
    fn = getattr(fn, "_fluxjax_fn", fn)

    @functools.wraps(fn)
    def lifted(*args, **kwargs):
        if _has_tracked(args) or (kwargs and _has_tracked(kwargs.values())):
            return apply(fn, args, kwargs)
        return fn(*args, **kwargs)

    lifted._fluxjax_fn = fn
    return lifted
