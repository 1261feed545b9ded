"""The tape: a recorded graph replayed as one JAX function, compiled and cached by structure.

``plan(root)`` orders the op nodes under a root into a ``Tape`` of steps, each naming
its inputs by position, so two graphs built the same way (same ops, same static
arguments, same input shapes and dtypes) get the same ``Key`` whatever their values.
``tape.forward()`` computes the root; ``tape.backward()`` is the backward pass: one
``jax.vjp`` of the replay, with the params' cells as the differentiated inputs. A small
graph compiles with ``jax.jit`` the first time it is seen; a large one runs uncompiled
the first time (cheap for one-off expressions) and compiles from the second, so a
training loop that rebuilds the same graph every step pays one compiled call per step.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._cache import Cache
from ._cell import LeafCell, Value
from ._compat import Tracer
from ._spec import call, weak_op
from ._trace import TRACE


def _weak_key(key, gone):
    return key._replace(steps=tuple([(weak_op(op, gone), refs) for op, refs in key.steps]))


_new = tuple.__new__  # a Key without NamedTuple's Python-level __new__: one per replay
_SEEN = Cache(1024, "compiled replays", holds=_weak_key)  # Key -> compiled fn, None: seen once
_LOOSE = Cache(256, "replay misses")  # structure ignoring function identity -> (misses, key)
_WARNED = Cache(1, "recompile warning given")


class Key(NamedTuple):
    """What a compiled replay is cached under: ``mode`` ("fwd" or "bwd"), the tape's
    ``steps`` and input ``sigs``, and for "bwd" the ``flags`` that shape the function."""

    mode: str
    steps: tuple
    sigs: tuple
    flags: tuple = ()


def replay(steps, values):
    """Run ``steps`` on the inputs' ``values``; returns the last step's output."""
    env = list(values)
    out = None
    for op, refs in steps:
        out = call(op, [env[r] for r in refs])
        env.append(out)
    return out


def value(x):
    """The plain value of a tape input: a leaf cell's, a node's (computed if lazy), an array."""
    if type(x) is LeafCell:
        return x.get()
    if isinstance(x, Value):
        return x._value if x._value is not None else x.data
    return x


class Tape(NamedTuple):
    """The op nodes under a root, in order. ``steps``: one ``(op, refs)`` pair per node,
    the root last, an ``Op`` applied to ``refs``, positions in the running list of values
    (the tape's ``inputs`` first, then each step's output); ``inputs``: leaf cells, plain
    arrays, nodes that hold a value; ``sigs``: the inputs' signatures; ``nodes``: the
    recorded values themselves."""

    steps: tuple
    inputs: list
    nodes: list
    sigs: tuple

    def replay(self, values):
        """The root's value, the steps run uncompiled on the inputs' ``values``."""
        return replay(self.steps, values)

    def forward(self):
        """The root's value: one cached compiled replay (a single op runs as it is)."""
        values = [value(x) for x in self.inputs]
        if len(self.steps) == 1:
            return self.replay(values)
        key = Key("fwd", self.steps, self.sigs)
        return cached(key, lambda k: functools.partial(replay, k.steps))(values)

    def backward(self, dy=None, wanted=None):
        """The backward pass: ``(y, cells, grads)``, the root's value and the gradient of
        each param cell among the inputs (with ``wanted``, a dict id -> param, only those,
        as they are; else every param, plus the ``.grad`` it holds). A pending ``update_``
        of those cells is settled in the same compiled call. ``dy``: the seed (else ones)."""
        wrt, cells, consts = [], [], []
        for x in self.inputs:  # a param's cell is differentiated; any other input is constant
            w = type(x) is LeafCell and not x.owner._state
            w = w and (wanted is None or id(x.owner) in wanted)
            wrt.append(w)
            if w:
                cells.append(x)
            else:  # a plain array is its own value
                consts.append(value(x) if isinstance(x, LeafCell | Value) else x)
        acc, olds, pend, ins, pending = [], [], [], [], []
        owners, watched = set(), TRACE.watches  # watched: c.get(), which notes the read
        for c in cells:
            o = c.owner  # a param read via 2 cells: the .grad it holds is added to the first
            a = wanted is None and o._grad is not None and id(o) not in owners
            owners.add(id(o))
            acc.append(a)
            if a:
                olds.append(o._grad)
            p = c.value is None and c.old.value is not None  # a pending update_, to fuse
            pend.append(p)
            if p:
                pending.append(c)
                ins.append((c.old.value, c.step))
            else:
                ins.append(c.get() if c.value is None or watched else c.value)
        flags = (tuple(wrt), tuple(acc), tuple(pend), dy is not None)
        fn = cached(_new(Key, ("bwd", self.steps, self.sigs, flags)), _build_backward)
        y, grads, settled = fn(ins, consts, olds, dy)
        for c, v in zip(pending, settled):
            if not isinstance(v, Tracer):  # inside a trace the cell keeps its pending form
                c.value, c.old, c.step = v, None, None
        return y, cells, grads


def _build_backward(key):
    return _backward_fn(key.steps, *key.flags)


def _settle(old, step):
    return (old + step).astype(old.dtype)


