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

    def _build(self, statics, leaves):
        f, messages, caught = self._f, [], []

        def pure(dyn, values, grads):
            r = tracker.run(f, _merge(statics, dyn), leaves, values, grads, keep_graph=True)
            if r.touched:
                raise tracker.Retrace(r.touched)
            messages[:] = [m for _, m in r.checks]
            return r.out, r.values, r.grads, [ok for ok, _ in r.checks]

        return _Built(jax.jit(_raising_outside(pure, caught)), messages, caught)

    def __call__(self, *args):
        statics = tuple(None if isinstance(a, _DYNAMIC) else a for a in args)
        dyn = [
            tracker.data(a) if isinstance(a, _DYNAMIC + (tracker.Tracked,)) else None for a in args
        ]
        for _ in range(self._max):
            leaves = self._leaves
            key = self._key(statics)
            built, fresh = self._compiled.get(key), False
            if built is None:
                built = self._compiled[key] = self._build(statics, list(leaves))
                fresh = True
            fn, messages, caught = built
            ins = (dyn, tracker.values_of(leaves), tracker.grads_of(leaves))
            with tracker.noting_statics() as reads:
                if fresh:  # traced apart first: a trace that finds new leaves compiles nothing
                    fn.trace(*ins)
                result = None if caught else fn(*ins)
            if caught:  # the trace raised: its variant goes, the error is raised out here
                self._compiled.pop(key, None)
                self._redo(caught.pop(), leaves)
                continue
            out, values, grads, oks = result
            if self._guards.add(reads):  # this trace read a mode: file it under its value
                self._compiled[self._key(statics)] = built
            tracker.raise_failed(oks, messages)  # before any write: the call changes nothing
            tracker.assign(leaves, values, grads)
            return out
        raise RuntimeError(
            f"fluxjax.jit: {self._f!r} kept reading new params after {self._max} traces"
        )

    def _redo(self, error, leaves):
        """After a trace raised ``error``: a ``Retrace`` adds its leaves (after its setup);
        anything else is raised."""
        if not isinstance(error, tracker.Retrace):
            raise error
        if error.setup is not None:
            error.setup()
        known = {id(p) for p in leaves}
        self._leaves = leaves + [p for p in error.leaves if id(p) not in known]

    def _key(self, statics):
        ids = tuple(map(id, (s for s in statics if s is not None)))
        return (ids, len(self._leaves), self._guards.key())


class _Built(NamedTuple):
    """One traced variant: the jitted function, its checks' messages, and the exception
    its trace caught (``_raising_outside``)."""

    fn: Any
    messages: list
    caught: list


def _raising_outside(pure, caught):
    """``pure`` to trace with ``jax.jit``: an exception it raises is appended to ``caught``
    and the trace ends normally (returning None); the caller raises it again outside the
    trace. JAX 0.10 keeps the constants of a trace an exception left for good (a finalizer
    holds the trace), so the param arrays a first trace found (``Retrace``) never died."""

    def guarded(*args):
        try:
            return pure(*args)
        except BaseException as e:
            caught.append(e)
            return None

    guarded.__name__ = getattr(pure, "__name__", "pure")
    return guarded


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
