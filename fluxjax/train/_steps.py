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

A step whose loss, gradient or updated params are not finite changes nothing, and every
later step of that call is skipped: the carried ``Status`` vector says which step
failed and why (a gradient is judged by the updated params it gives), and ``train_``
raises ``FloatingPointError`` naming it.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import weakref
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fluxjax import tracker
from fluxjax.tracker import Cache

from . import _epoch
from . import _sharding as sharding
from ._optimisers import as_transformation
from ._update import get_state, put_state, settings

FINE, BAD_LOSS, BAD_GRADIENT = 0, 1, 2


def _call(loss, item):
    return loss(*item) if isinstance(item, tuple) else loss(item)


def _finite(tree):
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


class Status(NamedTuple):
    """Where a compiled call stands: the fields of the int32 vector carried through every
    step (one array, not three: each buffer costs a compiled call ~1.5 µs).

    ``good``: steps done with finite results; ``why``: ``FINE``, or why the first bad step
    failed (``BAD_LOSS``, ``BAD_GRADIENT``); ``params_finite``: 1 if the params were finite
    when the call began (else only the loss is judged)."""

    good: Any
    why: Any
    params_finite: Any

    @classmethod
    def of(cls, vector) -> Status:
        return cls(*(vector[i] for i in range(len(cls._fields))))


class Failure(NamedTuple):
    """The first non-finite step of a call (0-based) and why (``BAD_LOSS``,
    ``BAD_GRADIENT``)."""

    step: int
    why: int


class Carry(NamedTuple):
    """What a compiled step takes and gives back: the params' arrays, the extras' (other
    leaves the loss touches), the optimiser state and the ``Status``."""

    arrays: list
    extras: list
    state: Any
    status: Any  # a ``Status`` vector


def _loss_value(entry, arrays, extra_values, batch):
    """``(loss, new extras)`` of ``entry``'s loss on ``batch``, as a pure function of the
    params' and extras' arrays: one bridge transaction (``tracker.Pure``) whose writes
    are the extras' new values, carried on (``Compiled.sync`` writes them back)."""
    plist, n = entry.plist, len(arrays)
    bridge = tracker.Pure(_call, plist + entry.extras, compiled=True, write_leaves=True)
    out, effects = bridge([*arrays, *extra_values], entry.loss(), batch)
    if any(v is not None for v in effects.values[:n]):
        raise ValueError(
            "the loss assigns a param it is trained on (p.data = ..., update_, p -= ...); "
            "train_ compiles the loss as a pure function, so that change would be lost. "
            "Do it in a callback (cb=...) or pass jit=False"
        )
    if jnp.ndim(out) != 0:
        raise ValueError(f"the loss must return a scalar, got shape {jnp.shape(out)}")
    return out, [o if v is None else v for v, o in zip(effects.values[n:], extra_values)]


def _judged(status, loss, new_arrays) -> tuple:
    """``(bad, status)``: whether this step is refused (it, or an earlier one of the call,
    was not finite), and the status after it. The params are judged only when they were
    finite as the call began (``_finite_at_start``); the steps keep them finite from then
    on."""
    status = Status.of(status)
    check = status.params_finite
    why = jnp.where(
        ~jnp.isfinite(loss),
        BAD_LOSS,
        jnp.where((check == 1) & ~_finite(new_arrays), BAD_GRADIENT, FINE),
    )
    bad = (status.why != FINE) | (why != FINE)
    good = status.good + (~bad).astype(jnp.int32)
    return bad, jnp.stack([good, jnp.where(status.why != FINE, status.why, why), check])


_finite_now = jax.jit(lambda tree: _finite(tree).astype(jnp.int32))


def _on_cpu() -> bool:
    return jax.default_backend() == "cpu"


def _finite_at_start(arrays) -> int:
    """1 if every array is finite, else 0: read on the host on a CPU (nothing to
    compile), else one compiled reduction on the device (no transfer of the params)."""
    if _on_cpu():
        return int(all(np.isfinite(np.asarray(a)).all() for a in arrays))
    return int(_finite_now(arrays))


def _kept(bad, new, old):
    """``old`` where the step is refused, else ``new`` (pytrees of the same arrays): a
    select per leaf, which XLA fuses with the step (the ``lax.cond`` it replaced, with a
    second one judging the start params inside the step, made the tiny step on a CPU
    ~96 µs against ~69; its compile was no faster, within the noise)."""
    return jax.tree.map(lambda n, o: jnp.where(bad, o, n), new, old)


def _pure_step(entry, tx):
    """``(arrays, extras, opt_state, status, batch) -> (same..., loss)``, pure.

    The loss, params and extras are read from ``entry`` when JAX traces (they are alive
    then: the running ``Compiled`` holds them), so the compiled step never owns them.
    Only params and extras are held at their last finite values (``_kept``): selecting the
    optimiser state too would keep two copies alive and stop XLA updating it in place
    (2x the step time at small sizes); a state that saw a bad step is dropped in
    ``Compiled.finish``.
    """
    value_and_grad = jax.value_and_grad(functools.partial(_loss_value, entry), has_aux=True)

    def step(arrays, extra_values, state, status, batch):
        (l, new_extras), g = value_and_grad(arrays, extra_values, batch)
        updates, new_state = tx.update(g, state, arrays)
        new_arrays = optax.apply_updates(arrays, updates)
        bad, status = _judged(status, l, new_arrays)
        kept, kept_extras = _kept(bad, (new_arrays, new_extras), (list(arrays), list(extra_values)))
        return kept, kept_extras, new_state, status, l

    return step


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


_CACHE = Cache(8, "train_ steps")
_SEEN_LOOSE = Cache(64, "train_ recompile warnings")
_WARNED = Cache(1, "train_ recompile warning given")


