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
import jax.numpy as jnp
import numpy as np

from . import tracker

_DYNAMIC = (jax.Array, np.ndarray, np.generic, numbers.Number)


class _Built(NamedTuple):
    """One compiled variant: the jitted ``pure(dyn, values, grads) -> (out, failed, values,
    grads)`` (``failed``: ``_first_failed``), its bridge transaction (the ``check``
    messages), and the ``tracker.Guarded`` it traces (an exception inside the trace is
    raised outside it)."""

    fn: Any
    bridge: tracker.Pure
    guarded: tracker.Guarded


class CompiledStep:
    """The object ``fluxjax.jit(f)`` returns: call it like ``f``."""

    def __init__(self, f, max_retraces=8):
        functools.update_wrapper(self, f)
        self._f = f
        self._leaves: list = []  # leaves found so far, in order of discovery
        # (statics, #leaves, guard values) -> _Built: one variant per layer mode, kept
        self._compiled = tracker.Cache(16, "fluxjax.jit traces")
        self._guards = tracker.Guards()  # the Python values (modes) the traces read
        self._max = max_retraces

    @property
    def params(self):
        """The leaves (params and state) the compiled function reads and writes."""
        return list(self._leaves)

    def __call__(self, *args):
        # The warm path, flat: the variant of these statics, leaves and modes, one jitted
        # call, the checks, the writes. Anything else goes the traced way (``_traced``).
        ids = tuple([None if isinstance(a, _DYNAMIC) else id(a) for a in args])
        leaves, guards = self._leaves, self._guards
        built = self._compiled.get((ids, len(leaves), guards.key() if guards.places else ()))
        if built is None:
            built, leaves, outs = self._traced(args, ids)
        else:
            version = guards.version
            try:
                outs = built.fn(
                    _dynamic(args, ids), tracker.values_of(leaves), tracker.grads_of(leaves)
                )
            except tracker.Retrace as r:  # JAX traced again (new shapes) and met new leaves
                self._prepare(ids, r)
                built, leaves, outs = self._traced(args, ids)
            else:
                if guards.version != version:  # that trace read a new mode: file by it
                    self._compiled[self._key(ids)] = built
        out, failed, values, grads = outs
        _raise_failed(failed, built.bridge, values, grads)  # first: a failure writes nothing
        tracker.assign(leaves, values, grads)
        return out

    def _traced(self, args, ids):
        """``(built, leaves, outputs)``: the variant for the current modes, compiled if new,
        and its call; traced again (the one retrace loop) while a trace meets new leaves."""
        statics = tuple(None if i is None else a for a, i in zip(args, ids))
        dyn, version = _dynamic(args, ids), self._guards.version

        def attempt():
            leaves = self._leaves
            ins = (dyn, tracker.values_of(leaves), tracker.grads_of(leaves))
            built = self._built(statics, ids, ins)
            return built, leaves, built.fn(*ins)

        what = f"fluxjax.jit: {self._f!r}"
        traced = tracker.retracing(
            attempt, lambda r: self._prepare(ids, r), limit=self._max, what=what
        )
        if self._guards.version != version:  # a trace read a new mode: file the variant by it
            self._compiled[self._key(ids)] = traced.out[0]
        return traced.out

    def _build(self, statics, leaves) -> _Built:
        """The jitted ``pure`` of ``f`` over ``leaves`` (one bridge transaction,
        ``tracker.Pure``); the layer modes a trace reads join the guards."""
        bridge = tracker.Pure(self._f, leaves, compiled=True, keep_graph=True, write_leaves=True)
        guards = self._guards

        def pure(dyn, values, grads):
            with tracker.noting_statics() as reads:
                out, effects = bridge(values, *_merge(statics, dyn), grads=grads)
            if reads:  # also when JAX traces a warm variant again, for a new input shape
                guards.add(reads)
            return out, _first_failed(effects.oks), effects.values, effects.grads  # a tuple

        guarded = tracker.Guarded(pure)
        return _Built(jax.jit(guarded), bridge, guarded)

    def _built(self, statics, ids, ins) -> _Built:
        """The compiled variant for these statics, leaves and layer modes, made once. A new
        one is traced first, apart: a trace that raises (``Retrace``: it found new leaves)
        compiles nothing, and its variant goes."""
        key = self._key(ids)
        built = self._compiled.get(key)
        if built is None:
            built = self._compiled[key] = self._build(statics, list(self._leaves))
            try:
                built.guarded.tracing(built.fn.trace, *ins)
            except BaseException:
                self._compiled.pop(key, None)
                raise
        return built

    def _prepare(self, ids, r):
        """A trace touched new leaves (or asked for a setup): thread them, trace again."""
        self._compiled.pop(self._key(ids), None)
        if r.setup is not None:
            r.setup()
        known = {id(p) for p in self._leaves}
        self._leaves = self._leaves + [p for p in r.leaves if id(p) not in known]

    def _key(self, ids):
        return (ids, len(self._leaves), self._guards.key())


def _dynamic(args, ids):
    """The arguments passed as arrays (None for each static one)."""
    return [a if i is None else None for a, i in zip(args, ids)]


def _first_failed(oks):
    """Traced: the index of the first ``check`` that failed (-1: none), as one array, so a
    call reads one number back however many checks the step made; None if it made none."""
    if not oks:
        return None
    fine = jnp.stack([jnp.all(ok) for ok in oks])
    return jnp.where(fine.all(), -1, jnp.argmin(fine))


def _raise_failed(failed, bridge, values, grads):
    """After the call, before any write: the error of the first failed check (``failed``
    from ``_first_failed``), ``RuntimeError`` for a tracer a leaf would keep."""
    messages = bridge.messages
    if failed is None or isinstance(failed, jax.core.Tracer):  # no checks, or traced
        tracker.refuse_tracers(values, grads)  # jax.jit around the step: refused
        if failed is not None:  # inside fluxjax's own transformations: as ``check`` does
            oks = [failed != i for i in range(len(messages))]
            tracker.raise_failed(oks, messages, bridge.errors)
        return
    i = int(failed)
    if i >= 0:  # (the messages are the last trace's: another shape's may differ in number)
        raise bridge.errors[i](messages[i]) if i < len(messages) else FloatingPointError(_FAILED)


_FAILED = "fluxjax.jit: a check inside the step failed; nothing was changed"


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
