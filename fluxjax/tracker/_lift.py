"""``track``: the one mechanism that lifts any JAX function to tracked inputs.

Arguments are split into *dynamic* inputs (tracked values and arrays, fed to the graph)
and a hashable *spec* of everything else (numbers, strings, axes, slices), which is part
of the op's identity. Recording costs a few microseconds: the output's shape and dtype
come from ``jax.eval_shape``, cached per op and input signature, so a shape error is
raised at the line that caused it while the value itself is computed later.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from ._node import LeafCell, Tracer, Tracked, TrackedArray, TrackedReal, tracked_type

_SLOT = object()  # marks where a dynamic input goes back into the arguments
_ARRAYS = (jax.Array, np.ndarray, np.generic)
_AVALS: dict = {}


def _spec(x, dyn):
    if isinstance(x, Tracked):
        dyn.append(x._cell if x._cell is not None else x)
        return _SLOT
    if isinstance(x, _ARRAYS):
        dyn.append(x)
        return _SLOT
    t = type(x)
    if t is tuple or t is list:
        return (t, tuple(_spec(e, dyn) for e in x))
    if t is slice:
        return (slice, _spec(x.start, dyn), _spec(x.stop, dyn), _spec(x.step, dyn))
    if t is dict:
        return (dict, tuple((k, _spec(v, dyn)) for k, v in x.items()))
    if t in (int, float, bool, complex):
        return (t, x)
    return x


def _fill(spec, it):
    if spec is _SLOT:
        return next(it)
    if type(spec) is tuple and spec:
        t = spec[0]
        if t is tuple or t is list:
            return t(_fill(s, it) for s in spec[1])
        if t is slice:
            return slice(_fill(spec[1], it), _fill(spec[2], it), _fill(spec[3], it))
        if t is dict:
            return {k: _fill(v, it) for k, v in spec[1]}
        if t in (int, float, bool, complex):
            return spec[1]
    return spec


def call(op, values):
    """Run a recorded op ``(fn, spec)`` on plain values, as the replay does."""
    fn, (aspec, kspec) = op
    it = iter(values)
    out = fn(*_fill(aspec, it), **_fill(kspec, it))
    if isinstance(out, Tracked) or (
        isinstance(out, tuple) and any(isinstance(o, Tracked) for o in out)
    ):
        name = getattr(fn, "__name__", repr(fn))
        raise TypeError(
            f"{name} returned a tracked value while being replayed: it uses a param it was "
            "not given as an argument (a closure?). Pass every tracked value it needs as an "
            "argument, so gradients reach it and its value is never baked in."
        )
    return out


def _sig(x):
    if type(x) is LeafCell:
        return x.aval
    if isinstance(x, Tracked):
        return x._aval
    return (x.shape, x.dtype)


def _value(x):
    if type(x) is LeafCell:
        return x.get()
    if isinstance(x, Tracked):
        return x._value if x._value is not None else x.data
    return x


_SINGLE, _NONFLOAT, _MULTI = 0, 1, 2


def _out_aval(op, dyn):
    """``(aval, kind)`` of an op's output, from ``jax.eval_shape`` cached per signature."""
    key = (op, tuple([_sig(x) for x in dyn]))
    try:
        return _AVALS[key]
    except KeyError:
        pass
    except TypeError as e:
        raise TypeError(f"unhashable static argument to {op[0]!r}: {e}") from None
    shapes = [jax.ShapeDtypeStruct(*s) for s in key[1]]
    out = jax.eval_shape(lambda *v: call(op, v), *shapes)
    aval = jax.tree_util.tree_map(lambda s: (s.shape, s.dtype), out)
    kind = _MULTI if _is_tuple_out(aval) else _SINGLE if _is_float(aval) else _NONFLOAT
    _AVALS[key] = entry = (aval, kind)
    return entry


def _is_float(aval):
    return np.issubdtype(aval[1], np.inexact)


_NOKW = (dict, ())


def _flat_spec(args, dyn):
    out = []
    for a in args:
        if isinstance(a, Tracked):
            dyn.append(a._cell if a._cell is not None else a)
            out.append(_SLOT)
        elif isinstance(a, _ARRAYS):
            dyn.append(a)
            out.append(_SLOT)
        else:
            out.append(_spec(a, dyn))
    return (tuple, tuple(out))


def apply(fn, args, kwargs):
    """Record ``fn(*args, **kwargs)`` as a node; returns tracked output(s)."""
    dyn: list = []
    op = (fn, (_flat_spec(args, dyn), _spec(kwargs, dyn) if kwargs else _NOKW))
    aval, kind = _out_aval(op, dyn)
    if _any_tracer(dyn):
        return _eager(op, tuple(dyn), aval)
    if kind == _SINGLE:
        return (TrackedReal if aval[0] == () else TrackedArray)._node(op, tuple(dyn), aval)
    if kind == _MULTI:
        return _multi(op, tuple(dyn), aval, None)
    return call(op, [_value(x) for x in dyn])


def _any_tracer(dyn):
    for x in dyn:
        v = x.value if type(x) is LeafCell else x._value if isinstance(x, Tracked) else x
        if isinstance(v, Tracer):
            return True
    return False


def _is_tuple_out(aval):
    """An output aval is ``(shape, dtype)``; a tuple of them means several outputs."""
    return not (len(aval) == 2 and isinstance(aval[1], np.dtype))


def _eager(op, dyn, aval):
    value = call(op, [_value(x) for x in dyn])
    if not _is_tuple_out(aval):
        if not _is_float(aval):
            return value
        return tracked_type(aval[0])._node(op, dyn, aval, value)
    return _multi(op, dyn, aval, value)


def _project(t, i):
    return t[i]


def _multi(op, dyn, avals, value):
    """An op with several outputs: one hidden node, one projection node per output."""
    whole = Tracked._node(op, dyn, avals, value)
    outs = []
    for i, a in enumerate(avals):
        if not _is_float(a):
            outs.append(call(op, [_value(x) for x in dyn])[i] if value is None else value[i])
            continue
        proj = (_project, ((tuple, (_SLOT, (int, i))), (dict, ())))
        v = None if value is None else value[i]
        outs.append(tracked_type(a[0])._node(proj, (whole,), a, v))
    return type(avals)(outs) if not hasattr(avals, "_fields") else type(avals)(*outs)


def _has_tracked(args, kwargs):
    for a in args:
        if isinstance(a, Tracked):
            return True
        if type(a) in (list, tuple) and any(isinstance(e, Tracked) for e in a):
            return True
    for a in kwargs.values():
        if isinstance(a, Tracked):
            return True
    return False


def track(fn):
    """track(fn) -> ``fn`` lifted so it accepts tracked inputs (and records itself).

    ``fn`` is any JAX-traceable function, ``jax.custom_vjp`` ones included (that is how
    to write a custom gradient). With plain inputs the lifted function is ``fn`` itself.

    >>> import jax.numpy as jnp
    >>> from fluxjax import param, back_, grad
    >>> cube = track(lambda x: x ** 3)
    >>> x = param(2.0)
    >>> y = cube(x)
    >>> back_(y)
    >>> grad(x)
    Array(12., dtype=float32)
    """
    fn = getattr(fn, "_fluxjax_fn", fn)

    @functools.wraps(fn)
    def lifted(*args, **kwargs):
        if _has_tracked(args, kwargs):
            return apply(fn, args, kwargs)
        return fn(*args, **kwargs)

    lifted._fluxjax_fn = fn
    return lifted
