"""``fluxjax.jit``: compile a function written in the imperative Tracker style.

The function may read params, call ``back_``, ``grad``, ``update_``. While it is traced,
every param it touches is swapped for a JAX tracer (its value and its ``.grad``), so the
compiled function takes them as inputs and returns their new values, which are written
back after each call: results equal running the function eagerly. A param the trace
reads that was not yet an input is never baked in as a constant: the trace is abandoned
and redone with that param added.
"""

from __future__ import annotations

import functools
import numbers

import jax
import numpy as np

from .tracker._gradient import swapped
from .tracker._node import KEEP_GRAPH, WATCH, LeafCell, Tracked, data

_DYNAMIC = (jax.Array, np.ndarray, np.generic, numbers.Number)


class _Missed(Exception):
    """Raised inside a trace that read params it was not given."""

    def __init__(self, params):
        super().__init__(f"{len(params)} params read as constants")
        self.params = params


class CompiledStep:
    """The object ``fluxjax.jit(f)`` returns: call it like ``f``."""

    def __init__(self, f, max_retraces=8):
        functools.update_wrapper(self, f)
        self._f = f
        self._params: list = []  # params found so far, in order of discovery
        self._compiled: dict = {}  # (static args' ids, params' ids) -> jitted function
        self._max = max_retraces

    @property
    def params(self):
        """The params the compiled function reads and writes."""
        return list(self._params)

    def _build(self, statics, ps):
        f = self._f

        def pure(dyn, values, grads):
            args = _merge(statics, dyn)
            WATCH.append({})
            KEEP_GRAPH.append(True)
            try:
                with swapped(ps, values):
                    for p, g in zip(ps, grads):
                        p._grad = g
                    out = f(*args)
                    new_values = [p._cell.get() for p in ps]
                    new_grads = [p._grad for p in ps]  # None: zeros, nothing to pass back
            finally:
                KEEP_GRAPH.pop()
                missed = WATCH.pop()
                for p in ps:
                    p._grad = None
            known = {id(p) for p in ps}
            extra = [(p, c, g) for k, (p, c, g) in missed.items() if k not in known]
            for p, cell, g in extra:  # undo what the abandoned trace did to them
                p._cell, p._grad = cell, g
            if extra:
                raise _Missed([p for p, _, _ in extra])
            out = jax.tree_util.tree_map(data, out, is_leaf=lambda x: isinstance(x, Tracked))
            return out, new_values, new_grads

        return jax.jit(pure)

    def __call__(self, *args):
        statics = tuple(None if isinstance(a, _DYNAMIC) else a for a in args)
        dyn = [data(a) if isinstance(a, _DYNAMIC + (Tracked,)) else None for a in args]
        for _ in range(self._max):
            ps = self._params
            key = (tuple(map(id, (s for s in statics if s is not None))), len(ps))
            fn = self._compiled.get(key)
            if fn is None:
                fn = self._compiled[key] = self._build(statics, list(ps))
            try:
                out, values, grads = fn(dyn, [p._cell.get() for p in ps], [p._grad for p in ps])
            except _Missed as m:
                self._params = ps + m.params
                self._compiled.pop(key, None)
                continue
            for p, v, g in zip(ps, values, grads):
                p._cell = LeafCell(v, p, aval=p._cell.aval)
                p._grad = g
            return out
        raise RuntimeError(
            f"fluxjax.jit: {self._f!r} kept reading new params after {self._max} traces"
        )


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
