"""Replaying a recorded graph as one JAX function, compiled and cached by structure.

``plan`` orders the op nodes under a root (a depth-first post-order) and names each
input by position, so two graphs built the same way (same ops, same static arguments,
same input shapes and dtypes) get the same *key* whatever their values. A key seen once
runs uncompiled (cheap for one-off expressions); seen again, it is compiled with
``jax.jit`` and reused, so a training loop that rebuilds the same graph every step
pays one compiled call per step.
"""

from __future__ import annotations

import os
import sys
import warnings

import jax
import jax.numpy as jnp

from ._cache import Cache
from ._cell import LeafCell, Value
from ._compat import Tracer
from ._spec import call, sig, value
from ._trace import TRACE

_SEEN = Cache(1024, "compiled replays")  # key -> compiled fn, or None when seen once
_LOOSE = Cache(256, "replay misses")  # structure ignoring function identity -> (misses, key)
_WARNED = Cache(1, "recompile warning given")


def plan(root, full):
    """Topologically order the op nodes under ``root``.

    ``full=True`` (backward) goes down to the leaf cells; ``full=False`` (forward) stops
    at nodes that already hold a value. Returns ``(nodes, entries, ext)``: the op nodes
    in order, each one's ``(op, input refs)`` (ref ``i >= 0`` is node ``i``, ``-1 - j`` is
    external input ``j``), and the external inputs (leaf cells, arrays, valued nodes).
    """
    nodes, entries, ext = [], [], []
    index: dict = {}
    ext_index: dict = {}
    stack = [root]
    while stack:
        n = stack[-1]
        if id(n) in index:
            stack.pop()
            continue
        waiting = False
        for a in n._in:
            if isinstance(a, Value) and id(a) not in index and (full or a._value is None):
                stack.append(a)
                waiting = True
        if waiting:
            continue
        stack.pop()
        refs = []
        for a in n._in:
            i = index.get(id(a))
            if i is None:
                i = ext_index.get(id(a))
                if i is None:
                    i = ext_index[id(a)] = len(ext)
                    ext.append(a)
                i = -1 - i
            refs.append(i)
        index[id(n)] = len(nodes)
        nodes.append(n)
        entries.append((n._op, tuple(refs)))
    return nodes, entries, ext


def replay(entries, ext_values):
    """Run the ops in order; returns every node's value."""
    env = []
    for op, refs in entries:
        env.append(call(op, [env[r] if r >= 0 else ext_values[-1 - r] for r in refs]))
    return env


def ext_sig(x):
    s = sig(x)
    if type(x) is LeafCell:
        return (("state",) if x.owner._state else ("cell",)) + s
    return s


def live_value(x):
    """``x``'s value, with params read as swapped now (a value recorded before a swap is
    recomputed from the swapped params, so gradients reach them through it)."""
    if type(x) is LeafCell:
        return TRACE.swaps.get(id(x), x).get()
    if not isinstance(x, Value):
        return x
    swaps = TRACE.swaps
    if swaps:
        nodes, entries, ext = plan(x, full=True)
        if any(type(e) is LeafCell and id(e) in swaps for e in ext):
            return replay(entries, [live_value(e) for e in ext])[-1]
    return value(x)


SMALL_GRAPH = 256
"""A graph of at most this many ops compiles the first time it is seen: compiling it is
faster than running it uncompiled op by op (each op would compile on its own)."""


def cached(key, build):
    """The compiled function for ``key``: jitted at once for a small graph; for a large one
    ``build()`` runs uncompiled the first time (a one-off replay), jitted from the second."""
    fn = _SEEN.get(key, False)
    if fn:
        return fn
    if fn is None or len(key[1]) <= SMALL_GRAPH:  # seen before, or small: compile
        if fn is not None:
            _note_miss(key)
        fn = _SEEN[key] = jax.jit(build())
        return fn
    _note_miss(key)
    _SEEN[key] = None
    return build()


def _fn_name(fn):
    code = getattr(fn, "__code__", None)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code else ""
    return getattr(fn, "__qualname__", repr(fn)) + where


def _note_miss(key):
    """Warn once when the same structure keeps missing: a new function or constant each time."""
    mode, entries = key[0], key[1]
    loose = (mode, tuple(_fn_name(op[0]) for op, _ in entries), key[2:])
    misses, last = _LOOSE.get(loose, (0, None))
    _LOOSE[loose] = (misses + 1, key)
    if misses + 1 < 3 or _WARNED.get("once") or last is None:
        return
    for (op_a, _), (op_b, _) in zip(last[1], entries):
        if op_a == op_b:
            continue
        if op_a[0] is not op_b[0]:
            what = (
                f"the function {_fn_name(op_b[0])} is a new object each time (a lambda or "
                "track(...) made inside the loop?): define it once, outside"
            )
        elif _floats(op_a[1:]) != _floats(op_b[1:]):
            what = (
                f"a Python float given to {_fn_name(op_b[0])} changes each time (a learning "
                "rate or a scale?): pass it as an array instead"
            )
        else:  # other static arguments (indices, axes, shapes) differ for good reasons
            return
        _WARNED["once"] = True
        warn_user(f"fluxjax recompiled the same graph {misses + 1} times because {what}.")
        return


def _floats(spec):
    """The Python floats inside an op's static spec."""
    if type(spec) is tuple:
        if len(spec) == 2 and spec[0] in (float, complex):
            return (spec[1],)
        return tuple(f for s in spec for f in _floats(s))
    return ()


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def warn_user(message: str) -> None:
    """``warnings.warn(message)`` attributed to the user's line (the first outside fluxjax)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)


def evaluate(root):
    """Compute and store the value of a lazily recorded node."""
    nodes, entries, ext = plan(root, full=False)
    values = [value(x) for x in ext]
    if len(nodes) == 1:
        v = call(root._op, [values[-1 - r] for r in entries[0][1]])
    else:
        key = ("fwd", tuple(entries), tuple(ext_sig(x) for x in ext))
        v = cached(key, lambda: lambda vals: replay(entries, vals)[-1])(values)
    if not isinstance(v, Tracer):  # read inside a trace: the tracer must not outlive it
        root._value = v
    return v


def backward_fn(entries, kinds, acc, seeded, pend=()):
    """Build ``f(cells, consts, olds, dy) -> (y, grads, new cell values)`` for one structure.

    ``kinds[j]`` says whether external input ``j`` is a leaf cell (differentiated) or a
    constant; ``acc[i]`` whether cell ``i``'s owner already holds a gradient to add to;
    ``pend[i]`` whether cell ``i`` is a pending ``update_``, given as ``(old, Δ)`` and
    added here (its new value is returned, fused into the same compiled call).
    """

    def merge(cells, consts):
        ci, ki = iter(cells), iter(consts)
        return [next(ci) if k else next(ki) for k in kinds]

    def f(cells, consts, olds, dy):
        news = [(c[0] + c[1]).astype(c[0].dtype) for c, p in zip(cells, pend) if p]
        it_new = iter(news)
        cells = [next(it_new) if p else c for c, p in zip(cells, pend)] if pend else cells
        y, pullback = jax.vjp(lambda cs: replay(entries, merge(cs, consts))[-1], cells)
        (gs,) = pullback(jnp.ones_like(y) if not seeded else dy.astype(y.dtype))
        it = iter(olds)
        return y, [g + next(it) if a else g for g, a in zip(gs, acc)], news

    return f
