"""``fluxjax.jit``: compile a function written in the imperative Tracker style.

The function may read and assign params and ``state`` leaves, call ``back_``, ``grad``,
``update_``, ``gradient`` and ``update_(opt, ps, gs)``. It is traced through the tracker's
bridge (``tracker.run``): every leaf it touches is an input of the compiled function (its
value and its ``.grad``) and an output, written back after each successful call, so
results equal running the function eagerly. A leaf the trace touches that was not yet an
input is never baked in as a constant: the trace is abandoned (``tracker.Retrace``) and
redone with that leaf added. Optimiser states are ``state`` leaves too, so they are
threaded the same way. If anything raises, every leaf is as it was before the call.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, NamedTuple

import jax
import numpy as np

from . import tracker

_DYNAMIC = (jax.Array, np.ndarray, np.generic, numbers.Number)


class _Built(NamedTuple):
    """One compiled variant: the jitted pure function, its bridge transaction, and the
    ``tracker.Guarded`` it traces (an exception inside the trace is raised outside it)."""

    fn: Any
    bridge: tracker.Pure
    guarded: tracker.Guarded


class CompiledStep:
    """The object ``fluxjax.jit(f)`` returns: call it like ``f``."""

    def __init__(self, f, max_retraces=8):
        functools.update_wrapper(self, f)
        self._f = f
        self._leaves: list = []  # leaves found so far, in order of discovery
        # (statics, #leaves, guard values) -> jitted: one variant per layer mode, kept
        self._compiled = tracker.Cache(16, "fluxjax.jit traces")
        self._guards = tracker.Guards()  # the Python values (modes) the traces read
        self._max = max_retraces

    @property
    def params(self):
        """The leaves (params and state) the compiled function reads and writes."""
        return list(self._leaves)

    def _build(self, statics, leaves) -> _Built:
        """The jitted ``pure(dyn, values, grads) -> (out, Effects)`` of ``f`` over ``leaves``
        (one bridge transaction, ``tracker.Pure``), and that transaction, to commit."""
        bridge = tracker.Pure(self._f, leaves, compiled=True, keep_graph=True, write_leaves=True)

        def pure(dyn, values, grads):
            return bridge(values, *_merge(statics, dyn), grads=grads)

        guarded = tracker.Guarded(pure)
        return _Built(jax.jit(guarded), bridge, guarded)

    def _built(self, statics, ins) -> _Built:
        """The compiled variant for these statics, leaves and layer modes, made once. A new
        one is traced first, apart: a trace that raises (``Retrace``: it found new leaves)
        compiles nothing, and its variant goes."""
        key = self._key(statics)
        built = self._compiled.get(key)
        if built is None:
            built = self._compiled[key] = self._build(statics, list(self._leaves))
            try:
                built.guarded.tracing(built.fn.trace, *ins)
            except BaseException:
                self._compiled.pop(key, None)
                raise
        return built

    def _prepare(self, statics, r):
        """A trace touched new leaves (or asked for a setup): thread them, trace again."""
        self._compiled.pop(self._key(statics), None)
        if r.setup is not None:
            r.setup()
        known = {id(p) for p in self._leaves}
        self._leaves = self._leaves + [p for p in r.leaves if id(p) not in known]

    def __call__(self, *args):
        statics = tuple(None if isinstance(a, _DYNAMIC) else a for a in args)
        dyn = [
            tracker.data(a) if isinstance(a, _DYNAMIC + (tracker.Tracked,)) else None for a in args
        ]

        def attempt():
            leaves = self._leaves
            ins = (dyn, tracker.values_of(leaves), tracker.grads_of(leaves))
            built = self._built(statics, ins)
            return built, built.fn(*ins)

        traced = tracker.retracing(
            attempt,
            lambda r: self._prepare(statics, r),
            limit=self._max,
            what=f"fluxjax.jit: {self._f!r}",
        )
        built, (out, effects) = traced.out
        if traced.reads and self._guards.add(traced.reads):  # a trace read a mode: file it
            self._compiled[self._key(statics)] = built
        built.bridge.commit(effects)  # checks first: a failed one changes nothing
        return out

    def _key(self, statics):
        ids = tuple(map(id, (s for s in statics if s is not None)))
        return (ids, len(self._leaves), self._guards.key())


def _merge(statics, dyn):
    return [d if s is None else s for s, d in zip(statics, dyn)]


def jit(f):
    """jit(f) -> ``f`` compiled with ``jax.jit``, params and their gradients included.

    Write the step as you would eagerly; the compiled version updates the same params.

    >>> import fluxjax as fj
    >>> W = fj.param([1.0, 2.0])
    >>> @fj.jit
    ... def step(x):
    ...     l = (W * x).sum()
    ...     fj.back_(l)
    ...     fj.update_(W, -0.5 * fj.grad(W))
    ...     return l
    >>> float(step(fj.numpy.ones(2)))
    3.0
    >>> W.data
    Array([0.5, 1.5], dtype=float32)
    """
    return CompiledStep(f)