def _loose_key(loss, plist, opt):
    """What stays equal when a loop makes a new but identical loss or optimiser each call."""
    code = getattr(loss, "__code__", None)
    return (code if code is not None else type(loss), tuple(map(id, plist)), type(opt))


def _warn_recompile(loss, plist, opt):
    loose = _loose_key(loss, plist, opt)
    if _SEEN_LOOSE.get(loose) is not None and not _WARNED.get("once"):
        _WARNED["once"] = True
        tracker.warn_user(
            "train_ compiles its step again because the loss function or the optimiser "
            "is a new object each call (a lambda or ADAM() written inside the loop?). "
            "Create them once, before the loop, to reuse the compiled step (and to keep "
            "the optimiser's state).",
        )
    _SEEN_LOOSE[loose] = True


_EMPTY = object()


def _cells(fn):
    """The objects a function's closure holds (``_EMPTY`` for a cell not yet filled)."""
    out = []
    for c in fn.__closure__ or ():
        try:
            out.append(c.cell_contents)
        except ValueError:
            out.append(_EMPTY)
    return out


def _snapshot(loss):
    """What a compiled step of ``loss`` baked in: its code, globals, defaults and the
    objects its closure held when traced (a closure cell can change later)."""
    if not isinstance(loss, types.FunctionType):
        return (loss,)
    defaults = (*(loss.__defaults__ or ()), *(loss.__kwdefaults__ or {}).values())
    return (loss.__code__, loss.__globals__, len(defaults), *defaults, *_cells(loss))


@dataclasses.dataclass
class _Variant:
    """One compiled step (and its epoch plans, ``_epoch.py``) for one set of layer modes;
    ``pure`` is a ``tracker.Guarded``: its first trace raises outside JAX's trace."""

    pure: Any
    step: Any = None
    scans: dict = dataclasses.field(default_factory=dict)
    called: bool = False  # True once ``step`` was traced apart and ran

    def __post_init__(self):
        self.renew()

    def renew(self):
        """A new jitted step, of a new function: JAX keeps a trace that ended early
        (``tracker.Guarded``) for the old one."""
        pure = self.pure

        def step(*args):
            return pure(*args)

        self.step = jax.jit(step, donate_argnums=(0, 1, 2, 3))


def _hold(x, on_death=None):
    """A reference to ``x`` that does not keep it alive (``on_death(ref)`` runs when it
    dies); a strong one for what cannot be weakly referenced (numbers, tuples, dicts)."""
    try:
        return weakref.ref(x, on_death)
    except TypeError:
        return lambda: x


class _Entry:
    """The compiled step of one (loss, params, optimiser), with the extras it found.

    It holds the loss, the params, the extras and what the loss's closure held only
    weakly: when a param, an extra or a closure object dies (the model was deleted), the
    entry leaves ``_CACHE`` and its compiled code goes with it. A new but identical loss
    or optimiser takes over the entry (``adopt``)."""

    def __init__(self, key, loss, plist, opt):
        me = weakref.ref(self)
        self._drop = lambda _, key=key, cache=_CACHE: cache.get(key) is me() and cache.pop(key)
        self._snapshot = [_hold(x, self._drop) for x in _snapshot(loss)]
        self._plist = [_hold(p, self._drop) for p in plist]
        self._extras: list = []
        self.loss = self.opt = None
        self.settings = settings(opt)  # equal settings: an equal optimiser (None: opt only)
        self.adopt(loss, opt)
        self.tensors = Cache(2, "train_ data on device", weak=True)  # loader -> arrays
        self.build()

    def adopt(self, loss, opt):
        """``loss`` and ``opt`` (equal to those the step was built for) are the ones now."""
        self.loss, self.opt = _hold(loss), _hold(opt)

    @property
    def plist(self):
        return [r() for r in self._plist]

    @property
    def extras(self):
        return [r() for r in self._extras]

    def add_extras(self, leaves):
        self._extras.extend(_hold(p, self._drop) for p in leaves)
        self.build()

    def build(self):
        """Drops the compiled variants (the extras changed); they are made on demand."""
        self.variants = Cache(8, "train_ step variants")  # guard values -> _Variant
        self.guards = tracker.Guards()  # the layer modes the traces read

    def variant(self):
        """The compiled step for the current layer modes (``testmode_``), made once."""
        key = self.guards.key()
        v = self.variants.get(key)
        if v is None:
            pure = tracker.Guarded(_pure_step(self, as_transformation(self.opt())))
            v = _Variant(pure)
            self.variants[key] = v
        return v

    def noted(self, reads, variant):
        """After a call: a trace read modes not yet guarded: file ``variant`` under them."""
        if self.guards.add(reads):
            self.variants[self.guards.key()] = variant

    def matches(self, loss, plist, opt):
        same_opt = self.opt() is opt or settings(opt) == self.settings is not None
        snapshot = _snapshot(loss)
        return (
            len(snapshot) == len(self._snapshot)
            and all(r() is x for r, x in zip(self._snapshot, snapshot))
            and same_opt
            and len(self._plist) == len(plist)
            and all(r() is p for r, p in zip(self._plist, plist))
        )


def _compiled_for(loss, plist, opt):
    """The compiled step (and scans) of ``loss`` over ``plist`` with ``opt``, made once."""
    # a new lambda with the same code and closure objects shares the step (see _snapshot)
    key = (tuple(map(id, _snapshot(loss))), tuple(map(id, plist)), settings(opt) or id(opt))
    entry = _CACHE.get(key)
    if entry is not None and entry.matches(loss, plist, opt):
        entry.adopt(loss, opt)
        return entry
    _warn_recompile(loss, plist, opt)
    entry = _CACHE[key] = _Entry(key, loss, plist, opt)
    return entry


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

    def _carry(self) -> Carry:
        return self.carry

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
