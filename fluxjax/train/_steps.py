"""The compiled way ``train_`` runs a step (``Compiled``); the eager one is in ``_eager.py``.

``Compiled`` turns the imperative loss into a pure function through the tracker's bridge
(``tracker.run``): every param in ``ps`` reads a tracer and is differentiated with
``jax.value_and_grad``; every other leaf the loss touches (``state`` leaves such as
running statistics and PRNG keys, params outside ``ps``) is an *extra* input, found by
retracing (``tracker.Retrace``), whose assigned value is an output. The optimiser step
runs with ``opt.tx`` in the same ``jax.jit`` call, with donated buffers. Params, extras
and optimiser state stay as flat arrays between steps and are written back only when
asked (``sync``). ``epoch_steps`` runs the steps of a ``DataLoader`` epoch as ``_epoch.py``
chooses (one call per step, or many in a ``jax.lax.scan``).

The pure step and its records are in ``_pure_step.py``, the cache of compiled steps in
``_entries.py``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxjax import tracker

from . import _epoch
from . import _sharding as sharding
from ._entries import _compiled_for
from ._pure import FINE, Carry, Failure, Status, _finite
from ._update import get_state, put_state

_finite_now = jax.jit(lambda tree: _finite(tree).astype(jnp.int32))


def _on_cpu() -> bool:
    return jax.default_backend() == "cpu"


def _finite_at_start(arrays) -> int:
    """1 if every array is finite, else 0: read on the host on a CPU (nothing to
    compile), else one compiled reduction on the device (no transfer of the params)."""
    if _on_cpu():
        return int(all(np.isfinite(np.asarray(a)).all() for a in arrays))
    return int(_finite_now(arrays))


def _copies(tree):
    """Fresh device copies of a pytree of arrays (the carry gets donated): copied on the
    device, with nothing to compile."""
    return jax.device_put(tree, may_alias=False)


def _host_copies(carry):
    """Fresh NumPy copies of a carry on a CPU, for a compiled call to donate: the call takes
    them in through its own argument path, far cheaper than ``_copies`` (~3 µs an array,
    not ~40) and compiling nothing."""
    return jax.tree.map(np.array, carry)


def _gone(tree) -> bool:
    """Whether a compiled call that raised consumed (donated) any array of ``tree``."""
    return any(getattr(a, "is_deleted", bool)() for a in jax.tree.leaves(tree))


class _Warm(NamedTuple):
    """The step variant the last per-step call ran, and the layer modes it ran under."""

    variant: Any
    key: tuple


class _Read(NamedTuple):
    """A ``Status`` as read from the device once (``Compiled.failure``)."""

    status: Any
    failure: Failure | None


def _failure(status) -> Failure | None:
    host = Status.of(np.asarray(status).tolist())  # one transfer
    return None if host.why == FINE else Failure(host.good, host.why)


class Compiled:
    """Runs steps through one compiled function; params as a flat list of arrays, carried
    between calls in a ``Carry``.

    The carry gets donated, so it must not be the leaves' own arrays (nor the optimiser
    state's stored ones): on one CPU it holds them as they are until a compiled call
    first takes it, which gets NumPy copies (``lent``, ``_args``); elsewhere it holds
    device copies from the start."""

    def __init__(self, loss, plist, opt, layout=sharding.ONE_DEVICE):
        self.plist, self.opt, self.layout = plist, opt, layout
        self.loss = loss  # alive while this call runs: the entry holds it weakly
        self.entry = _compiled_for(loss, plist, opt)
        self.late, self.lent, self._read = layout.mesh is None and _on_cpu(), False, None
        self.warm = None  # a ``_Warm``: the last step's variant (``step``)
        values = tracker.values_of(plist)
        extras = self._own(tracker.values_of(self.entry.extras))
        arrays, state = self._own((values, get_state(opt, plist, values)))
        status = np.array([0, FINE, _finite_at_start(values)], np.int32)  # a ``Status``
        self.carry = Carry(
            sharding.place_params(layout, arrays),
            sharding.place_data(layout, extras),
            sharding.place_params(layout, state),
            sharding.place_data(layout, status),
        )

    def _own(self, tree):
        """The leaves' arrays ``tree`` for the carry: copied now, or when first donated."""
        if self.late:
            self.lent = True
            return tree
        return _copies(tree)

    def _args(self) -> Carry:
        """The carry to hand to a compiled call (which donates it)."""
        return _host_copies(self.carry) if self.lent else self.carry

    @property
    def arrays(self):  # the carry's parts, for _epoch.py and _checkpoint.py
        return self.carry.arrays

    @property
    def extras(self):
        return self.carry.extras

    @property
    def state(self):
        return self.carry.state

    def resume(self):
        """Carry on from the leaves' current values (copied: the carry gets donated)."""
        lay = self.layout
        self.carry = self.carry._replace(
            arrays=sharding.place_params(lay, self._own(tracker.values_of(self.plist))),
            extras=sharding.place_data(lay, self._own(tracker.values_of(self.entry.extras))),
        )

    def _retrace(self, r):
        """The trace touched leaves outside the carry (add them as extras), or asked for a
        ``setup`` outside the trace (a recurrent carry taking its batch's shape): compile
        again."""
        self.warm = None
        if r.setup is not None:
            self.sync()  # the leaves hold the carried values while setup runs
            r.setup()
            self.resume()
        known = {id(p) for p in self.plist + self.entry.extras}
        new = [p for p in r.leaves if id(p) not in known]
        if not new and r.setup is None:
            raise RuntimeError("train_: the loss keeps touching leaves it cannot thread") from r
        if not new:
            return
        self.entry.add_extras(new)
        added = sharding.place_data(self.layout, self._own(tracker.values_of(new)))
        self.carry = self.carry._replace(extras=[*self.carry.extras, *added])

    def sync(self):
        """Write the carried values into the leaves (skipped if a call was cut short)."""
        arrays, extras = self.carry.arrays, self.carry.extras
        if not _gone((arrays, extras)):
            tracker.assign(self.plist, sharding.gather(self.layout, arrays))
            tracker.assign(self.entry.extras, sharding.gather(self.layout, extras))

    def finish(self):
        """Write back the leaves; keep the optimiser state unless a step went non-finite
        (then the state from the start of this ``train_`` call stays)."""
        self.sync()
        state = self.carry.state
        if _gone(state) or self.failure():
            return
        put_state(self.opt, self.plist, sharding.gather(self.layout, state))

    def failure(self) -> Failure | None:
        """The first non-finite step of this call, or None (the status read once)."""
        status = self.carry.status
        if self._read is None or self._read.status is not status:
            self._read = _Read(status, None if _gone(status) else _failure(status))
        return self._read.failure

    def traced(self, call):
        """``(variant, call(variant))`` for the current step variant, traced again (the
        one retrace loop, ``tracker.retracing``) until the loss touches no leaf outside
        the carry; the layer modes the trace read key the variant."""

        def attempt():
            variant = self.entry.variant()
            return variant, call(variant)

        traced = tracker.retracing(attempt, self._retrace, what="train_")
        self.entry.noted(traced.reads, traced.out[0])
        return traced.out

    def step(self, item):
        item = sharding.place_batch(self.layout, item)
        warm = self.warm  # the last step's variant, run again while the modes are the same
        if warm is not None and warm.key == self.entry.guards.key():
            try:
                with tracker.noting_statics() as reads:  # a new batch shape traces again
                    out = warm.variant.step(*self._args(), item)
            except tracker.Retrace as r:
                self._retrace(r)  # then the whole way below
            else:
                if reads:
                    self.entry.noted(reads, warm.variant)
                return self.advanced(out)
        variant, out = self.traced(lambda v: self._called(v, (*self._args(), item)))
        self.warm = _Warm(variant, self.entry.guards.key())
        return self.advanced(out)

    @staticmethod
    def _called(v, args):
        """``v.step(*args)``; its first call is traced apart first (one trace, which the
        call reuses), so a trace that finds new leaves raises outside JAX's trace
        (``tracker.Guarded``) and runs nothing."""
        if not v.called:
            try:
                v.pure.tracing(v.step.trace, *args)
            except BaseException:
                v.renew()
                raise
            v.called = True
        return v.step(*args)

    def advanced(self, out):
        """Keeps the new carry of a compiled call's ``(*carry, losses)``; the losses."""
        *carry, losses = out
        self.carry, self.lent = Carry(*carry), False
        return sharding.settle(self.layout, losses)

    def advance(self, fn, *args):
        """One compiled call ``fn(*carry, *args) -> (*carry, losses)``: keeps the new carry,
        returns the losses (``_epoch.run`` calls it with its per-step or scan functions)."""
        return self.advanced(fn(*self._args(), *args))

    def epoch_steps(self, loader, order, start, n, strategy):
        """Steps ``start .. start + n`` of an epoch of ``loader``, run by ``strategy``."""
        return _epoch.run(self, loader, order, start, n, strategy)