def _backward_fn(steps, wrt, acc, pend, seeded):
    """``f(ins, consts, olds, dy) -> (y, grads, settled)`` for one structure: ``jax.vjp``
    of the replay over the differentiated cells (``wrt[j]``: input ``j`` is one, given in
    ``ins``; a pending one (``pend``) as ``(old, step)``, settled first), the others given
    in ``consts``; ``olds`` are added to the gradients where ``acc``."""

    def f(ins, consts, olds, dy):
        cells = [_settle(*c) if p else c for c, p in zip(ins, pend)]

        def root(cs):
            ci, ki = iter(cs), iter(consts)
            return replay(steps, [next(ci) if w else next(ki) for w in wrt])

        y, pullback = jax.vjp(root, cells)
        (gs,) = pullback(dy.astype(y.dtype) if seeded else jnp.ones_like(y))
        it = iter(olds)
        grads = [g + next(it) if a else g for g, a in zip(gs, acc)]
        return y, grads, [c for c, p in zip(cells, pend) if p]

    return f


def plan(root, full=True) -> Tape:
    """The tape of the op nodes under ``root``, each after the nodes it reads: down to the
    leaf cells (``full``, for the backward pass), or stopping at nodes holding a value."""
    nodes, inputs, stack, ins = [], [], [root], []
    slot, opened = {}, set()  # id -> an input's index, or ~i for the i-th node on the tape
    while stack:  # depth first: a node goes on the tape once all its inputs are on it
        n = stack[-1]
        k = id(n)
        if k in slot:
            stack.pop()
        elif k not in opened:  # first visit: its nodes not yet on the tape go above it
            opened.add(k)
            for a in n._in:
                if isinstance(a, Value) and id(a) not in slot and (full or a._value is None):
                    stack.append(a)
        else:  # every node above it is on the tape now
            stack.pop()
            refs = []
            for a in n._in:  # the tape's inputs, once each, in order
                r = slot.get(id(a))
                if r is None:
                    r = slot[id(a)] = len(inputs)
                    inputs.append(a)
                refs.append(r)
            slot[k] = ~len(nodes)
            nodes.append(n)
            ins.append(refs)
    first, steps, sigs = len(inputs), [], []  # refs: the inputs, then the steps' outputs
    for n, refs in zip(nodes, ins):
        for j, r in enumerate(refs):
            if r < 0:
                refs[j] = first + ~r
        steps.append((n._op, tuple(refs)))
    for a in inputs:  # as in _spec.out_aval, but a leaf cell's tells a state leaf (inlined)
        t = a.sig if type(a) is LeafCell else a._aval if isinstance(a, Value) else None
        sigs.append((a.shape, a.dtype, getattr(a, "weak_type", False)) if t is None else t)
    return _new(Tape, (tuple(steps), inputs, nodes, tuple(sigs)))


def live_value(x):
    """``x``'s value, with params read as swapped now (a value recorded before a swap is
    recomputed from the swapped params, so gradients reach them through it)."""
    if type(x) is LeafCell:
        return TRACE.swaps.get(id(x), x).get()
    if not isinstance(x, Value):
        return x
    swaps = TRACE.swaps
    if swaps:
        tape = plan(x)
        if any(type(e) is LeafCell and id(e) in swaps for e in tape.inputs):
            return tape.replay([live_value(e) for e in tape.inputs])
    return value(x)


SMALL_GRAPH = 256
"""A graph of at most this many ops compiles the first time it is seen: compiling it is
faster than running it uncompiled op by op (each op would compile on its own)."""


def cached(key: Key, build):
    """The compiled function for ``key``: jitted at once for a small graph; for a large one
    ``build(key)`` runs uncompiled the first time (a one-off replay), jitted from the
    second. The cache holds the functions of the key, and so of the compiled replay, weakly."""
    fn = _SEEN.get(key, False)
    if fn:
        return fn
    if fn is None or len(key.steps) <= SMALL_GRAPH:  # seen before, or small: compile
        if fn is not None:
            _note_miss(key)
        return _SEEN.store(key, lambda k, _: jax.jit(build(k)))
    _note_miss(key)
    _SEEN[key] = None
    return build(key)


def _fn_name(fn):
    code = getattr(fn, "__code__", None)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code else ""
    return getattr(fn, "__qualname__", repr(fn)) + where


def _note_miss(key):
    """Warn once when the same structure keeps missing: a new function or constant each time."""
    names = tuple(_fn_name(op.fn) for op, _ in key.steps)
    loose = key._replace(steps=names)
    misses, last = _LOOSE.get(loose, (0, None))
    _LOOSE[loose] = (misses + 1, _weak_key(key, None))  # never owns the functions
    if misses + 1 < 3 or _WARNED.get("once") or last is None:
        return
    for (op_a, _), (op_b, _) in zip(last.steps, key.steps):
        if op_a == op_b:
            continue
        if op_a.fn != op_b.fn:
            what = (
                f"the function {_fn_name(op_b.fn)} is a new object each time (a lambda or "
                "track(...) made inside the loop?): define it once, outside"
            )
        elif _floats(op_a._replace(fn=None)) != _floats(op_b._replace(fn=None)):
            what = (
                f"a Python float given to {_fn_name(op_b.fn)} changes each time (a learning "
                "rate or a scale?): pass it as an array instead"
            )
        else:  # other static arguments (indices, axes, shapes) differ for good reasons
            return
        _WARNED["once"] = True
        warn_user(f"fluxjax recompiled the same graph {misses + 1} times because {what}.")
        return


def _floats(spec):
    """The Python floats inside an op's static spec."""
    if not isinstance(spec, tuple):
        return ()
    if len(spec) == 2:
        t, x = spec
        if t is float or t is complex:
            return (x,)
    return tuple(f for s in spec for f in _floats(s))


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def warn_user(message: str) -> None:
    """``warnings.warn(message)`` attributed to the user's line (the first outside fluxjax)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)


def evaluate(root):
    """Compute and store the value of a lazily recorded node."""
    v = plan(root, full=False).forward()
    if not isinstance(v, Tracer):  # read inside a trace: the tracer must not outlive it
        root._value = v
    return v
